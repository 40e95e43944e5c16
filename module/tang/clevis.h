/* Clevis JWEs with the "tang" pin (TANG_PROTOCOL.md §6), bound to one
 * configured server: the checks that need no network, the recovery
 * (S comes from the JWE's own clevis.tang.adv, found by its kid, so JWEs
 * made for rotated keys work), and offline encryption byte-compatible with
 * clevis 19.  No PKCS#11 types: mech/jwe.c maps the errors. */
#ifndef TP_TANG_CLEVIS_H
#define TP_TANG_CLEVIS_H

#include <stddef.h>
#include <stdint.h>

#include "jose/jwe.h"
#include "tang/adv.h"
#include "tang/server.h"
#include "util/err.h"

#define TP_CLEVIS_MAX_ADV_KEYS 32

typedef struct tp_clevis_jwe {
	tp_jwe jwe;
	tp_exchange_key key;          /* S from clevis.tang.adv; kid = the JWE's kid
	                                 verbatim (S256, or S1 for clevis <= 16) */
	uint8_t epk[TP_EC_MAX_POINT]; /* C, on S's curve */
	size_t epk_len;
} tp_clevis_jwe;

/* Every check that needs no network, in this order: the JWE's structure
 * (jose/jwe.h), alg/enc/zip/crit/epk/apu/apv, clevis.pin "tang" (an "sss"
 * JWE is refused: a later version), clevis.tang.url names srv (normalised
 * comparison), the kid is the S256 (then S1) thumbprint of a key in
 * clevis.tang.adv that allows deriveKey, epk a point of that key's curve.
 * TP_ERR_INPUT with one log line naming the server (and the kid when
 * known); TP_ERR_NOMEM.  cj is cleared first; clevis_jwe_clear it after. */
tp_err clevis_jwe_parse(const tp_tang_server *srv, const char *text, size_t len,
			tp_clevis_jwe *cj);
void clevis_jwe_clear(tp_clevis_jwe *cj);

/* The plaintext: one POST /rec/<kid> (tang_recover), the Concat KDF and
 * AES-256-GCM.  pt receives cj->jwe.ciphertext_len bytes, written only
 * once the tag verified.  TP_ERR_INPUT (logged) when the tag does not
 * verify (tampered JWE, or a server that answered with a wrong point);
 * network and server failures as tang_recover (logged there). */
tp_err clevis_jwe_decrypt(tp_tang_server *srv, const tp_clevis_jwe *cj, uint8_t *pt);

/* A compact Clevis JWE of pt for exchange key `key` of srv's cached
 * advertisement, offline: header {"alg":"ECDH-ES","clevis":{"pin":"tang",
 * "tang":{"adv":<payload>,"url":<url verbatim>}},"enc":"A256GCM","epk":..,
 * "kid":<S256>} compact with sorted keys, as clevis 19 writes it.
 * TP_ERR_UNKNOWN_KEY (logged) when the cached advertisement no longer
 * lists key (rotated meanwhile).  *out is malloc'd, NUL-terminated. */
tp_err clevis_jwe_encrypt(tp_tang_server *srv, const tp_exchange_key *key,
			  const uint8_t *pt, size_t len, char **out, size_t *out_len);

#endif
