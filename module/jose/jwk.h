/* EC JWKs (P-256/384/521) and RFC 7638 thumbprints as jose computes them. */
#ifndef TP_JOSE_JWK_H
#define TP_JOSE_JWK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/ec.h"
#include "util/err.h"

typedef enum tp_thp_hash { TP_THP_S1, TP_THP_S256 } tp_thp_hash;

#define TP_THP_MAX_RAW 32
#define TP_THP_MAX_B64 44            /* 43 chars + NUL */

/* Public EC JWK -> curve and validated uncompressed point (out holds
 * TP_EC_MAX_POINT).  Requires kty "EC", a known crv, x and y of exactly the
 * field length, point on the curve and not infinity.  TP_ERR_INPUT otherwise. */
tp_err jwk_to_point(const json_t *jwk, const tp_curve **curve, uint8_t *out, size_t *out_len);
/* {"alg":alg,"crv":..,"kty":"EC","x":..,"y":..}; alg may be NULL (omitted). */
json_t *jwk_from_point(const tp_curve *c, const uint8_t *pt, const char *alg);

/* Thumbprint over {"crv","kty","x","y"} (members copied verbatim). raw may
 * be NULL; b64 may be NULL.  raw gets 32 (S256) or 20 (S1) bytes. */
tp_err jwk_thumbprint(const json_t *jwk, tp_thp_hash hash, uint8_t *raw, char *b64);

/* True iff the JWK explicitly allows op: "key_ops" contains it, or "use"
 * is "sig" (for "verify"/"sign") / "enc" (for "deriveKey"). */
bool jwk_allows(const json_t *jwk, const char *op);

#endif
