#include "mech/kdf.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/ec.h"

static const char *kdf_digest(CK_ULONG kdf)
{
	switch (kdf) {
	case CKD_SHA1_KDF: return "SHA1";
	case CKD_SHA224_KDF: return "SHA224";
	case CKD_SHA256_KDF: return "SHA256";
	case CKD_SHA384_KDF: return "SHA384";
	case CKD_SHA512_KDF: return "SHA512";
	default: return NULL;
	}
}

/* ANSI X9.63 §5.6.3 (SEC 1 §3.6.1): K_i = H(Z || counter_i || SharedInfo)
 * with a 32-bit big-endian counter starting at 1, concatenated and cut to
 * out_len.  Written with plain digests so that it does not depend on the
 * "X963KDF" implementation being present in the private context. */
CK_RV kdf_x963(CK_ULONG kdf, const uint8_t *z, size_t z_len,
	       const uint8_t *shared, size_t shared_len,
	       uint8_t *out, size_t out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const char *name = kdf_digest(kdf);
	EVP_MD *md = NULL;
	EVP_MD_CTX *ctx = NULL;
	uint8_t block[EVP_MAX_MD_SIZE];
	unsigned int block_len = 0;
	size_t done = 0;
	uint32_t counter = 1;

	if (!name) {
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto out;
	}
	md = EVP_MD_fetch(ossl_ctx(), name, NULL);
	ctx = EVP_MD_CTX_new();
	if (!md || !ctx)
		goto out;
	while (done < out_len) {
		uint8_t cnt[4] = { counter >> 24, counter >> 16, counter >> 8, counter };
		size_t take;

		if (!EVP_DigestInit_ex(ctx, md, NULL) ||
		    !EVP_DigestUpdate(ctx, z, z_len) ||
		    !EVP_DigestUpdate(ctx, cnt, sizeof(cnt)) ||
		    (shared_len && !EVP_DigestUpdate(ctx, shared, shared_len)) ||
		    !EVP_DigestFinal_ex(ctx, block, &block_len))
			goto out;
		take = out_len - done < block_len ? out_len - done : block_len;
		memcpy(out + done, block, take);
		done += take;
		counter++;
	}
	rv = CKR_OK;
out:
	OPENSSL_cleanse(block, sizeof(block));
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	return rv;
}
