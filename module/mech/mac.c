#include "mech/mac.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "mech/digest.h"
#include "mech/registry.h"
#include "util/ec.h"
#include "util/log.h"

typedef enum mac_kind { K_HMAC, K_CMAC, K_CBCMAC, K_NONE } mac_kind;

struct tp_mac {
	mac_kind kind;
	size_t full_len;             /* the algorithm's output */
	size_t out_len;              /* what the mechanism returns */
	EVP_MAC_CTX *mctx;           /* HMAC, CMAC */
	/* CBC-MAC (FIPS 113): AES-CBC with a zero IV over the data padded
	 * with zero bytes to whole blocks; the MAC is the last block. */
	EVP_CIPHER_CTX *cctx;
	uint8_t part[16];
	size_t part_len;
	uint8_t last[16];
	bool any_block;
};

static mac_kind kind_of(CK_MECHANISM_TYPE type, bool *general)
{
	*general = false;
	switch (type) {
	case CKM_SHA_1_HMAC_GENERAL:
	case CKM_SHA224_HMAC_GENERAL:
	case CKM_SHA256_HMAC_GENERAL:
	case CKM_SHA384_HMAC_GENERAL:
	case CKM_SHA512_HMAC_GENERAL:
		*general = true;
		/* fall through */
	case CKM_SHA_1_HMAC:
	case CKM_SHA224_HMAC:
	case CKM_SHA256_HMAC:
	case CKM_SHA384_HMAC:
	case CKM_SHA512_HMAC:
		return K_HMAC;
	case CKM_AES_CMAC_GENERAL:
		*general = true;
		/* fall through */
	case CKM_AES_CMAC:
		return K_CMAC;
	case CKM_AES_MAC_GENERAL:
		*general = true;
		/* fall through */
	case CKM_AES_MAC:
		return K_CBCMAC;
	default:
		return K_NONE;
	}
}

bool mac_is_mac(CK_MECHANISM_TYPE type)
{
	bool general;

	return kind_of(type, &general) != K_NONE;
}

CK_KEY_TYPE mac_hmac_key_type(CK_MECHANISM_TYPE type)
{
	switch (type) {
	case CKM_SHA_1_HMAC:
	case CKM_SHA_1_HMAC_GENERAL:
		return CKK_SHA_1_HMAC;
	case CKM_SHA224_HMAC:
	case CKM_SHA224_HMAC_GENERAL:
		return CKK_SHA224_HMAC;
	case CKM_SHA256_HMAC:
	case CKM_SHA256_HMAC_GENERAL:
		return CKK_SHA256_HMAC;
	case CKM_SHA384_HMAC:
	case CKM_SHA384_HMAC_GENERAL:
		return CKK_SHA384_HMAC;
	case CKM_SHA512_HMAC:
	case CKM_SHA512_HMAC_GENERAL:
		return CKK_SHA512_HMAC;
	default:
		return CKK_VENDOR_DEFINED;
	}
}

/* Output length of the algorithm behind type. */
static size_t full_len_of(CK_MECHANISM_TYPE type, mac_kind kind)
{
	const char *md = digest_md_name(type);

	if (kind != K_HMAC)
		return 16;
	if (!strcmp(md, "SHA1"))
		return 20;
	if (!strcmp(md, "SHA224"))
		return 28;
	if (!strcmp(md, "SHA256"))
		return 32;
	if (!strcmp(md, "SHA384"))
		return 48;
	return 64;
}

/* The length the mechanism returns, or 0 for an invalid parameter. */
static size_t out_len_of(const CK_MECHANISM *mech, const char **why)
{
	bool general;
	mac_kind kind = kind_of(mech->mechanism, &general);
	size_t full;
	CK_ULONG want;

	*why = NULL;
	if (kind == K_NONE) {
		*why = "not a MAC mechanism";
		return 0;
	}
	full = full_len_of(mech->mechanism, kind);
	if (!general) {
		if (mech->ulParameterLen != 0) {
			*why = "the mechanism takes no parameter";
			return 0;
		}
		/* CKM_AES_MAC: half a block (PKCS#11 "general block cipher MAC"). */
		return kind == K_CBCMAC ? 8 : full;
	}
	/* CK_MAC_GENERAL_PARAMS is a CK_ULONG. */
	if (mech->ulParameterLen != sizeof(CK_ULONG) || !mech->pParameter) {
		*why = "the parameter must be a CK_MAC_GENERAL_PARAMS (CK_ULONG)";
		return 0;
	}
	memcpy(&want, mech->pParameter, sizeof(want));
	if (want == 0 || want > full) {
		*why = "the MAC length must be from 1 to the algorithm's output length";
		return 0;
	}
	return want;
}

CK_RV mac_check_param(const CK_MECHANISM *mech, const char **why)
{
	return out_len_of(mech, why) ? CKR_OK : CKR_MECHANISM_PARAM_INVALID;
}

static EVP_MAC_CTX *evp_mac(const char *alg, const char *param, const char *value,
			    const uint8_t *key, size_t key_len)
{
	EVP_MAC *mac = EVP_MAC_fetch(ossl_ctx(), alg, NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(param, (char *)value, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx && EVP_MAC_init(ctx, key, key_len, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	EVP_MAC_free(mac);
	return ctx;
}

CK_RV mac_new(const CK_MECHANISM *mech, const uint8_t *key, size_t key_len, tp_mac **out)
{
	const char *why = NULL;
	size_t n = out_len_of(mech, &why);
	bool general;
	tp_mac *m = NULL;
	char cipher[24];
	bool ok = false;

	*out = NULL;
	if (!n) {
		log_error("%s: invalid mechanism parameter (%lu bytes): %s",
			  mech_name(mech->mechanism), (unsigned long)mech->ulParameterLen, why);
		return CKR_MECHANISM_PARAM_INVALID;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return CKR_HOST_MEMORY;
	m->kind = kind_of(mech->mechanism, &general);
	m->full_len = full_len_of(mech->mechanism, m->kind);
	m->out_len = n;
	if (m->kind != K_HMAC && key_len != 16 && key_len != 24 && key_len != 32) {
		mac_free(m);
		return CKR_KEY_SIZE_RANGE;
	}
	snprintf(cipher, sizeof(cipher), "AES-%zu-CBC", key_len * 8);
	switch (m->kind) {
	case K_HMAC:
		m->mctx = evp_mac("HMAC", OSSL_MAC_PARAM_DIGEST,
				  digest_md_name(mech->mechanism), key, key_len);
		ok = m->mctx != NULL;
		break;
	case K_CMAC:
		m->mctx = evp_mac("CMAC", OSSL_MAC_PARAM_CIPHER, cipher, key, key_len);
		ok = m->mctx != NULL;
		break;
	case K_CBCMAC: {
		static const uint8_t zero_iv[16];
		EVP_CIPHER *c = EVP_CIPHER_fetch(ossl_ctx(), cipher, NULL);

		m->cctx = c ? EVP_CIPHER_CTX_new() : NULL;
		ok = m->cctx && EVP_EncryptInit_ex2(m->cctx, c, key, zero_iv, NULL) == 1 &&
		     EVP_CIPHER_CTX_set_padding(m->cctx, 0) == 1;
		EVP_CIPHER_free(c);
		break;
	}
	case K_NONE:
		break;
	}
	if (!ok) {
		mac_free(m);
		return CKR_GENERAL_ERROR;
	}
	*out = m;
	return CKR_OK;
}

void mac_free(tp_mac *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->mctx);
	EVP_CIPHER_CTX_free(m->cctx);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

size_t mac_len(const tp_mac *m)
{
	return m->out_len;
}

/* One block through the CBC chain; the chaining value is kept in last. */
static bool cbc_block(tp_mac *m, const uint8_t *block)
{
	int outl = 0;

	m->any_block = true;
	return EVP_EncryptUpdate(m->cctx, m->last, &outl, block, 16) == 1 && outl == 16;
}

CK_RV mac_update(tp_mac *m, const uint8_t *in, size_t in_len)
{
	if (m->kind != K_CBCMAC)
		return in_len == 0 || EVP_MAC_update(m->mctx, in, in_len) == 1 ? CKR_OK
									       : CKR_GENERAL_ERROR;
	while (in_len > 0) {
		size_t take = 16 - m->part_len < in_len ? 16 - m->part_len : in_len;

		memcpy(m->part + m->part_len, in, take);
		m->part_len += take;
		in += take;
		in_len -= take;
		/* A full block is only chained once more data follows, so that
		 * the final block is known at the end. */
		if (m->part_len == 16 && in_len > 0) {
			if (!cbc_block(m, m->part))
				return CKR_GENERAL_ERROR;
			m->part_len = 0;
		}
	}
	return CKR_OK;
}

CK_RV mac_final(tp_mac *m, uint8_t *out)
{
	uint8_t full[EVP_MAX_MD_SIZE];
	size_t n = 0;
	CK_RV rv = CKR_GENERAL_ERROR;

	if (m->kind == K_CBCMAC) {
		/* The last (possibly partial) block, zero padded; empty data is
		 * one zero block. */
		if (m->part_len > 0 || !m->any_block) {
			memset(m->part + m->part_len, 0, 16 - m->part_len);
			if (!cbc_block(m, m->part))
				goto out;
		}
		memcpy(full, m->last, 16);
		n = 16;
	} else if (EVP_MAC_final(m->mctx, full, &n, sizeof(full)) != 1) {
		goto out;
	}
	if (n != m->full_len)
		goto out;
	memcpy(out, full, m->out_len);
	rv = CKR_OK;
out:
	OPENSSL_cleanse(full, sizeof(full));
	return rv;
}
