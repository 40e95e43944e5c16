/* AES encryption and decryption on soft keys (PKCS#11 2.40 current
 * mechanisms §2.10, §2.14): CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD,
 * CKM_AES_CTR, CKM_AES_GCM, CKM_AES_KEY_WRAP (RFC 3394) and
 * CKM_AES_KEY_WRAP_PAD (RFC 5649).  All crypto through OpenSSL EVP in the
 * module's private library context; no locks, no PKCS#11 object model.
 *
 * A tp_cipher is one encryption or decryption: created by aes_cipher_new
 * (parameter and key checks), fed by aes_cipher_update, ended by
 * aes_cipher_final.  Output lengths are exact and known before any work
 * (aes_cipher_update_len), except at the end of padded decryptions, so
 * aes_cipher_final and aes_cipher_oneshot never change the context: the
 * caller can retry them with a larger buffer (the two-call convention).
 * docs/objects-and-mechanisms.md describes every rule. */
#ifndef TP_MECH_AES_H
#define TP_MECH_AES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

/* The most input a multi-part operation buffers (GCM decryption) and the
 * largest input of the single-part key wraps. */
#define TP_AES_MAX_BUFFER ((size_t)1 << 28)

typedef struct tp_cipher tp_cipher;

/* True for the AES encryption mechanisms of this file. */
bool aes_is_cipher(CK_MECHANISM_TYPE type);

/* The parameter of mech, by length and content: CKR_OK or
 * CKR_MECHANISM_PARAM_INVALID, with the reason in *why (static text). */
CK_RV aes_check_param(const CK_MECHANISM *mech, const char **why);

/* A new operation with key (16, 24 or 32 bytes, else CKR_KEY_SIZE_RANGE);
 * CKR_MECHANISM_PARAM_INVALID (logged) for a bad parameter. */
CK_RV aes_cipher_new(const CK_MECHANISM *mech, const uint8_t *key, size_t key_len, bool enc,
		     tp_cipher **out);
void aes_cipher_free(tp_cipher *c);

/* False for the key wraps: single-part only. */
bool aes_cipher_multipart(const tp_cipher *c);

/* Exact output of an update with in_len more bytes; CKR_DATA_LEN_RANGE
 * when the CTR counter would overflow, or the GCM decryption buffer
 * would exceed TP_AES_MAX_BUFFER (CKR_ENCRYPTED_DATA_LEN_RANGE). */
CK_RV aes_cipher_update_len(const tp_cipher *c, size_t in_len, size_t *out_len);
/* out must hold aes_cipher_update_len bytes; *out_len gets the count. */
CK_RV aes_cipher_update(tp_cipher *c, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t *out_len);

/* The last part into *out (malloc'd, *out_len bytes, the caller wipes and
 * frees it), c unchanged.  Errors: CKR_DATA_LEN_RANGE /
 * CKR_ENCRYPTED_DATA_LEN_RANGE (incomplete block), CKR_ENCRYPTED_DATA_INVALID
 * (padding, tag, key wrap integrity). */
CK_RV aes_cipher_final(const tp_cipher *c, uint8_t **out, size_t *out_len);

/* The whole single-part operation on in, from c's initial state (c must
 * not have been updated), c unchanged; output as aes_cipher_final. */
CK_RV aes_cipher_oneshot(const tp_cipher *c, const uint8_t *in, size_t in_len,
			 uint8_t **out, size_t *out_len);

#endif
