#include "jose/b64url.h"

#include <stdlib.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_encoded_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i = 0, o = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
}

char *b64url_encode_alloc(const uint8_t *in, size_t n)
{
	char *out;

	if (n > (SIZE_MAX - 1) / 4 * 3)
		return NULL;
	out = malloc(b64url_encoded_len(n) + 1);
	if (out)
		b64url_encode(in, n, out);
	return out;
}

static int value_of(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* The decoded length of len chars, or SIZE_MAX when no encoder produces
 * that length (a lone trailing char carries fewer than 8 bits). */
static size_t decoded_len(size_t len)
{
	if (len % 4 == 1)
		return SIZE_MAX;
	return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

/* Strict decode into out (decoded_len(len) bytes): rejects anything outside
 * the alphabet and non-zero bits in the last char, as jose does, so every
 * byte string has exactly one accepted encoding. */
static tp_err decode_into(const char *in, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int v = value_of(in[i]);
		if (v < 0)
			return TP_ERR_INPUT;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits && (acc & ((1u << bits) - 1)))
		return TP_ERR_INPUT;
	return TP_OK;
}

tp_err b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
	size_t n = decoded_len(len);
	uint8_t *buf;
	tp_err err;

	*out = NULL;
	*out_len = 0;
	if (!in || n == SIZE_MAX)
		return TP_ERR_INPUT;
	/* One spare byte so an empty result is still a valid pointer. */
	buf = malloc(n + 1);
	if (!buf)
		return TP_ERR_NOMEM;
	err = decode_into(in, len, buf);
	if (err != TP_OK) {
		free(buf);
		return err;
	}
	*out = buf;
	*out_len = n;
	return TP_OK;
}

tp_err b64url_decode_exact(const char *in, size_t len, uint8_t *out, size_t want)
{
	if (!in || decoded_len(len) != want)
		return TP_ERR_INPUT;
	return decode_into(in, len, out);
}
