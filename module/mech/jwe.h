/* CKM_TANG_JWE (tang-pkcs11.h): Clevis JWEs with the "tang" pin.  The
 * PKCS#11 face of tang/clevis.c: parameter check, CK_RV mapping, secret
 * buffers.  Decrypt/unwrap need the token's server (the JWE must be bound
 * to it); encrypt/wrap a Tang public key's exchange key.  docs/jwe.md. */
#ifndef TP_MECH_JWE_H
#define TP_MECH_JWE_H

#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "jose/jwe.h"
#include "tang/clevis.h"
#include "tang/server.h"
#include "util/err.h"

/* The largest plaintext C_Encrypt/C_WrapKey take: its JWE stays below
 * TP_JWE_MAX_TEXT, so the module reads back what it writes. */
#define TP_JWE_MAX_PLAINTEXT ((TP_JWE_MAX_TEXT - TP_JWE_MAX_HEADER_B64 - 64) / 4 * 3)

/* The mechanism takes no parameter: CKR_MECHANISM_PARAM_INVALID when one
 * is given.  A pure check (callers may hold the lock; they log). */
CK_RV mech_jwe_check_param(const CK_MECHANISM *mech);

/* Every check that needs no network (tang/clevis.h), for the server srv.
 * input_rv is what malformed input means here: CKR_ENCRYPTED_DATA_INVALID
 * (decrypt) or CKR_WRAPPED_KEY_INVALID (unwrap).  On CKR_OK the plaintext
 * length is cj->jwe.ciphertext_len; clevis_jwe_clear(cj) in any case. */
CK_RV mech_jwe_parse(const tp_tang_server *srv, const uint8_t *in, size_t len,
		     CK_RV input_rv, tp_clevis_jwe *cj);

/* The recovery exchange (network: call with no lock held).  *pt is a
 * malloc'd buffer of cj->jwe.ciphertext_len (+1) bytes holding the
 * verified plaintext; free it with OPENSSL_clear_free.  A tag mismatch is
 * input_rv; network and server failures CKR_DEVICE_ERROR with the tang
 * layer's tp_err in *dev_err (TP_OK otherwise). */
CK_RV mech_jwe_decrypt(tp_tang_server *srv, const tp_clevis_jwe *cj, CK_RV input_rv,
		       uint8_t **pt, tp_err *dev_err);

/* A JWE of pt for exchange key `key`, offline.  CKR_DATA_LEN_RANGE above
 * TP_JWE_MAX_PLAINTEXT; *out malloc'd (not secret: it is ciphertext). */
CK_RV mech_jwe_encrypt(tp_tang_server *srv, const tp_exchange_key *key,
		       const uint8_t *pt, size_t len, char **out, size_t *out_len,
		       tp_err *dev_err);

#endif
