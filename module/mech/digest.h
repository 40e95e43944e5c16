/* Message digests: CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384,
 * CKM_SHA512 (FIPS 180-4), no parameter.  OpenSSL EVP in the module's
 * private library context. */
#ifndef TP_MECH_DIGEST_H
#define TP_MECH_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

typedef struct tp_digest tp_digest;

bool digest_is_digest(CK_MECHANISM_TYPE type);
/* OpenSSL's name of the hash of a digest or HMAC mechanism, or NULL. */
const char *digest_md_name(CK_MECHANISM_TYPE type);

/* CKR_MECHANISM_PARAM_INVALID (logged) when a parameter is given. */
CK_RV digest_new(const CK_MECHANISM *mech, tp_digest **out);
void digest_free(tp_digest *d);
size_t digest_len(const tp_digest *d);
CK_RV digest_update(tp_digest *d, const uint8_t *in, size_t in_len);
/* Writes digest_len bytes; the computation is over. */
CK_RV digest_final(tp_digest *d, uint8_t *out);

#endif
