#include "mech/digest.h"

#include <stdlib.h>

#include <openssl/evp.h>

#include "mech/registry.h"
#include "util/ec.h"
#include "util/log.h"

struct tp_digest {
	EVP_MD_CTX *ctx;
	size_t len;
};

const char *digest_md_name(CK_MECHANISM_TYPE type)
{
	switch (type) {
	case CKM_SHA_1:
	case CKM_SHA_1_HMAC:
	case CKM_SHA_1_HMAC_GENERAL:
		return "SHA1";
	case CKM_SHA224:
	case CKM_SHA224_HMAC:
	case CKM_SHA224_HMAC_GENERAL:
		return "SHA224";
	case CKM_SHA256:
	case CKM_SHA256_HMAC:
	case CKM_SHA256_HMAC_GENERAL:
		return "SHA256";
	case CKM_SHA384:
	case CKM_SHA384_HMAC:
	case CKM_SHA384_HMAC_GENERAL:
		return "SHA384";
	case CKM_SHA512:
	case CKM_SHA512_HMAC:
	case CKM_SHA512_HMAC_GENERAL:
		return "SHA512";
	default:
		return NULL;
	}
}

bool digest_is_digest(CK_MECHANISM_TYPE type)
{
	return type == CKM_SHA_1 || type == CKM_SHA224 || type == CKM_SHA256 ||
	       type == CKM_SHA384 || type == CKM_SHA512;
}

CK_RV digest_new(const CK_MECHANISM *mech, tp_digest **out)
{
	EVP_MD *md = NULL;
	tp_digest *d = NULL;
	CK_RV rv = CKR_GENERAL_ERROR;

	*out = NULL;
	if (!digest_is_digest(mech->mechanism))
		return CKR_MECHANISM_INVALID;
	if (mech->ulParameterLen != 0) {
		log_error("%s: invalid mechanism parameter (%lu bytes): the mechanism takes none",
			  mech_name(mech->mechanism), (unsigned long)mech->ulParameterLen);
		return CKR_MECHANISM_PARAM_INVALID;
	}
	md = EVP_MD_fetch(ossl_ctx(), digest_md_name(mech->mechanism), NULL);
	d = calloc(1, sizeof(*d));
	if (!md || !d)
		goto out;
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex2(d->ctx, md, NULL) != 1)
		goto out;
	d->len = (size_t)EVP_MD_get_size(md);
	*out = d;
	d = NULL;
	rv = CKR_OK;
out:
	digest_free(d);
	EVP_MD_free(md);
	return rv;
}

void digest_free(tp_digest *d)
{
	if (!d)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d);
}

size_t digest_len(const tp_digest *d)
{
	return d->len;
}

CK_RV digest_update(tp_digest *d, const uint8_t *in, size_t in_len)
{
	return in_len == 0 || EVP_DigestUpdate(d->ctx, in, in_len) == 1 ? CKR_OK
									 : CKR_GENERAL_ERROR;
}

CK_RV digest_final(tp_digest *d, uint8_t *out)
{
	unsigned int n = 0;

	return EVP_DigestFinal_ex(d->ctx, out, &n) == 1 && n == d->len ? CKR_OK
									: CKR_GENERAL_ERROR;
}
