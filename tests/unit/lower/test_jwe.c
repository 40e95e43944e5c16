/* jose/jwe.c, util/url.c and tang/clevis.c without a server:
 * - the Concat KDF against SHA-256 over the layout of TANG_PROTOCOL.md §6,
 *   built byte by byte here;
 * - AES-256-GCM against plain OpenSSL (default context), seal/open round
 *   trips, tag/AAD failures that leave no plaintext;
 * - every malformed compact JWE jwe_parse must refuse, and what it must
 *   tolerate (trailing whitespace);
 * - URL normalisation;
 * - clevis_jwe_encrypt with the fixture advertisement (configured, so no
 *   network), opened here with the fixture's private exchange key (ECDH by
 *   plain OpenSSL), and by `jose jwe dec` when the jose CLI is there. */
#include "test.h"
#include "ossl_helpers.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include "jose/b64url.h"
#include "jose/jwe.h"
#include "jose/jwk.h"
#include "tang/clevis.h"
#include "tang/server.h"
#include "util/ec.h"
#include "util/log.h"
#include "util/url.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* SHA-256(00000001 || Z || 00000007 "A256GCM" || len(apu) apu ||
 * len(apv) apv || 00000100), assembled by hand. */
static void expected_cek(const uint8_t *z, size_t z_len, const char *apu, const char *apv,
			 uint8_t *out)
{
	uint8_t buf[512];
	size_t n = 0;
	unsigned int md_len = 0;

	put32(buf + n, 1);
	n += 4;
	memcpy(buf + n, z, z_len);
	n += z_len;
	put32(buf + n, 7);
	n += 4;
	memcpy(buf + n, "A256GCM", 7);
	n += 7;
	put32(buf + n, (uint32_t)strlen(apu));
	n += 4;
	memcpy(buf + n, apu, strlen(apu));
	n += strlen(apu);
	put32(buf + n, (uint32_t)strlen(apv));
	n += 4;
	memcpy(buf + n, apv, strlen(apv));
	n += strlen(apv);
	put32(buf + n, 256);
	n += 4;
	EVP_Digest(buf, n, out, &md_len, EVP_sha256(), NULL);
}

static void test_concat_kdf(void)
{
	uint8_t z[66], cek[32], want[32];

	for (size_t i = 0; i < sizeof(z); i++)
		z[i] = (uint8_t)(i * 7 + 1);
	z[0] = 0;   /* a leading zero byte is part of Z, never stripped */
	CHECK_ERR(jwe_concat_kdf(z, sizeof(z), "A256GCM", NULL, 0, NULL, 0, cek), TP_OK);
	expected_cek(z, sizeof(z), "", "", want);
	CHECK(memcmp(cek, want, 32) == 0);

	CHECK_ERR(jwe_concat_kdf(z, sizeof(z), "A256GCM", (const uint8_t *)"Alice", 5,
				 (const uint8_t *)"Bob", 3, cek), TP_OK);
	expected_cek(z, sizeof(z), "Alice", "Bob", want);
	CHECK(memcmp(cek, want, 32) == 0);

	/* P-256 sized Z too. */
	CHECK_ERR(jwe_concat_kdf(z, 32, "A256GCM", NULL, 0, NULL, 0, cek), TP_OK);
	expected_cek(z, 32, "", "", want);
	CHECK(memcmp(cek, want, 32) == 0);
}

/* AES-256-GCM by plain OpenSSL in its default context. */
static void ref_gcm(const uint8_t *key, const uint8_t *iv, const char *aad,
		    const uint8_t *pt, int len, uint8_t *ct, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0;

	EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv);
	EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad));
	if (len)
		EVP_EncryptUpdate(ctx, ct, &n, pt, len);
	EVP_EncryptFinal_ex(ctx, ct + len, &n);
	EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
	EVP_CIPHER_CTX_free(ctx);
}

static void test_gcm(void)
{
	uint8_t key[32], iv[12], pt[1000], ct[1000], ct2[1000], tag[16], tag2[16], back[1000];
	const char *aad = "eyJhbGciOiJFQ0RILUVTIn0";

	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i ^ 0x5a);
	memset(key, 0x11, sizeof(key));
	memset(iv, 0x22, sizeof(iv));
	CHECK_ERR(jwe_gcm_seal(key, iv, aad, strlen(aad), pt, sizeof(pt), ct, tag), TP_OK);
	ref_gcm(key, iv, aad, pt, sizeof(pt), ct2, tag2);
	CHECK(memcmp(ct, ct2, sizeof(ct)) == 0 && memcmp(tag, tag2, 16) == 0);
	CHECK_ERR(jwe_gcm_open(key, iv, aad, strlen(aad), ct, sizeof(ct), tag, back), TP_OK);
	CHECK(memcmp(back, pt, sizeof(pt)) == 0);

	/* A wrong tag, AAD or key: TP_ERR_INPUT and nothing left in back. */
	tag[0] ^= 1;
	memset(back, 0xee, sizeof(back));
	CHECK_ERR(jwe_gcm_open(key, iv, aad, strlen(aad), ct, sizeof(ct), tag, back), TP_ERR_INPUT);
	for (size_t i = 0; i < sizeof(back); i++)
		if (back[i] != 0) {
			CHECK(!"plaintext left after a tag failure");
			break;
		}
	tag[0] ^= 1;
	CHECK_ERR(jwe_gcm_open(key, iv, "eyJhbGciOiJFQ0RILUVTIm0", strlen(aad), ct, sizeof(ct),
			       tag, back), TP_ERR_INPUT);
	key[5] ^= 1;
	CHECK_ERR(jwe_gcm_open(key, iv, aad, strlen(aad), ct, sizeof(ct), tag, back), TP_ERR_INPUT);

	/* Empty plaintext: the tag alone authenticates the header. */
	key[5] ^= 1;
	CHECK_ERR(jwe_gcm_seal(key, iv, aad, strlen(aad), NULL, 0, ct, tag), TP_OK);
	ref_gcm(key, iv, aad, NULL, 0, ct2, tag2);
	CHECK(memcmp(tag, tag2, 16) == 0);
	CHECK_ERR(jwe_gcm_open(key, iv, aad, strlen(aad), ct, 0, tag, back), TP_OK);
}

static const char *header_json =
	"{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":{\"crv\":\"P-256\",\"kty\":\"EC\"}}";

static void test_seal_parse_open(void)
{
	uint8_t cek[32], pt[70000], *back;
	const char *why = NULL;
	char *jwe = NULL, *tmp;
	size_t len = 0;
	tp_jwe j;

	memset(cek, 3, sizeof(cek));
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 13);
	CHECK_ERR(jwe_seal(header_json, strlen(header_json), cek, pt, sizeof(pt), &jwe, &len), TP_OK);
	CHECK(len == strlen(jwe));
	CHECK_ERR(jwe_parse(jwe, len, &j, &why), TP_OK);
	CHECK(why == NULL);
	CHECK(j.ciphertext_len == sizeof(pt));
	CHECK(strcmp(json_string_value(json_object_get(j.header, "alg")), "ECDH-ES") == 0);
	CHECK_ERR(jwe_check_ecdh_es(&j, &why), TP_OK);
	back = malloc(sizeof(pt));
	CHECK_ERR(jwe_open(&j, cek, back), TP_OK);
	CHECK(memcmp(back, pt, sizeof(pt)) == 0);
	free(back);
	jwe_clear(&j);

	/* Trailing whitespace is tolerated; the AAD stays the header text. */
	tmp = malloc(len + 4);
	sprintf(tmp, "%s \n\t", jwe);
	CHECK_ERR(jwe_parse(tmp, len + 3, &j, &why), TP_OK);
	jwe_clear(&j);
	CHECK_ERR(jwe_parse(tmp, len + 4, &j, &why), TP_OK);   /* with the NUL */
	jwe_clear(&j);
	free(tmp);
	free(jwe);

	/* Empty plaintext: "hdr..iv..tag". */
	CHECK_ERR(jwe_seal(header_json, strlen(header_json), cek, NULL, 0, &jwe, &len), TP_OK);
	CHECK(strstr(jwe, "..") != NULL);
	CHECK_ERR(jwe_parse(jwe, len, &j, &why), TP_OK);
	CHECK(j.ciphertext_len == 0 && j.ciphertext != NULL);
	CHECK_ERR(jwe_open(&j, cek, NULL), TP_OK);
	jwe_clear(&j);
	free(jwe);
}

/* hdr_json base64url'ed into "<hdr>..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA". */
static char *with_header(const char *hdr_json)
{
	char *h = b64url_encode_alloc((const uint8_t *)hdr_json, strlen(hdr_json));
	char *out = malloc(strlen(h) + 64);

	sprintf(out, "%s..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", h);
	free(h);
	return out;
}

static tp_err parse_text(const char *text, const char **why)
{
	tp_jwe j;
	tp_err err = jwe_parse(text, text ? strlen(text) : 0, &j, why);

	if (err == TP_OK)
		err = jwe_check_ecdh_es(&j, why);
	jwe_clear(&j);
	return err;
}

static void test_malformed(void)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{ "", "fewer than five parts" },
		{ "a.b.c.d", "fewer than five parts" },
		{ "e30..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA.AAAA", "more than five parts" },
		{ "e30..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA.", "more than five parts" },
		{ "e30.AA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "encrypted_key" },
		{ "e30..AAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "IV" },
		{ "e30..AAAAAAAAAAAAAAA=.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "IV" },
		{ "e30..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAA", "tag" },
		{ "e30..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAB", "tag" },
		{ "e30..AAAAAAAAAAAAAAAA.AA+A.AAAAAAAAAAAAAAAAAAAAAA", "ciphertext" },
		{ "e30..AAAAAAAAAAAAAAAA.A.AAAAAAAAAAAAAAAAAAAAAA", "ciphertext" },
		{ "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "empty protected header" },
		{ "e3 0..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "not base64url" },
		{ " e30..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "not base64url" },
		{ "W10..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "JSON object" },    /* [] */
		{ "e30..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "alg" },            /* {} */
	};
	static const struct {
		const char *hdr;
		const char *why;
	} bad_hdr[] = {
		{ "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{}}", "alg" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A128GCM\",\"epk\":{}}", "enc" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":{},\"zip\":\"DEF\"}", "zip" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":{},\"crit\":[\"b64\"]}", "crit" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\"}", "epk" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":\"x\"}", "epk" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":{},\"apu\":\"a=\"}", "apu" },
		{ "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":{},\"apv\":7}", "apv" },
		{ "{\"alg\":\"ECDH-ES\",\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":{}}", "JSON object" },
	};
	const char *why;
	char *text, *big;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECK_ERR(parse_text(bad[i].text, &why), TP_ERR_INPUT);
		if (!why || !strstr(why, bad[i].why)) {
			fprintf(stderr, "\"%s\": reason \"%s\", want \"%s\"\n", bad[i].text,
				why ? why : "(none)", bad[i].why);
			test_failures++;
		}
	}
	for (size_t i = 0; i < sizeof(bad_hdr) / sizeof(bad_hdr[0]); i++) {
		text = with_header(bad_hdr[i].hdr);
		why = NULL;
		CHECK_ERR(parse_text(text, &why), TP_ERR_INPUT);
		if (!why || !strstr(why, bad_hdr[i].why)) {
			fprintf(stderr, "%s: reason \"%s\", want \"%s\"\n", bad_hdr[i].hdr,
				why ? why : "(none)", bad_hdr[i].why);
			test_failures++;
		}
		free(text);
	}
	CHECK_ERR(parse_text(NULL, &why), TP_ERR_INPUT);

	/* apu / apv as RFC 7518 uses them: they enter the KDF. */
	{
		tp_jwe j;
		uint8_t z[32] = { 9 }, cek[32], want[32];

		text = with_header("{\"alg\":\"ECDH-ES\",\"apu\":\"QWxpY2U\",\"apv\":\"Qm9i\","
				   "\"enc\":\"A256GCM\",\"epk\":{}}");
		CHECK_ERR(jwe_parse(text, strlen(text), &j, &why), TP_OK);
		CHECK_ERR(jwe_check_ecdh_es(&j, &why), TP_OK);
		CHECK_ERR(jwe_derive_cek(&j, z, sizeof(z), cek), TP_OK);
		expected_cek(z, sizeof(z), "Alice", "Bob", want);
		CHECK(memcmp(cek, want, 32) == 0);
		jwe_clear(&j);
		free(text);
	}

	/* Size bounds: the header (64 KiB of b64u) and the whole text (16 MiB). */
	big = malloc(TP_JWE_MAX_HEADER_B64 + 64);
	memset(big, 'A', TP_JWE_MAX_HEADER_B64 + 4);
	strcpy(big + TP_JWE_MAX_HEADER_B64 + 4, "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA");
	CHECK_ERR(parse_text(big, &why), TP_ERR_INPUT);
	CHECK(why && strstr(why, "64 KiB"));
	free(big);
	big = malloc(TP_JWE_MAX_TEXT + 64);
	memcpy(big, "e30..AAAAAAAAAAAAAAAA.", 22);
	memset(big + 22, 'A', TP_JWE_MAX_TEXT);
	strcpy(big + 22 + TP_JWE_MAX_TEXT, ".AAAAAAAAAAAAAAAAAAAAAA");
	CHECK_ERR(parse_text(big, &why), TP_ERR_INPUT);
	CHECK(why && strstr(why, "16 MiB"));
	free(big);
}

static void test_url(void)
{
	static const char *const same[][2] = {
		{ "http://127.0.0.1:8080", "http://127.0.0.1:8080/" },
		{ "http://tang.example", "HTTP://Tang.Example:80/" },
		{ "https://tang.example/", "https://TANG.example:443" },
		{ "http://[::1]:80/x/", "http://[::1]/x" },
		{ "http://h/a//", "http://h/a" },
	};
	static const char *const differ[][2] = {
		{ "http://127.0.0.1:8080", "http://127.0.0.1:8081" },
		{ "http://tang.example", "https://tang.example" },
		{ "http://tang.example:443", "https://tang.example" },
		{ "http://h/a", "http://h/A" },
		{ "http://h/a", "http://h/a/b" },
		{ "http://h", "http://h.evil" },
		{ "not a url", "not a url/" },
	};
	char *n;

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		CHECK(url_same_server(same[i][0], same[i][1]));
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++)
		CHECK(!url_same_server(differ[i][0], differ[i][1]));
	CHECK(url_same_server("not a url", "not a url"));
	CHECK(!url_same_server(NULL, "http://h"));
	n = url_normalize("HTTPS://Host.Example:443/Path/");
	CHECK(n && strcmp(n, "https://host.example/Path") == 0);
	free(n);
	n = url_normalize("http://h:8080");
	CHECK(n && strcmp(n, "http://h:8080") == 0);
	free(n);
	CHECK(url_normalize("http://") == NULL);
	n = url_normalize("http://h:80x");
	CHECK(n != NULL);   /* port kept verbatim */
	free(n);
	CHECK(url_normalize("://h") == NULL);
}

/* ---- clevis layer, offline ----------------------------------------- */

static tp_tang_server *fixture_server(const char *url)
{
	char *adv = fixture_text("adv521.jws", NULL);
	tp_tang_server *srv = tang_server_new(url, NULL, adv, 2);

	free(adv);
	return srv;
}

/* Opens jwe with the fixture's private exchange key, ECDH by OpenSSL. */
static bool open_with_fixture_key(const tp_clevis_jwe *cj, uint8_t *pt)
{
	json_t *k = fixture_json("exc521.jwk");
	const tp_curve *c = ec_curve_by_jwk_name("P-521");
	uint8_t d[66], pub[TP_EC_MAX_POINT], z[66], cek[32];
	size_t z_len = sizeof(z);
	const char *dv = json_string_value(json_object_get(k, "d"));
	EVP_PKEY *priv, *peer;
	bool ok;

	CHECK_ERR(jwk_to_point(k, NULL, pub, NULL), TP_OK);
	CHECK_ERR(b64url_decode_exact(dv, strlen(dv), d, 66), TP_OK);
	priv = ref_key_from_priv(c, d, pub);
	peer = ref_key_from_pub(c, cj->epk);
	ok = ref_ecdh(priv, peer, z, &z_len) && z_len == 66 &&
	     jwe_derive_cek(&cj->jwe, z, 66, cek) == TP_OK && jwe_open(&cj->jwe, cek, pt) == TP_OK;
	EVP_PKEY_free(priv);
	EVP_PKEY_free(peer);
	json_decref(k);
	OPENSSL_cleanse(d, sizeof(d));
	return ok;
}

/* `jose jwe dec` with the fixture key (alg/key_ops dropped: jose would
 * not use an ECMR key for ECDH-ES otherwise).  -1 when jose/jq missing. */
static int jose_decrypts(const char *jwe, const uint8_t *pt, size_t len)
{
	char dir[] = "/tmp/tp-lower-jwe.XXXXXX", cmd[1024], path[256], *got;
	size_t got_len = 0;
	FILE *fp;
	int ok;

	if (system("command -v jose >/dev/null && command -v jq >/dev/null") != 0 || !mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/jwe", dir);
	fp = fopen(path, "w");
	fputs(jwe, fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd),
		 "jq -c 'del(.alg, .key_ops)' %s/exc521.jwk > %s/k.jwk && "
		 "jose jwe dec -i %s/jwe -k %s/k.jwk -O %s/pt",
		 FIXTURES, dir, dir, dir, dir);
	ok = system(cmd) == 0;
	snprintf(path, sizeof(path), "%s/pt", dir);
	got = fixture_text_abs(path);
	if (got) {
		FILE *f2 = fopen(path, "rb");

		fseek(f2, 0, SEEK_END);
		got_len = (size_t)ftell(f2);
		fclose(f2);
	}
	ok = ok && got && got_len == len && memcmp(got, pt, len) == 0;
	free(got);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		ok = 0;
	return ok;
}

static void test_clevis_offline(void)
{
	tp_tang_server *srv = fixture_server("http://tang.example:8080");
	tp_exchange_key *keys = NULL;
	size_t n_keys = 0, len = 0;
	uint8_t pt[300], back[300];
	char *jwe = NULL;
	tp_clevis_jwe cj;
	json_t *payload = NULL;
	int jose;

	CHECK(srv != NULL);
	/* No payload before the advertisement was verified. */
	CHECK_ERR(tang_server_payload(srv, &payload), TP_ERR_GENERAL);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n_keys), TP_OK);
	CHECK(n_keys == 1);
	CHECK_ERR(tang_server_payload(srv, &payload), TP_OK);
	CHECK(json_is_array(json_object_get(payload, "keys")));
	json_decref(payload);

	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i + 1);
	CHECK_ERR(clevis_jwe_encrypt(srv, &keys[0], pt, sizeof(pt), &jwe, &len), TP_OK);
	CHECK_ERR(clevis_jwe_parse(srv, jwe, len, &cj), TP_OK);
	CHECK(strcmp(cj.key.kid, keys[0].kid) == 0);
	CHECK(cj.jwe.ciphertext_len == sizeof(pt));
	CHECK(open_with_fixture_key(&cj, back));
	CHECK(memcmp(back, pt, sizeof(pt)) == 0);
	clevis_jwe_clear(&cj);
	jose = jose_decrypts(jwe, pt, sizeof(pt));
	if (jose < 0)
		fprintf(stderr, "jose or jq missing: jose jwe dec check skipped\n");
	else
		CHECK(jose == 1);
	free(jwe);

	/* Another spelling of the same URL is the same server; another is not. */
	{
		tp_tang_server *same = fixture_server("HTTP://TANG.example:8080/");
		tp_tang_server *other = fixture_server("http://tang.example:8081");

		CHECK_ERR(clevis_jwe_encrypt(srv, &keys[0], pt, 1, &jwe, &len), TP_OK);
		CHECK_ERR(clevis_jwe_parse(same, jwe, len, &cj), TP_OK);
		clevis_jwe_clear(&cj);
		CHECK_ERR(clevis_jwe_parse(other, jwe, len, &cj), TP_ERR_INPUT);
		clevis_jwe_clear(&cj);
		free(jwe);
		tang_server_free(same);
		tang_server_free(other);
	}

	/* A key the cached advertisement no longer lists: refused. */
	{
		tp_exchange_key gone = keys[0];

		gone.kid[0] = gone.kid[0] == 'A' ? 'B' : 'A';
		CHECK_ERR(clevis_jwe_encrypt(srv, &gone, pt, 1, &jwe, &len), TP_ERR_UNKNOWN_KEY);
		CHECK(jwe == NULL);
	}
	free(keys);
	tang_server_free(srv);
}

int main(void)
{
	setenv("TANG_PKCS11_LOG", "stderr", 1);
	log_open();
	test_concat_kdf();
	test_gcm();
	test_seal_parse_open();
	test_malformed();
	test_url();
	test_clevis_offline();
	ossl_ctx_free();
	log_close();
	return test_exit("test_jwe");
}
