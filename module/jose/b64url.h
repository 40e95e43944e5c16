/* base64url without padding (RFC 7515 §2), strict like jose: '=', '+', '/',
 * whitespace and non-canonical trailing bits are rejected. */
#ifndef TP_JOSE_B64URL_H
#define TP_JOSE_B64URL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

size_t b64url_encoded_len(size_t n);
/* Writes b64url_encoded_len(n) chars plus a NUL into out. */
void b64url_encode(const uint8_t *in, size_t n, char *out);
/* Malloc'd NUL-terminated encoding, or NULL on allocation failure. */
char *b64url_encode_alloc(const uint8_t *in, size_t n);
/* Decodes exactly len chars of in into a malloc'd buffer (*out, *out_len);
 * TP_ERR_INPUT on any invalid character or length. */
tp_err b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);
/* Decodes into a caller buffer that must hold exactly `want` bytes:
 * TP_ERR_INPUT unless the decoded length is exactly want. */
tp_err b64url_decode_exact(const char *in, size_t len, uint8_t *out, size_t want);

#endif
