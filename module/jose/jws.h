/* JWS in JSON serialization (flattened or general), ECDSA ES256/ES384/ES512
 * with raw R||S signatures.  Verification is over the b64u text exactly as
 * received; nothing is re-serialised. */
#ifndef TP_JOSE_JWS_H
#define TP_JOSE_JWS_H

#include <stdbool.h>

#include <jansson.h>

#include "util/err.h"

/* Number of signatures of a JWS object (flattened: 1, general: array size),
 * and the protected/signature b64u strings of signature i. */
size_t jws_signature_count(const json_t *jws);
bool jws_signature(const json_t *jws, size_t i, const char **protected_b64, const char **sig_b64);

/* TP_OK iff signature i of jws verifies with the public EC jwk, and the
 * protected header's "alg" matches the key's curve (ES512 for P-521 ...). */
tp_err jws_verify_signature(const json_t *jws, size_t i, const json_t *jwk);

#endif
