/* base64url: RFC 4648 §10 vectors (translated to the url alphabet, no
 * padding) and the strictness jose applies. */
#include "test.h"

#include "jose/b64url.h"

static void roundtrip(const char *plain, const char *enc)
{
	size_t n = strlen(plain);
	char out[64];
	char *alloc;
	uint8_t *dec = NULL;
	uint8_t exact[32];
	size_t dec_len = 0;

	CHECK(b64url_encoded_len(n) == strlen(enc));
	b64url_encode((const uint8_t *)plain, n, out);
	CHECK(strcmp(out, enc) == 0);
	alloc = b64url_encode_alloc((const uint8_t *)plain, n);
	CHECK(alloc && strcmp(alloc, enc) == 0);
	free(alloc);
	CHECK_ERR(b64url_decode(enc, strlen(enc), &dec, &dec_len), TP_OK);
	CHECK(dec && dec_len == n && memcmp(dec, plain, n) == 0);
	free(dec);
	CHECK_ERR(b64url_decode_exact(enc, strlen(enc), exact, n), TP_OK);
	CHECK(memcmp(exact, plain, n) == 0);
	if (n > 0)
		CHECK_ERR(b64url_decode_exact(enc, strlen(enc), exact, n - 1), TP_ERR_INPUT);
	CHECK_ERR(b64url_decode_exact(enc, strlen(enc), exact, n + 1), TP_ERR_INPUT);
}

static void rejected(const char *enc)
{
	uint8_t *dec = (uint8_t *)"x";
	size_t dec_len = 7;
	uint8_t buf[64];

	CHECK_ERR(b64url_decode(enc, strlen(enc), &dec, &dec_len), TP_ERR_INPUT);
	CHECK(dec == NULL && dec_len == 0);
	for (size_t want = 0; want < 8; want++)
		CHECK_ERR(b64url_decode_exact(enc, strlen(enc), buf, want), TP_ERR_INPUT);
}

int main(void)
{
	/* RFC 4648 §10 */
	roundtrip("", "");
	roundtrip("f", "Zg");
	roundtrip("fo", "Zm8");
	roundtrip("foo", "Zm9v");
	roundtrip("foob", "Zm9vYg");
	roundtrip("fooba", "Zm9vYmE");
	roundtrip("foobar", "Zm9vYmFy");
	/* The url alphabet: 62 -> '-', 63 -> '_' (standard '+', '/'). */
	roundtrip("\xfb\xff", "-_8");
	roundtrip("\xff\xff\xff", "____");
	roundtrip("\xfb\xef\xbe", "----");

	rejected("Zg==");          /* padding */
	rejected("Zm8=");
	rejected("+_8");           /* standard alphabet */
	rejected("-/8");
	rejected("Zm9v\n");        /* whitespace */
	rejected(" Zm9v");
	rejected("Zm 9v");
	rejected("Z");             /* 6 bits cannot be a byte */
	rejected("Zm9vY");
	rejected("Zh");            /* non-zero trailing bits: "f" is Zg */
	rejected("Zm9");           /* "fo" is Zm8 */
	rejected("Zm9vYh");
	rejected("Zm9vYmF");

	/* An embedded NUL ends nothing: len counts. */
	{
		uint8_t *dec = NULL;
		size_t dec_len;
		CHECK_ERR(b64url_decode("Zg\0g", 4, &dec, &dec_len), TP_ERR_INPUT);
		free(dec);
	}
	/* Every byte value survives a round trip. */
	{
		uint8_t all[256], *dec = NULL;
		size_t dec_len = 0;
		char *enc;
		for (int i = 0; i < 256; i++)
			all[i] = (uint8_t)i;
		for (size_t n = 0; n <= 256; n += 17) {
			enc = b64url_encode_alloc(all, n);
			CHECK(enc && strlen(enc) == b64url_encoded_len(n));
			CHECK(enc && strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(enc));
			CHECK_ERR(b64url_decode(enc, strlen(enc), &dec, &dec_len), TP_OK);
			CHECK(dec_len == n && memcmp(dec, all, n) == 0);
			free(dec);
			free(enc);
		}
	}
	return test_exit("b64url");
}
