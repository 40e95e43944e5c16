#include "mech/ecdh.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mech/errmap.h"
#include "mech/kdf.h"
#include "util/ec.h"
#include "util/log.h"

static bool kdf_known(CK_ULONG kdf)
{
	switch (kdf) {
	case CKD_NULL:
	case CKD_SHA1_KDF:
	case CKD_SHA224_KDF:
	case CKD_SHA256_KDF:
	case CKD_SHA384_KDF:
	case CKD_SHA512_KDF:
		return true;
	default:
		return false;
	}
}

/* The peer point inside the parameters (unwrapped from a DER OCTET STRING
 * if it is one), or a reason why there is none. */
static const char *peer_point(const tp_exchange_key *key, const CK_MECHANISM *mech,
			      const uint8_t **pt, size_t *pt_len)
{
	const CK_ECDH1_DERIVE_PARAMS *p;

	if (!mech->pParameter || mech->ulParameterLen != sizeof(CK_ECDH1_DERIVE_PARAMS))
		return "parameter is not a CK_ECDH1_DERIVE_PARAMS";
	p = mech->pParameter;
	if (!kdf_known(p->kdf))
		return "unsupported kdf";
	if (p->kdf == CKD_NULL && p->ulSharedDataLen != 0)
		return "shared data given with CKD_NULL";
	if (p->ulSharedDataLen != 0 && !p->pSharedData)
		return "shared data length without data";
	if (!p->pPublicData || p->ulPublicDataLen == 0)
		return "no peer point";
	ec_point_unwrap_der(key->curve, p->pPublicData, p->ulPublicDataLen, pt, pt_len);
	if (*pt_len != ec_point_len(key->curve))
		return "peer point is malformed or on another curve";
	if (ec_point_check(key->curve, *pt, *pt_len) != TP_OK)
		return "peer point is not on the key's curve";
	return NULL;
}

CK_RV ecdh_check_params(const tp_tang_server *srv, const tp_exchange_key *key,
			const CK_MECHANISM *mech)
{
	const uint8_t *pt = NULL;
	size_t pt_len = 0;
	const char *why = peer_point(key, mech, &pt, &pt_len);

	if (!why)
		return CKR_OK;
	log_error("C_DeriveKey(CKM_ECDH1_DERIVE) refused for server %s kid %s (%s): %s",
		  srv ? tang_server_url(srv) : "?", key->kid, key->curve->jwk_name, why);
	return CKR_MECHANISM_PARAM_INVALID;
}

CK_RV ecdh_tang_derive(tp_tang_server *srv, const tp_exchange_key *key,
		       const CK_MECHANISM *mech, uint8_t *out, size_t out_len,
		       tp_err *dev_err)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const CK_ECDH1_DERIVE_PARAMS *p = mech->pParameter;
	const uint8_t *pt = NULL;
	size_t pt_len = 0;
	size_t field = key->curve->field_len;
	uint8_t z[TP_EC_MAX_FIELD];
	tp_err err = TP_OK;

	rv = ecdh_check_params(srv, key, mech);
	if (rv != CKR_OK)
		goto out;
	peer_point(key, mech, &pt, &pt_len);
	if (p->kdf == CKD_NULL && out_len > field) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	/* Network I/O: the caller holds no lock here. */
	err = tang_recover(srv, key, pt, pt_len, z, field);
	if (err != TP_OK) {
		rv = errmap_rv(err, CKR_MECHANISM_PARAM_INVALID);
		goto out;
	}
	if (p->kdf == CKD_NULL) {
		/* Truncation keeps the trailing bytes, as SoftHSMv2 does. */
		memcpy(out, z + field - out_len, out_len);
		rv = CKR_OK;
	} else {
		rv = kdf_x963(p->kdf, z, field, p->pSharedData, p->ulSharedDataLen,
			      out, out_len);
	}
out:
	OPENSSL_cleanse(z, sizeof(z));
	if (dev_err)
		*dev_err = err;
	return rv;
}
