/* JWE compact serialization (RFC 7516) for direct key agreement: ECDH-ES
 * with A256GCM, the Concat KDF (RFC 7518 §4.6.2) and AES-256-GCM over the
 * module's private OpenSSL context.  Knows nothing of Tang or Clevis.
 *
 * Parsing is strict and bounded: exactly five parts, strict base64url,
 * empty encrypted_key, 96-bit IV, 128-bit tag, a JSON object as protected
 * header.  Trailing whitespace (and NUL bytes) after the fifth part is
 * tolerated: files and shells add a newline, C callers a terminator.  The AAD is the protected header's b64u text as
 * received, never a re-serialisation. */
#ifndef TP_JOSE_JWE_H
#define TP_JOSE_JWE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/err.h"

#define TP_JWE_MAX_TEXT (16 * 1024 * 1024)   /* a whole compact JWE */
#define TP_JWE_MAX_HEADER_B64 (64 * 1024)    /* its protected header, b64u chars */
#define TP_JWE_MAX_PARTY_INFO 1024           /* decoded apu / apv bytes */
#define TP_JWE_IV_LEN 12
#define TP_JWE_TAG_LEN 16
#define TP_JWE_CEK_LEN 32                    /* A256GCM */

typedef struct tp_jwe {
	char *protected_b64;         /* NUL-terminated copy: the AAD */
	size_t protected_len;
	json_t *header;              /* the decoded protected header (an object) */
	uint8_t iv[TP_JWE_IV_LEN];
	uint8_t tag[TP_JWE_TAG_LEN];
	uint8_t *ciphertext;         /* never NULL after a successful parse */
	size_t ciphertext_len;       /* = the plaintext's length (GCM) */
} tp_jwe;

/* Parse a compact JWE of len bytes (not necessarily NUL-terminated).
 * TP_ERR_INPUT with *why a static reason when malformed; TP_ERR_NOMEM.
 * No log line: the caller knows the context.  jwe is cleared first. */
tp_err jwe_parse(const char *text, size_t len, tp_jwe *jwe, const char **why);
void jwe_clear(tp_jwe *jwe);

/* The header of a direct ECDH-ES + A256GCM JWE: alg "ECDH-ES", enc
 * "A256GCM", an "epk" object; "apu"/"apv", if present, strict base64url
 * strings of at most TP_JWE_MAX_PARTY_INFO bytes (they enter the KDF, as in
 * jose); no "zip" (nothing here inflates), no "crit" (we implement no
 * extension, RFC 7516 §4.1.13).  Other members are ignored.  TP_ERR_INPUT
 * with *why otherwise. */
tp_err jwe_check_ecdh_es(const tp_jwe *jwe, const char **why);

/* Concat KDF with SHA-256 for ECDH-ES direct agreement with a 256-bit enc:
 * SHA-256(00000001 || z || len32(enc) || enc || len32(apu) || apu ||
 *         len32(apv) || apv || 00000100). */
tp_err jwe_concat_kdf(const uint8_t *z, size_t z_len, const char *enc,
		      const uint8_t *apu, size_t apu_len,
		      const uint8_t *apv, size_t apv_len,
		      uint8_t cek[TP_JWE_CEK_LEN]);
/* The CEK of a parsed JWE (checked with jwe_check_ecdh_es) from z,
 * including its apu/apv. */
tp_err jwe_derive_cek(const tp_jwe *jwe, const uint8_t *z, size_t z_len,
		      uint8_t cek[TP_JWE_CEK_LEN]);

/* AES-256-GCM.  seal writes len bytes of ciphertext and the tag; open
 * writes len bytes of plaintext into pt only once the tag verified:
 * on TP_ERR_INPUT (tag mismatch) pt holds zeros. */
tp_err jwe_gcm_seal(const uint8_t cek[TP_JWE_CEK_LEN], const uint8_t iv[TP_JWE_IV_LEN],
		    const char *aad, size_t aad_len, const uint8_t *pt, size_t len,
		    uint8_t *ct, uint8_t tag[TP_JWE_TAG_LEN]);
tp_err jwe_gcm_open(const uint8_t cek[TP_JWE_CEK_LEN], const uint8_t iv[TP_JWE_IV_LEN],
		    const char *aad, size_t aad_len, const uint8_t *ct, size_t len,
		    const uint8_t tag[TP_JWE_TAG_LEN], uint8_t *pt);

/* Decrypt a parsed JWE with its CEK into pt (ciphertext_len bytes). */
tp_err jwe_open(const tp_jwe *jwe, const uint8_t cek[TP_JWE_CEK_LEN], uint8_t *pt);

/* A compact JWE with the given protected header text (JSON, used
 * verbatim), an empty encrypted_key, a random IV: malloc'd NUL-terminated
 * text into *out (its length in *out_len), no trailing newline. */
tp_err jwe_seal(const char *header_json, size_t header_len,
		const uint8_t cek[TP_JWE_CEK_LEN], const uint8_t *pt, size_t len,
		char **out, size_t *out_len);

#endif
