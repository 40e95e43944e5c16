#include "mech/jwe.h"

#include <stdlib.h>

#include <openssl/crypto.h>

#include "mech/errmap.h"
#include "util/log.h"

CK_RV mech_jwe_check_param(const CK_MECHANISM *mech)
{
	return !mech->pParameter && mech->ulParameterLen == 0 ? CKR_OK
							      : CKR_MECHANISM_PARAM_INVALID;
}

CK_RV mech_jwe_parse(const tp_tang_server *srv, const uint8_t *in, size_t len,
		     CK_RV input_rv, tp_clevis_jwe *cj)
{
	tp_err err = clevis_jwe_parse(srv, (const char *)in, len, cj);

	return errmap_rv(err, input_rv);
}

CK_RV mech_jwe_decrypt(tp_tang_server *srv, const tp_clevis_jwe *cj, CK_RV input_rv,
		       uint8_t **pt, tp_err *dev_err)
{
	size_t n = cj->jwe.ciphertext_len;
	uint8_t *buf = malloc(n + 1);
	tp_err err = TP_ERR_NOMEM;

	*pt = NULL;
	*dev_err = TP_OK;
	if (buf)
		err = clevis_jwe_decrypt(srv, cj, buf);
	if (err == TP_OK) {
		*pt = buf;
		return CKR_OK;
	}
	if (buf)
		OPENSSL_clear_free(buf, n + 1);
	/* A tag mismatch is the JWE's fault, not the device's. */
	if (err != TP_ERR_INPUT && err != TP_ERR_NOMEM)
		*dev_err = err;
	return errmap_rv(err, input_rv);
}

CK_RV mech_jwe_encrypt(tp_tang_server *srv, const tp_exchange_key *key,
		       const uint8_t *pt, size_t len, char **out, size_t *out_len,
		       tp_err *dev_err)
{
	tp_err err;

	*out = NULL;
	*out_len = 0;
	*dev_err = TP_OK;
	if (len > TP_JWE_MAX_PLAINTEXT) {
		log_error("CKM_TANG_JWE encrypt for %s: %zu bytes of plaintext, at most %zu",
			  tang_server_url(srv), len, (size_t)TP_JWE_MAX_PLAINTEXT);
		return CKR_DATA_LEN_RANGE;
	}
	err = clevis_jwe_encrypt(srv, key, pt, len, out, out_len);
	if (err != TP_OK && err != TP_ERR_NOMEM && err != TP_ERR_GENERAL)
		*dev_err = err;
	return errmap_rv(err, CKR_FUNCTION_FAILED);
}
