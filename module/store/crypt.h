/* The store's cryptography, always in the module's private OSSL_LIB_CTX:
 * HKDF-SHA256, scrypt, AES-256-GCM, HMAC-SHA256, random bytes.  Every
 * function returns STORE_OK or STORE_FAILED (an OpenSSL failure), except
 * crypt_gcm_open, whose STORE_DAMAGED means "did not authenticate" (a
 * wrong key or a modified input: the caller knows which it can be). */
#ifndef TP_STORE_CRYPT_H
#define TP_STORE_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "store/record.h"
#include "store/store.h"

store_status crypt_random(uint8_t *out, size_t len);

/* HKDF-SHA256 (RFC 5869) extract-and-expand to out_len bytes. */
store_status crypt_hkdf(const uint8_t *ikm, size_t ikm_len,
			const uint8_t *salt, size_t salt_len,
			const char *info, uint8_t *out, size_t out_len);

/* scrypt(SHA-256(pin), salt, N = 2^log2n, r, p) to STORE_KEY_LEN bytes
 * (the digest keeps PINs that HMAC would confuse apart). */
store_status crypt_scrypt(const uint8_t *pin, size_t pin_len,
			  const uint8_t salt[STORE_SALT_LEN],
			  uint8_t log2n, uint8_t r, uint8_t p, uint8_t out[STORE_KEY_LEN]);

/* AES-256-GCM; ct has pt_len bytes (and pt ct_len bytes). */
store_status crypt_gcm_seal(const uint8_t key[STORE_KEY_LEN],
			    const uint8_t nonce[STORE_NONCE_LEN],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *pt, size_t pt_len,
			    uint8_t *ct, uint8_t tag[STORE_TAG_LEN]);
store_status crypt_gcm_open(const uint8_t key[STORE_KEY_LEN],
			    const uint8_t nonce[STORE_NONCE_LEN],
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *ct, size_t ct_len,
			    const uint8_t tag[STORE_TAG_LEN], uint8_t *pt);

store_status crypt_hmac(const uint8_t key[STORE_KEY_LEN],
			const uint8_t *data, size_t len, uint8_t out[STORE_MAC_LEN]);

#endif
