#include "store/crypt.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "util/ec.h"

store_status crypt_random(uint8_t *out, size_t len)
{
	return RAND_bytes_ex(ossl_ctx(), out, len, 0) == 1 ? STORE_OK : STORE_FAILED;
}

static store_status kdf_run(const char *name, OSSL_PARAM *params, uint8_t *out, size_t out_len)
{
	store_status s = STORE_FAILED;
	EVP_KDF *kdf = EVP_KDF_fetch(ossl_ctx(), name, NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;

	if (!ctx)
		goto out;
	if (EVP_KDF_derive(ctx, out, out_len, params) != 1)
		goto out;
	s = STORE_OK;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return s;
}

store_status crypt_hkdf(const uint8_t *ikm, size_t ikm_len,
			const uint8_t *salt, size_t salt_len,
			const char *info, uint8_t *out, size_t out_len)
{
	OSSL_PARAM params[5];
	size_t i = 0;

	params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (salt_len)
		params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
								(void *)salt, salt_len);
	params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
							(void *)info, strlen(info));
	params[i] = OSSL_PARAM_construct_end();
	return kdf_run("HKDF", params, out, out_len);
}

store_status crypt_scrypt(const uint8_t *pin, size_t pin_len,
			  const uint8_t salt[STORE_SALT_LEN],
			  uint8_t log2n, uint8_t r, uint8_t p, uint8_t out[STORE_KEY_LEN])
{
	OSSL_PARAM params[6];
	uint64_t n = (uint64_t)1 << log2n;
	uint32_t rr = r, pp = p;
	/* scrypt keys HMAC with the password, and HMAC zero-pads short keys
	 * and hashes long ones: "1234" and "1234\0" would be one PIN, and a
	 * long PIN's SHA-256 another spelling of it.  SHA-256 first makes
	 * every password 32 bytes, so distinct PINs stay distinct. */
	uint8_t pw[32];
	unsigned int pw_len = 0;
	static const uint8_t empty[1];
	EVP_MD *sha = EVP_MD_fetch(ossl_ctx(), "SHA256", NULL);
	store_status s = STORE_FAILED;

	if (sha && EVP_Digest(pin_len ? pin : empty, pin_len, pw, &pw_len, sha, NULL) == 1 &&
	    pw_len == sizeof(pw)) {
		params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, pw,
							      sizeof(pw));
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							      (void *)salt, STORE_SALT_LEN);
		params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
		params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr);
		params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp);
		params[5] = OSSL_PARAM_construct_end();
		s = kdf_run("SCRYPT", params, out, STORE_KEY_LEN);
	}
	OPENSSL_cleanse(pw, sizeof(pw));
	EVP_MD_free(sha);
	return s;
}

static EVP_CIPHER_CTX *gcm_ctx(const uint8_t *key, const uint8_t *nonce, int enc,
			       const uint8_t *aad, size_t aad_len)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(ossl_ctx(), "AES-256-GCM", NULL);
	EVP_CIPHER_CTX *ctx = c ? EVP_CIPHER_CTX_new() : NULL;
	int outl;

	if (!ctx)
		goto fail;
	if (EVP_CipherInit_ex2(ctx, c, key, nonce, enc, NULL) != 1)
		goto fail;
	if (aad_len && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
		goto fail;
	EVP_CIPHER_free(c);
	return ctx;
fail:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return NULL;
}

store_status crypt_gcm_seal(const uint8_t key[STORE_KEY_LEN],
			    const uint8_t nonce[STORE_NONCE_LEN],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *pt, size_t pt_len,
			    uint8_t *ct, uint8_t tag[STORE_TAG_LEN])
{
	store_status s = STORE_FAILED;
	EVP_CIPHER_CTX *ctx = NULL;
	int outl = 0, fin = 0;

	if (pt_len > STORE_MAX_FILE)
		goto out;
	ctx = gcm_ctx(key, nonce, 1, aad, aad_len);
	if (!ctx)
		goto out;
	if (pt_len && EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)pt_len) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, ct + outl, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, STORE_TAG_LEN, tag) != 1)
		goto out;
	s = STORE_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	return s;
}

store_status crypt_gcm_open(const uint8_t key[STORE_KEY_LEN],
			    const uint8_t nonce[STORE_NONCE_LEN],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *ct, size_t ct_len,
			    const uint8_t tag[STORE_TAG_LEN], uint8_t *pt)
{
	store_status s = STORE_FAILED;
	EVP_CIPHER_CTX *ctx = NULL;
	int outl = 0, fin = 0;

	if (ct_len > STORE_MAX_FILE)
		goto out;
	ctx = gcm_ctx(key, nonce, 0, aad, aad_len);
	if (!ctx)
		goto out;
	if (ct_len && EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)ct_len) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, STORE_TAG_LEN, (void *)tag) != 1)
		goto out;
	/* The only failure left is the tag: not authentic. */
	s = EVP_DecryptFinal_ex(ctx, pt + outl, &fin) == 1 ? STORE_OK : STORE_DAMAGED;
out:
	if (s != STORE_OK && ct_len)
		OPENSSL_cleanse(pt, ct_len);
	EVP_CIPHER_CTX_free(ctx);
	return s;
}

store_status crypt_hmac(const uint8_t key[STORE_KEY_LEN],
			const uint8_t *data, size_t len, uint8_t out[STORE_MAC_LEN])
{
	store_status s = STORE_FAILED;
	EVP_MAC *mac = EVP_MAC_fetch(ossl_ctx(), "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	size_t outl = 0;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!ctx)
		goto out;
	if (EVP_MAC_init(ctx, key, STORE_KEY_LEN, params) != 1 ||
	    EVP_MAC_update(ctx, data, len) != 1 ||
	    EVP_MAC_final(ctx, out, &outl, STORE_MAC_LEN) != 1 || outl != STORE_MAC_LEN)
		goto out;
	s = STORE_OK;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return s;
}
