/* A Tang advertisement, verified and pinned (TANG_PROTOCOL.md §3):
 * payload {"keys":[...]}; every key that explicitly allows "verify" must have
 * signed; the thp pin (S256, else S1) must match such a key of the payload. */
#ifndef TP_TANG_ADV_H
#define TP_TANG_ADV_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jose/jwk.h"
#include "util/ec.h"
#include "util/err.h"

/* One exchange key (alg ECMR / key_ops deriveKey) of an advertisement. */
typedef struct tp_exchange_key {
	const tp_curve *curve;
	uint8_t point[TP_EC_MAX_POINT];   /* S, uncompressed */
	size_t point_len;
	uint8_t id[TP_THP_MAX_RAW];       /* raw S256 thumbprint: CKA_ID */
	char kid[TP_THP_MAX_B64];         /* b64u S256 thumbprint */
} tp_exchange_key;

typedef struct tp_adv {
	json_t *payload;                  /* {"keys":[...]} as received */
	size_t n_keys;
	tp_exchange_key *keys;            /* payload order; keys[0] is clevis's choice */
} tp_adv;

/* Verify the JWS text jws (len bytes).  thp may be NULL (trusted as given,
 * signatures still checked).  origin names the server or file in log lines.
 * TP_ERR_BAD_REPLY for malformed input, TP_ERR_UNTRUSTED for signature or
 * pin failures; one log line either way. */
tp_err adv_verify(const char *jws, size_t len, const char *thp,
		  const char *origin, tp_adv **out);
void adv_free(tp_adv *adv);

#endif
