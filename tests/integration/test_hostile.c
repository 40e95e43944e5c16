/* tp-hostile: the module against a hostile Tang server (issue 6, item 1).
 *
 * A small HTTP server in this process (loopback, a thread per connection)
 * answers GET /adv and POST /rec/{kid} as the current case says.  Its good
 * answers are real: the advertisement is signed here with the fixture
 * tangd's own signing key (TANG_DB), and /rec answers s·X computed from
 * its exchange key; every hostile answer is one of those, damaged at the
 * HTTP level (stalls, resets, truncation, huge or chunked bodies, wrong
 * Content-Length, redirects, error statuses) or at the content level (bad
 * JSON, deep nesting, wrong shapes, JWKs with missing or extra members,
 * points off the curve, at infinity, on another curve, of the wrong
 * length, a valid point that is not s·X; advertisements with missing,
 * wrong, foreign, unpinned or mislabelled signatures, two exchange keys,
 * none).
 *
 * For each case: the documented CK_RV (docs/errors.md, docs/hardening.md)
 * and ulDeviceError, within the timeout plus a margin, one log line naming
 * the server, no plaintext in the output buffer, bounded memory, and the
 * next request to the (again healthy) server works.  /rec cases run both
 * through C_DeriveKey(CKM_ECDH1_DERIVE) and through C_Decrypt(CKM_TANG_JWE):
 * a valid point that is not s·X cannot be detected by a raw derive (the
 * exchange is unauthenticated by design), the JWE's tag catches it.
 *
 * Runs under tests/fixtures/with-tangd (for the real keys).  New cases are
 * rows of the tables at the end. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

#define TIMEOUT 2          /* the token's timeout, seconds */
#define MARGIN 5.0         /* generous bound on top of it */
#define STALL_MAX 30       /* a stalling handler gives up after this */

static tp_server_key key;       /* the real exchange key */
static json_t *sig_pub;         /* the real signing key's public JWK */
static EVP_PKEY *sig_key;       /* ... and the key itself */
static char url[64];

/* ---- the modes, read by every connection at its start ---------------- */

static pthread_mutex_t mode_lock = PTHREAD_MUTEX_INITIALIZER;
static char adv_mode[64] = "good", rec_mode[64] = "good";
static const char *adv_body;    /* the advertisement served by "good" */
static atomic_int n_conn, n_adv, n_rec, n_elsewhere;
static uint8_t last_x[66];      /* x of the last blinded point received */
static int active;              /* connection threads running (mode_lock) */
static int elsewhere_port;      /* a counting listener: redirect target */

static void get_last_x(uint8_t out[66])
{
	pthread_mutex_lock(&mode_lock);
	memcpy(out, last_x, 66);
	pthread_mutex_unlock(&mode_lock);
}

static void set_modes(const char *adv, const char *rec, const char *body)
{
	pthread_mutex_lock(&mode_lock);
	snprintf(adv_mode, sizeof adv_mode, "%s", adv);
	snprintf(rec_mode, sizeof rec_mode, "%s", rec);
	adv_body = body;
	pthread_mutex_unlock(&mode_lock);
}

/* ---- JOSE made here, independently of the module ---------------------- */

static char *b64u(const void *in, size_t n)
{
	char *o = malloc(n * 4 / 3 + 4);
	REQUIRE(o);
	tp_b64u_encode(in, n, o);
	return o;
}

static const char *crv_of(size_t field)
{
	return field == 66 ? "P-521" : field == 48 ? "P-384" : "P-256";
}

/* Public JWK of an EC key; alg and one key_op as tangd writes them. */
static json_t *pub_jwk(EVP_PKEY *k, const char *alg, const char *op)
{
	uint8_t raw[200];
	size_t n = tp_ec_point(k, raw, sizeof raw), f = (n - 1) / 2;
	char *x = b64u(raw + 1, f), *y = b64u(raw + 1 + f, f);
	json_t *j = json_pack("{s:s,s:s,s:[s],s:s,s:s,s:s}", "alg", alg, "crv", crv_of(f),
			      "key_ops", op, "kty", "EC", "x", x, "y", y);
	free(x);
	free(y);
	REQUIRE(j);
	return j;
}

/* One JWS signature object over protected.payload (ECDSA, raw r||s). */
static json_t *signature(const char *alg, const char *payload_b64, EVP_PKEY *k,
			 const EVP_MD *md, bool flip)
{
	char hdr[128];
	snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"cty\":\"jwk-set+json\"}", alg);
	char *prot = b64u(hdr, strlen(hdr));
	size_t in_len = strlen(prot) + 1 + strlen(payload_b64);
	char *in = malloc(in_len + 1);
	REQUIRE(in);
	snprintf(in, in_len + 1, "%s.%s", prot, payload_b64);
	unsigned char der[256], raw[132];
	size_t dl = sizeof der;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	REQUIRE(c && EVP_DigestSignInit(c, NULL, md, NULL, k) == 1);
	REQUIRE(EVP_DigestSign(c, der, &dl, (unsigned char *)in, in_len) == 1);
	EVP_MD_CTX_free(c);
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	REQUIRE(sig);
	int f = (EVP_PKEY_get_bits(k) + 7) / 8;
	REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, f) == f);
	REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + f, f) == f);
	ECDSA_SIG_free(sig);
	if (flip)
		raw[2 * f - 1] ^= 1;
	char *s = b64u(raw, 2 * (size_t)f);
	json_t *o = json_pack("{s:s,s:s}", "protected", prot, "signature", s);
	free(prot);
	free(in);
	free(s);
	REQUIRE(o);
	return o;
}

typedef struct {
	EVP_PKEY *key;
	const char *alg;
	const EVP_MD *md;
	bool flip;
} signer;

/* A general-serialization JWS of {"keys": keys} (keys is consumed). */
static char *make_adv(json_t *keys, const signer *s, int n, bool flattened)
{
	json_t *payload = json_pack("{s:o}", "keys", keys);
	char *ptxt = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	char *pb64 = b64u(ptxt, strlen(ptxt));
	json_t *jws;
	if (flattened) {
		jws = signature(s[0].alg, pb64, s[0].key, s[0].md, s[0].flip);
		json_object_set_new(jws, "payload", json_string(pb64));
	} else {
		json_t *sigs = json_array();
		for (int i = 0; i < n; i++)
			json_array_append_new(sigs, signature(s[i].alg, pb64, s[i].key, s[i].md,
							      s[i].flip));
		jws = json_pack("{s:s,s:o}", "payload", pb64, "signatures", sigs);
	}
	char *out = json_dumps(jws, JSON_COMPACT);
	json_decref(jws);
	json_decref(payload);
	free(ptxt);
	free(pb64);
	REQUIRE(out);
	return out;
}

/* Loads the fixture's signing key (ES512, not rotated) from TANG_DB. */
static void load_signing_key(void)
{
	const char *db = tp_env("TANG_DB");
	DIR *d = opendir(db);
	struct dirent *e;
	REQUIRE(d);
	while (!sig_key && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".jwk") != 0 || e->d_name[0] == '.')
			continue;
		char path[4400];
		snprintf(path, sizeof path, "%s/%s", db, e->d_name);
		json_t *j = json_load_file(path, 0, NULL);
		const char *alg = json_string_value(json_object_get(j, "alg"));
		uint8_t x[66], y[66], dd[66];
		if (alg && strcmp(alg, "ES512") == 0 &&
		    tp_b64u_decode(json_string_value(json_object_get(j, "x")), x, 66) == 66 &&
		    tp_b64u_decode(json_string_value(json_object_get(j, "y")), y, 66) == 66 &&
		    tp_b64u_decode(json_string_value(json_object_get(j, "d")), dd, 66) == 66) {
			sig_key = tp_ec_from_raw(x, y, dd);
			json_object_del(j, "d");
			sig_pub = json_incref(j);
		}
		OPENSSL_cleanse(dd, sizeof dd);
		json_decref(j);
	}
	closedir(d);
	REQUIRE(sig_key && sig_pub);
}

/* The exchange key's public JWK, as tangd advertises it. */
static json_t *exch_pub(void)
{
	json_t *j = json_load_file(key.path, 0, NULL);
	REQUIRE(j);
	json_object_del(j, "d");
	return j;
}

/* ---- the advertisements ------------------------------------------------ */

typedef struct {
	const char *name;
	char *text;
} adv_variant;

static adv_variant advs[32];
static size_t n_advs;

static void add_adv(const char *name, char *text)
{
	REQUIRE(n_advs < sizeof advs / sizeof advs[0]);
	advs[n_advs].name = name;
	advs[n_advs].text = text;
	n_advs++;
}

static const char *adv_text(const char *name)
{
	for (size_t i = 0; i < n_advs; i++)
		if (strcmp(advs[i].name, name) == 0)
			return advs[i].text;
	tp_fail(__FILE__, __LINE__, "no advertisement variant %s", name);
	exit(tp_exit());
}

static json_t *keys_of(json_t *a, json_t *b)
{
	return json_pack("[OO]", a, b);
}

static void make_advs(void)
{
	const signer real = { sig_key, "ES512", EVP_sha512(), false };
	EVP_PKEY *stranger = tp_ec_gen("P-521");
	EVP_PKEY *exch2 = tp_ec_gen("P-521");
	EVP_PKEY *p256 = tp_ec_gen("P-256");
	json_t *xp = exch_pub();
	json_t *k;

	add_adv("good", make_adv(keys_of(sig_pub, xp), &real, 1, false));
	add_adv("flattened", make_adv(keys_of(sig_pub, xp), &real, 1, true));
	{
		signer two[2] = { real, { stranger, "ES512", EVP_sha512(), false } };
		add_adv("also signed by a stranger", make_adv(keys_of(sig_pub, xp), two, 2, false));
	}
	{
		signer bad = real;
		bad.flip = true;
		add_adv("signature wrong", make_adv(keys_of(sig_pub, xp), &bad, 1, false));
	}
	add_adv("no signature", make_adv(keys_of(sig_pub, xp), &real, 0, false));
	{
		char *t = make_adv(keys_of(sig_pub, xp), &real, 1, false);
		json_t *j = json_loads(t, 0, NULL);
		json_object_del(j, "signatures");
		free(t);
		add_adv("no signatures member", json_dumps(j, JSON_COMPACT));
		json_decref(j);
	}
	{
		signer s = { stranger, "ES512", EVP_sha512(), false };
		add_adv("signed by a key not in the payload",
			make_adv(keys_of(sig_pub, xp), &s, 1, false));
		json_t *spub = pub_jwk(stranger, "ES512", "verify");
		add_adv("signed by a key other than the pinned one",
			make_adv(keys_of(spub, xp), &s, 1, false));
		json_decref(spub);
	}
	{
		signer s = { sig_key, "ES256", EVP_sha256(), false };
		add_adv("ES256 header on the P-521 key", make_adv(keys_of(sig_pub, xp), &s, 1, false));
		signer s2 = { sig_key, "ES384", EVP_sha384(), false };
		add_adv("ES384 header on the P-521 key", make_adv(keys_of(sig_pub, xp), &s2, 1, false));
	}
	{
		json_t *x2 = pub_jwk(exch2, "ECMR", "deriveKey");
		add_adv("two exchange keys", make_adv(json_pack("[OOO]", sig_pub, xp, x2), &real, 1,
						      false));
		json_decref(x2);
	}
	add_adv("no exchange key", make_adv(json_pack("[O]", sig_pub), &real, 1, false));
	/* The exchange key damaged (properly signed: only the key is wrong). */
	{
		uint8_t raw[133];
		REQUIRE(tp_ec_point(key.pkey, raw, sizeof raw) == 133);
		raw[132] ^= 1; /* y off by one: off the curve */
		char *y = b64u(raw + 67, 66);
		k = json_deep_copy(xp);
		json_object_set_new(k, "y", json_string(y));
		add_adv("exchange key off the curve", make_adv(keys_of(sig_pub, k), &real, 1, false));
		json_decref(k);
		free(y);

		k = json_deep_copy(xp);
		json_object_del(k, "y");
		add_adv("exchange key without y", make_adv(keys_of(sig_pub, k), &real, 1, false));
		json_decref(k);

		char *x65 = b64u(raw + 2, 65);
		k = json_deep_copy(xp);
		json_object_set_new(k, "x", json_string(x65));
		add_adv("exchange key x of 65 bytes", make_adv(keys_of(sig_pub, k), &real, 1, false));
		json_decref(k);
		free(x65);

		uint8_t zero[66] = { 0 };
		char *z = b64u(zero, 66);
		k = json_deep_copy(xp);
		json_object_set_new(k, "x", json_string(z));
		json_object_set_new(k, "y", json_string(z));
		add_adv("exchange key at infinity (0,0)", make_adv(keys_of(sig_pub, k), &real, 1, false));
		json_decref(k);
		free(z);

		/* P-256 coordinates claiming P-521 */
		json_t *pp = pub_jwk(p256, "ECMR", "deriveKey");
		json_object_set_new(pp, "crv", json_string("P-521"));
		add_adv("exchange key: P-256 point labelled P-521",
			make_adv(keys_of(sig_pub, pp), &real, 1, false));
		json_decref(pp);

		k = json_deep_copy(xp);
		json_object_set_new(k, "x5c", json_pack("[s]", "not a certificate"));
		json_object_set_new(k, "kid", json_string("whatever"));
		json_object_set_new(k, "use", json_string("enc"));
		add_adv("exchange key with extra members", make_adv(keys_of(sig_pub, k), &real, 1,
								    false));
		json_decref(k);
	}
	add_adv("keys is an object", make_adv(json_object(), &real, 1, false));
	{
		json_t *j = json_pack("{s:s,s:[]}", "payload", "!!not base64url!!", "signatures");
		add_adv("payload not base64url", json_dumps(j, JSON_COMPACT));
		json_decref(j);
	}
	json_decref(xp);
	EVP_PKEY_free(stranger);
	EVP_PKEY_free(exch2);
	EVP_PKEY_free(p256);
}

/* ---- /rec answers -------------------------------------------------------- */

/* s·X for the blinded point in the request, as tangd's JWK answer; the
 * mode may damage it.  NULL when the request itself is not one. */
static char *exchange(const char *req, const char *mode)
{
	json_t *j = json_loads(req, 0, NULL);
	const char *xs = json_string_value(json_object_get(j, "x"));
	const char *ys = json_string_value(json_object_get(j, "y"));
	uint8_t x[66], y[66], out[1 + 2 * 66];
	char *res = NULL;
	if (!xs || !ys || tp_b64u_decode(xs, x, 66) != 66 || tp_b64u_decode(ys, y, 66) != 66) {
		json_decref(j);
		return NULL;
	}
	pthread_mutex_lock(&mode_lock);
	memcpy(last_x, x, 66);
	pthread_mutex_unlock(&mode_lock);
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp521r1);
	EC_POINT *X = EC_POINT_new(g), *Y = EC_POINT_new(g);
	BIGNUM *bx = BN_bin2bn(x, 66, NULL), *by = BN_bin2bn(y, 66, NULL);
	BIGNUM *d = BN_bin2bn(key.d, 66, NULL);
	if (EC_POINT_set_affine_coordinates(g, X, bx, by, NULL) &&
	    EC_POINT_mul(g, Y, NULL, X, d, NULL) &&
	    EC_POINT_point2oct(g, Y, POINT_CONVERSION_UNCOMPRESSED, out, sizeof out, NULL) == sizeof out) {
		json_t *a = NULL;
		size_t xl = 66, yl = 66;
		const uint8_t *xp = out + 1, *yp = out + 67;
		uint8_t zero[66] = { 0 };
		const char *crv = "P-521";
		if (strcmp(mode, "random point") == 0) {
			/* valid, on the curve, not s·X */
			EVP_PKEY *r = tp_ec_gen("P-521");
			REQUIRE(tp_ec_point(r, out, sizeof out) == sizeof out);
			EVP_PKEY_free(r);
		} else if (strcmp(mode, "off the curve") == 0) {
			out[sizeof out - 1] ^= 1;
		} else if (strcmp(mode, "infinity (0,0)") == 0) {
			xp = yp = zero;
		} else if (strcmp(mode, "x of 65 bytes") == 0) {
			xp++, xl--;
		} else if (strcmp(mode, "y of 67 bytes") == 0) {
			yp--, yl++;
		} else if (strcmp(mode, "labelled P-256") == 0) {
			crv = "P-256";
		} else if (strcmp(mode, "P-256 point") == 0) {
			uint8_t p[65];
			EVP_PKEY *r = tp_ec_gen("P-256");
			REQUIRE(tp_ec_point(r, p, sizeof p) == 65);
			EVP_PKEY_free(r);
			memcpy(out + 1, p + 1, 32);
			memcpy(out + 67, p + 33, 32);
			xl = yl = 32;
			crv = "P-256";
		}
		char *ox = b64u(xp, xl), *oy = b64u(yp, yl);
		a = json_pack("{s:s,s:s,s:[s],s:s,s:s,s:s}", "alg", "ECMR", "crv", crv, "key_ops",
			      "deriveKey", "kty", "EC", "x", ox, "y", oy);
		free(ox);
		free(oy);
		if (strcmp(mode, "no y") == 0)
			json_object_del(a, "y");
		else if (strcmp(mode, "no crv") == 0)
			json_object_del(a, "crv");
		else if (strcmp(mode, "kty oct") == 0)
			json_object_set_new(a, "kty", json_string("oct"));
		else if (strcmp(mode, "x a number") == 0)
			json_object_set_new(a, "x", json_integer(1));
		else if (strcmp(mode, "extra members") == 0) {
			json_object_set_new(a, "kid", json_string("x"));
			json_object_set_new(a, "foo", json_pack("{s:[i,i]}", "bar", 1, 2));
		}
		res = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(a);
	}
	BN_free(bx);
	BN_free(by);
	BN_clear_free(d);
	EC_POINT_free(X);
	EC_POINT_free(Y);
	EC_GROUP_free(g);
	json_decref(j);
	return res;
}

/* ---- the HTTP server ------------------------------------------------------ */

static void send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		send_all(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Holds the connection until the client gives up (or STALL_MAX). */
static void stall(int fd)
{
	char b[256];
	for (int i = 0; i < STALL_MAX * 10; i++) {
		struct pollfd p = { fd, POLLIN, 0 };
		int r = poll(&p, 1, 100);
		if (r < 0 && errno != EINTR)
			return;
		if (r > 0 && recv(fd, b, sizeof b, MSG_DONTWAIT) <= 0)
			return;
	}
}

static void reply(int fd, const char *status, const char *type, const char *body, size_t n)
{
	sendf(fd, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status, type, n);
	send_all(fd, body, n);
}

/* Until the client hangs up: up to 64 MiB, announced or chunked. */
static void flood(int fd, bool chunked)
{
	static char chunk[65536];
	memset(chunk, '[', sizeof chunk);
	if (chunked)
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n");
	else
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			  "Content-Length: 67108864\r\n\r\n");
	for (int i = 0; i < 1024; i++) {
		if (chunked)
			sendf(fd, "%zx\r\n", sizeof chunk);
		ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		if (chunked)
			send_all(fd, "\r\n", 2);
	}
}

/* An answer of the HTTP level; good is the right body for the path.  false
 * when the mode is none of these. */
static bool http_mode(int fd, const char *mode, const char *good, const char *type,
		      const char *path)
{
	size_t n = good ? strlen(good) : 0;
	if (strcmp(mode, "stall before the headers") == 0) {
		stall(fd);
	} else if (strcmp(mode, "stall after the headers") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n);
		stall(fd);
	} else if (strcmp(mode, "stall in the body") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n);
		send_all(fd, good, n / 2);
		stall(fd);
	} else if (strcmp(mode, "status line then stall") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\n");
		stall(fd);
	} else if (strcmp(mode, "drip") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n);
		for (size_t i = 0; i < n && i < 150; i++) {
			if (send(fd, good + i, 1, MSG_NOSIGNAL) <= 0)
				break;
			usleep(200000);
		}
	} else if (strcmp(mode, "close at once") == 0) {
		/* nothing: the caller closes */
	} else if (strcmp(mode, "reset") == 0) {
		struct linger l = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	} else if (strcmp(mode, "reset after the headers") == 0) {
		struct linger l = { 1, 0 };
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n);
		usleep(50000);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	} else if (strcmp(mode, "truncated body, closed") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n);
		send_all(fd, good, n / 2);
	} else if (strcmp(mode, "Content-Length too small") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n / 2);
		send_all(fd, good, n);
	} else if (strcmp(mode, "Content-Length too large, held open") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type, n + 100);
		send_all(fd, good, n);
		stall(fd);
	} else if (strcmp(mode, "Content-Length not a number") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: many\r\n\r\n", type);
		send_all(fd, good, n);
	} else if (strcmp(mode, "two different Content-Lengths") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			  "Content-Length: %zu\r\n\r\n", type, n, n + 7);
		send_all(fd, good, n);
	} else if (strcmp(mode, "chunked, good") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n", type);
		for (size_t off = 0; off < n; off += 100) {
			size_t c = n - off < 100 ? n - off : 100;
			sendf(fd, "%zx\r\n", c);
			send_all(fd, good + off, c);
			send_all(fd, "\r\n", 2);
		}
		send_all(fd, "0\r\n\r\n", 5);
	} else if (strcmp(mode, "chunked, bad chunk size") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "zz\r\n%s\r\n0\r\n\r\n", type, "{}");
	} else if (strcmp(mode, "huge, announced") == 0) {
		flood(fd, false);
	} else if (strcmp(mode, "huge, chunked") == 0) {
		flood(fd, true);
	} else if (strcmp(mode, "redirect to itself") == 0) {
		sendf(fd, "HTTP/1.1 302 Found\r\nLocation: %s%s\r\nContent-Length: 0\r\n\r\n", url, path);
	} else if (strcmp(mode, "redirect elsewhere") == 0) {
		sendf(fd, "HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:%d%s\r\n"
			  "Content-Length: 0\r\n\r\n", elsewhere_port, path);
	} else if (strcmp(mode, "303 with a good body") == 0) {
		sendf(fd, "HTTP/1.1 303 See Other\r\nLocation: /\r\nContent-Type: %s\r\n"
			  "Content-Length: %zu\r\n\r\n", type, n);
		send_all(fd, good, n);
	} else if (strncmp(mode, "status ", 7) == 0) {
		reply(fd, mode + 7, "text/plain", "", 0);
	} else if (strncmp(mode, "status+body ", 12) == 0) {
		reply(fd, mode + 12, type, good, n);
	} else if (strcmp(mode, "not HTTP") == 0) {
		sendf(fd, "hello there\r\n\r\n");
	} else if (strcmp(mode, "HTTP/1.0, no length, closed") == 0) {
		sendf(fd, "HTTP/1.0 200 OK\r\nContent-Type: %s\r\n\r\n", type);
		send_all(fd, good, n);
	} else if (strcmp(mode, "empty 200") == 0) {
		reply(fd, "200 OK", type, "", 0);
	} else if (strcmp(mode, "not JSON") == 0) {
		reply(fd, "200 OK", type, "this is not JSON", 16);
	} else if (strcmp(mode, "JSON with a NUL") == 0) {
		reply(fd, "200 OK", type, "{\"a\":\"\0\"}", 9);
	} else if (strcmp(mode, "JSON array") == 0) {
		reply(fd, "200 OK", type, "[1,2,3]", 7);
	} else if (strcmp(mode, "JSON string") == 0) {
		reply(fd, "200 OK", type, "\"keys\"", 6);
	} else if (strcmp(mode, "deep nesting, arrays") == 0 ||
		   strcmp(mode, "deep nesting, objects") == 0) {
		bool obj = mode[14] == 'o';
		size_t depth = 40000, len = depth * (obj ? 6 : 1) + depth + 1;
		char *b = malloc(len + 1), *p = b;
		REQUIRE(b);
		for (size_t i = 0; i < depth; i++) {
			if (obj) {
				memcpy(p, "{\"a\":", 5);
				p += 5;
			} else {
				*p++ = '[';
			}
		}
		*p++ = '1';
		for (size_t i = 0; i < depth; i++)
			*p++ = obj ? '}' : ']';
		reply(fd, "200 OK", type, b, (size_t)(p - b));
		free(b);
	} else {
		return false;
	}
	return true;
}

static void *connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	size_t n = 0;
	char *end = NULL;
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	buf[0] = 0;
	while (n < sizeof buf - 1 && !(end = strstr(buf, "\r\n\r\n"))) {
		ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		buf[n] = 0;
	}
	if (!end)
		goto out;
	size_t clen = 0;
	char *cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl)
		clen = strtoul(cl + 17, NULL, 10);
	size_t have = n - (size_t)(end + 4 - buf);
	while (have < clen && n < sizeof buf - 1) {
		ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		have += (size_t)r;
		buf[n] = 0;
	}
	const char *body = end + 4;
	char amode[64], rmode[64], path[256];
	const char *good_adv;
	pthread_mutex_lock(&mode_lock);
	memcpy(amode, adv_mode, sizeof amode);
	memcpy(rmode, rec_mode, sizeof rmode);
	good_adv = adv_body;
	pthread_mutex_unlock(&mode_lock);
	sscanf(buf, "%*s %255s", path);

	if (strncmp(buf, "GET /adv", 8) == 0) {
		atomic_fetch_add(&n_adv, 1);
		if (!http_mode(fd, amode, good_adv, "application/jose+json", path))
			reply(fd, "200 OK", "application/jose+json", good_adv, strlen(good_adv));
	} else if (strncmp(buf, "POST /rec/", 10) == 0) {
		atomic_fetch_add(&n_rec, 1);
		char *ans = exchange(body, rmode);
		if (!ans)
			reply(fd, "400 Bad Request", "text/plain", "", 0);
		else if (!http_mode(fd, rmode, ans, "application/jwk+json", path))
			reply(fd, "200 OK", "application/jwk+json", ans, strlen(ans));
		free(ans);
	} else {
		printf("# test server: unexpected request: %.80s\n", buf);
		reply(fd, "404 Not Found", "text/plain", "", 0);
	}
out:
	close(fd);
	pthread_mutex_lock(&mode_lock);
	active--;
	pthread_mutex_unlock(&mode_lock);
	return NULL;
}

static int lfd, port, efd;

static void *server(void *arg)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return arg; /* closed: the end */
		}
		atomic_fetch_add(&n_conn, 1);
		pthread_t t;
		pthread_mutex_lock(&mode_lock);
		active++;
		pthread_mutex_unlock(&mode_lock);
		if (pthread_create(&t, NULL, connection, (void *)(intptr_t)fd) == 0) {
			pthread_detach(t);
		} else {
			close(fd);
			pthread_mutex_lock(&mode_lock);
			active--;
			pthread_mutex_unlock(&mode_lock);
		}
	}
}

/* The redirect target: counts connections, answers nothing. */
static void *elsewhere(void *arg)
{
	for (;;) {
		int fd = accept(efd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return arg;
		}
		atomic_fetch_add(&n_elsewhere, 1);
		close(fd);
	}
}

/* ---- the module side -------------------------------------------------------- */

static const char *log_path;
static char conf_path[4200];
static CK_SESSION_HANDLE sess;
static CK_OBJECT_HANDLE priv, pub;

static long vm_hwm_kib(void)
{
	char *s = tp_read_file("/proc/self/status", 0), *p;
	long v = -1;
	if (s && (p = strstr(s, "VmHWM:")))
		v = strtol(p + 6, NULL, 10);
	free(s);
	return v;
}

/* Tang private keys the token shows (a search makes it fetch the adv). */
static size_t count_private(CK_SESSION_HANDLE s, CK_RV *rv_out)
{
	CK_OBJECT_CLASS c = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t = { CKA_CLASS, &c, sizeof c };
	CK_OBJECT_HANDLE h[8];
	CK_ULONG n = 0;
	CK_RV rv = P->C_FindObjectsInit(s, &t, 1);
	if (rv == CKR_OK)
		rv = P->C_FindObjects(s, h, 8, &n);
	if (rv == CKR_OK)
		rv = P->C_FindObjectsFinal(s);
	else
		P->C_FindObjectsFinal(s);
	*rv_out = rv;
	return n;
}

/* A fresh initialization (the advertisement is cached per initialization,
 * and a failed fetch is not retried for a while). */
static void reinit(void)
{
	P->C_Finalize(NULL);
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	sess = tp_open(tp_slot("tang"));
	priv = pub = CK_INVALID_HANDLE;
}

static void find_keys(void)
{
	priv = tp_find_key(sess, CKO_PRIVATE_KEY, key.id);
	pub = tp_find_key(sess, CKO_PUBLIC_KEY, key.id);
}

/* Derive through the server with a fresh peer; *match: the value is s·X's x. */
static CK_RV derive_once(bool *match)
{
	EVP_PKEY *peer = tp_ec_gen("P-521");
	uint8_t raw[133], z[66], out[128];
	size_t ol = 0;
	tp_ec_point(peer, raw, sizeof raw);
	tp_ecdh(peer, key.pkey, z);
	memset(out, 0xA5, sizeof out);
	CK_RV rv = tp_derive(sess, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET, 0,
			     out, &ol);
	*match = rv == CKR_OK && ol == 66 && memcmp(out, z, 66) == 0;
	EVP_PKEY_free(peer);
	return rv;
}

static uint8_t secret[48];
static unsigned char *jwe;  /* CKM_TANG_JWE of secret, bound to the test server */
static CK_ULONG jwe_len;

static void make_jwe(void)
{
	CK_MECHANISM m = { CKM_TANG_JWE, NULL, 0 };
	REQUIRE(RAND_bytes(secret, sizeof secret) == 1);
	REQUIRE_RV(P->C_EncryptInit(sess, &m, pub), CKR_OK);
	REQUIRE_RV(P->C_Encrypt(sess, secret, sizeof secret, NULL, &jwe_len), CKR_OK);
	jwe = malloc(jwe_len);
	REQUIRE(jwe);
	REQUIRE_RV(P->C_Encrypt(sess, secret, sizeof secret, jwe, &jwe_len), CKR_OK);
}

/* C_Decrypt of the JWE; *leak: the output holds the secret (or any of its
 * 16-byte windows) though the call failed. */
static CK_RV decrypt_once(bool *ok, bool *leak)
{
	CK_MECHANISM m = { CKM_TANG_JWE, NULL, 0 };
	unsigned char out[256];
	CK_ULONG ol = sizeof out;
	memset(out, 0xA5, sizeof out);
	CK_RV rv = P->C_DecryptInit(sess, &m, priv);
	if (rv == CKR_OK)
		rv = P->C_Decrypt(sess, jwe, jwe_len, out, &ol);
	*ok = rv == CKR_OK && ol == sizeof secret && memcmp(out, secret, sizeof secret) == 0;
	*leak = false;
	if (rv != CKR_OK)
		for (size_t i = 0; i + 16 <= sizeof out; i++)
			for (size_t j = 0; j + 16 <= sizeof secret; j++)
				if (memcmp(out + i, secret + j, 16) == 0)
					*leak = true;
	return rv;
}

static void check_log(const char *what, size_t off, bool want_line)
{
	char *text = tp_read_file(log_path, off);
	tp_note("log: %s", text && *text ? text : "(none)\n");
	if (want_line) {
		CHECKF(text && tp_contains_ci(text, url), "%s: the log does not name %s", what, url);
		CHECKF(text && tp_count_lines(text) <= 3, "%s: %d log lines for one failure", what,
		       text ? tp_count_lines(text) : 0);
	}
	free(text);
}

/* After every hostile case: the healthy server works again, at once. */
static void healthy_again(const char *what)
{
	bool match = false;
	set_modes("good", "good", adv_text("good"));
	if (!priv)
		find_keys();
	CHECKF(priv != CK_INVALID_HANDLE, "%s: no Tang key once the server is healthy", what);
	CK_RV rv = derive_once(&match);
	CHECKF(rv == CKR_OK && match, "%s: derive with the healthy server: %s%s", what,
	       tp_rv_name(rv), rv == CKR_OK ? " (wrong value)" : "");
}

typedef struct {
	const char *mode;
	CK_RV derive_rv;     /* C_DeriveKey */
	CK_ULONG deverr;     /* ulDeviceError after it (0: not checked) */
	CK_RV decrypt_rv;    /* C_Decrypt(CKM_TANG_JWE) of a good JWE */
	bool value_ok;       /* CKR_OK derive yields s·X's x */
} rec_case;

typedef struct {
	const char *mode;    /* an HTTP mode, or "adv:NAME" for a variant */
	size_t n_keys;       /* Tang private keys shown; 0: the adv is refused */
} adv_case;

#define DEV(x) TANG_PKCS11_DEVERR_##x
static const rec_case REC[] = {
	{ "good", CKR_OK, 0, CKR_OK, true },
	{ "extra members", CKR_OK, 0, CKR_OK, true },
	{ "chunked, good", CKR_OK, 0, CKR_OK, true },
	/* undetectable by a raw derive; the JWE's tag catches it */
	{ "random point", CKR_OK, 0, CKR_ENCRYPTED_DATA_INVALID, false },
	{ "off the curve", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "infinity (0,0)", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "x of 65 bytes", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "y of 67 bytes", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "labelled P-256", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "P-256 point", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "no y", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "no crv", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "kty oct", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "x a number", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "not JSON", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "JSON with a NUL", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "JSON array", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "JSON string", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "empty 200", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "deep nesting, arrays", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "deep nesting, objects", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "status 400 Bad Request", CKR_DEVICE_ERROR, DEV(BAD_REQUEST), CKR_DEVICE_ERROR, false },
	{ "status 403 Forbidden", CKR_DEVICE_ERROR, DEV(REFUSED), CKR_DEVICE_ERROR, false },
	{ "status 404 Not Found", CKR_DEVICE_ERROR, DEV(UNKNOWN_KEY), CKR_DEVICE_ERROR, false },
	{ "status 500 Internal Server Error", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "status 503 Service Unavailable", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "status+body 500 Internal Server Error", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "status+body 201 Created", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "status+body 204 No Content", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "status 100 Continue", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "303 with a good body", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "redirect to itself", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "redirect elsewhere", CKR_DEVICE_ERROR, DEV(HTTP), CKR_DEVICE_ERROR, false },
	{ "close at once", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "reset", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "reset after the headers", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "truncated body, closed", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "Content-Length too small", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "Content-Length not a number", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "two different Content-Lengths", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "chunked, bad chunk size", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "not HTTP", CKR_DEVICE_ERROR, 0, CKR_DEVICE_ERROR, false },
	{ "huge, announced", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "huge, chunked", CKR_DEVICE_ERROR, DEV(BAD_REPLY), CKR_DEVICE_ERROR, false },
	{ "stall before the headers", CKR_DEVICE_ERROR, DEV(TIMEOUT), CKR_DEVICE_ERROR, false },
	{ "status line then stall", CKR_DEVICE_ERROR, DEV(TIMEOUT), CKR_DEVICE_ERROR, false },
	{ "stall after the headers", CKR_DEVICE_ERROR, DEV(TIMEOUT), CKR_DEVICE_ERROR, false },
	{ "stall in the body", CKR_DEVICE_ERROR, DEV(TIMEOUT), CKR_DEVICE_ERROR, false },
	{ "Content-Length too large, held open", CKR_DEVICE_ERROR, DEV(TIMEOUT), CKR_DEVICE_ERROR, false },
	{ "drip", CKR_DEVICE_ERROR, DEV(TIMEOUT), CKR_DEVICE_ERROR, false },
};

static const adv_case ADV[] = {
	{ "adv:good", 1 },
	{ "adv:flattened", 1 },
	{ "adv:also signed by a stranger", 1 },
	{ "adv:two exchange keys", 2 },
	{ "adv:exchange key with extra members", 1 },
	{ "chunked, good", 1 },
	{ "HTTP/1.0, no length, closed", 1 },
	{ "adv:signature wrong", 0 },
	{ "adv:no signature", 0 },
	{ "adv:no signatures member", 0 },
	{ "adv:signed by a key not in the payload", 0 },
	{ "adv:signed by a key other than the pinned one", 0 },
	{ "adv:ES256 header on the P-521 key", 0 },
	{ "adv:ES384 header on the P-521 key", 0 },
	{ "adv:no exchange key", 0 },
	{ "adv:exchange key off the curve", 0 },
	{ "adv:exchange key without y", 0 },
	{ "adv:exchange key x of 65 bytes", 0 },
	{ "adv:exchange key at infinity (0,0)", 0 },
	{ "adv:exchange key: P-256 point labelled P-521", 0 },
	{ "adv:keys is an object", 0 },
	{ "adv:payload not base64url", 0 },
	{ "not JSON", 0 },
	{ "JSON array", 0 },
	{ "JSON with a NUL", 0 },
	{ "empty 200", 0 },
	{ "deep nesting, arrays", 0 },
	{ "deep nesting, objects", 0 },
	{ "status 404 Not Found", 0 },
	{ "status 500 Internal Server Error", 0 },
	{ "status+body 500 Internal Server Error", 0 },
	{ "303 with a good body", 0 },
	{ "redirect to itself", 0 },
	{ "redirect elsewhere", 0 },
	{ "close at once", 0 },
	{ "reset", 0 },
	{ "truncated body, closed", 0 },
	{ "Content-Length too small", 0 },
	{ "two different Content-Lengths", 0 },
	{ "not HTTP", 0 },
	{ "huge, announced", 0 },
	{ "huge, chunked", 0 },
	{ "stall before the headers", 0 },
	{ "stall after the headers", 0 },
	{ "stall in the body", 0 },
	{ "Content-Length too large, held open", 0 },
};

static void run_rec_case(const rec_case *c)
{
	char name[160];
	snprintf(name, sizeof name, "/rec answers: %s -> derive %s, JWE %s", c->mode,
		 tp_rv_name(c->derive_rv), tp_rv_name(c->decrypt_rv));
	tp_case_begin(name);
	set_modes("good", c->mode, adv_text("good"));
	int conns = atomic_load(&n_conn), recs = atomic_load(&n_rec);
	size_t off = tp_file_size(log_path);
	bool match = false, ok = false, leak = false;
	double t0 = tp_now();
	CK_RV rv = derive_once(&match);
	double dt = tp_now() - t0;
	CHECKF(rv == c->derive_rv, "%s: derive: expected %s, got %s", c->mode,
	       tp_rv_name(c->derive_rv), tp_rv_name(rv));
	CHECKF(dt < TIMEOUT + MARGIN, "%s: derive returned after %.1f s (timeout %d s)", c->mode,
	       dt, TIMEOUT);
	CHECKF(atomic_load(&n_rec) > recs, "%s: no request reached the server", c->mode);
	if (rv == CKR_OK)
		CHECKF(match == c->value_ok, "%s: derived value %s s·X", c->mode,
		       match ? "equals" : "differs from");
	if (c->derive_rv != CKR_OK) {
		CK_SESSION_INFO si;
		CHECK_RV(P->C_GetSessionInfo(sess, &si), CKR_OK);
		if (c->deverr)
			CHECKF(si.ulDeviceError == c->deverr, "%s: ulDeviceError %lu, expected %lu",
			       c->mode, (unsigned long)si.ulDeviceError, (unsigned long)c->deverr);
		else
			CHECKF(si.ulDeviceError != 0, "%s: ulDeviceError 0 after a failure", c->mode);
	}
	check_log(c->mode, off, c->derive_rv != CKR_OK);

	t0 = tp_now();
	rv = decrypt_once(&ok, &leak);
	dt = tp_now() - t0;
	CHECKF(rv == c->decrypt_rv, "%s: C_Decrypt: expected %s, got %s", c->mode,
	       tp_rv_name(c->decrypt_rv), tp_rv_name(rv));
	CHECKF(dt < TIMEOUT + MARGIN, "%s: C_Decrypt returned after %.1f s", c->mode, dt);
	CHECKF(!leak, "%s: plaintext in the output buffer of a failed C_Decrypt", c->mode);
	if (rv == CKR_OK)
		CHECKF(ok, "%s: C_Decrypt gave a wrong plaintext", c->mode);
	if (strcmp(c->mode, "redirect elsewhere") == 0)
		CHECKF(atomic_load(&n_elsewhere) == 0, "a redirect was followed");
	tp_note("%.1f s, %d connections", dt, atomic_load(&n_conn) - conns);
	healthy_again(c->mode);
	tp_case_end();
}

static void run_adv_case(const adv_case *c)
{
	char name[160];
	bool variant = strncmp(c->mode, "adv:", 4) == 0;
	snprintf(name, sizeof name, "/adv answers: %s -> %zu Tang key(s)", c->mode, c->n_keys);
	tp_case_begin(name);
	if (variant)
		set_modes("good", "good", adv_text(c->mode + 4));
	else
		set_modes(c->mode, "good", adv_text("good"));
	reinit();
	int advs_before = atomic_load(&n_adv);
	size_t off = tp_file_size(log_path);
	CK_RV rv;
	double t0 = tp_now();
	size_t n = count_private(sess, &rv);
	double dt = tp_now() - t0;
	/* A search never fails for the server's sake (docs/errors.md). */
	CHECKF(rv == CKR_OK, "%s: search: %s", c->mode, tp_rv_name(rv));
	CHECKF(n == c->n_keys, "%s: %zu Tang private keys, expected %zu", c->mode, n, c->n_keys);
	CHECKF(dt < TIMEOUT + MARGIN, "%s: search returned after %.1f s", c->mode, dt);
	CHECKF(atomic_load(&n_adv) > advs_before, "%s: the advertisement was not fetched", c->mode);
	if (c->n_keys == 0) {
		/* ulDeviceError says a Tang failure happened (docs/errors.md) */
		CK_SESSION_INFO si;
		CHECK_RV(P->C_GetSessionInfo(sess, &si), CKR_OK);
		CHECKF(si.ulDeviceError != 0, "%s: ulDeviceError 0 after a refused advertisement",
		       c->mode);
		/* Nothing to derive with: a search again finds nothing, and
		 * does not hammer the server. */
		int a = atomic_load(&n_adv);
		CHECKF(count_private(sess, &rv) == 0 && rv == CKR_OK, "%s: second search", c->mode);
		CHECKF(atomic_load(&n_adv) == a, "%s: a failed fetch was retried at once", c->mode);
	} else {
		find_keys();
		bool match = false;
		CK_RV drv = derive_once(&match);
		CHECKF(drv == CKR_OK && match, "%s: derive: %s", c->mode, tp_rv_name(drv));
	}
	if (strcmp(c->mode, "redirect elsewhere") == 0)
		CHECKF(atomic_load(&n_elsewhere) == 0, "a redirect was followed");
	check_log(c->mode, off, c->n_keys == 0);
	tp_note("%.1f s", dt);
	set_modes("good", "good", adv_text("good"));
	reinit();
	healthy_again(c->mode);
	tp_case_end();
}

int main(void)
{
	REQUIRE(tp_server_keys(&key, 1, false) == 1);
	load_signing_key();
	make_advs();

	lfd = tp_blackhole(&port); /* listening; the thread accepts */
	efd = tp_blackhole(&elsewhere_port);
	pthread_t th, eth;
	pthread_create(&th, NULL, server, NULL);
	pthread_create(&eth, NULL, elsewhere, NULL);
	set_modes("good", "good", adv_text("good"));

	char conf[1024];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	snprintf(conf, sizeof conf,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" }, "
		 "\"timeout\": %d } ] }\n", url, tp_env("TANG_THP"), TIMEOUT);
	snprintf(conf_path, sizeof conf_path, "%s/hostile.conf", tp_env("TANG_TMP"));
	tp_write_file(conf_path, conf);
	setenv("TANG_PKCS11_CONF", conf_path, 1);
	log_path = tp_env("TANG_PKCS11_LOG");

	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	sess = tp_open(tp_slot("tang"));
	find_keys();
	REQUIRE(priv != CK_INVALID_HANDLE && pub != CK_INVALID_HANDLE);
	make_jwe();

	tp_case_begin("the server only sees a blinded point, a fresh one each time");
	{
		EVP_PKEY *peer = tp_ec_gen("P-521");
		uint8_t raw[133], z[66], out[128], x1[66], x2[66];
		size_t ol = 0;
		tp_ec_point(peer, raw, sizeof raw);
		tp_ecdh(peer, key.pkey, z);
		CHECK_RV(tp_derive(sess, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET,
				   0, out, &ol), CKR_OK);
		CHECK_MEM(out, ol, z, 66, "derive through the test server");
		get_last_x(x1);
		CHECK_RV(tp_derive(sess, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET,
				   0, out, &ol), CKR_OK);
		CHECK_MEM(out, ol, z, 66, "second derive with the same peer");
		get_last_x(x2);
		CHECKF(memcmp(x1, raw + 1, 66) != 0, "the server saw the peer point itself");
		CHECKF(memcmp(x2, raw + 1, 66) != 0, "the server saw the peer point itself");
		CHECKF(memcmp(x1, x2, 66) != 0, "the same blinded point was sent twice");
		EVP_PKEY_free(peer);
	}
	tp_case_end();

	long hwm0 = vm_hwm_kib();
	for (size_t i = 0; i < sizeof REC / sizeof REC[0]; i++)
		run_rec_case(&REC[i]);
	for (size_t i = 0; i < sizeof ADV / sizeof ADV[0]; i++)
		run_adv_case(&ADV[i]);
	long hwm1 = vm_hwm_kib();
	/* Bounded memory: 64 MiB bodies were offered, the module keeps at
	 * most 256 KiB of a reply (plus what the test itself holds).  Not
	 * under ASan or valgrind, whose quarantines keep freed memory. */
	tp_note("peak RSS %ld KiB before the cases, %ld KiB after", hwm0, hwm1);
#if !defined(__SANITIZE_ADDRESS__)
	if (!getenv("TP_UNDER_VALGRIND"))
		CHECKF(hwm1 - hwm0 < 32 * 1024, "peak memory grew by %ld KiB", hwm1 - hwm0);
#endif

	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	shutdown(efd, SHUT_RDWR);
	close(efd);
	pthread_join(th, NULL);
	pthread_join(eth, NULL);
	/* every connection thread is done with what is freed below (the
	 * clients are gone, so stalling ones end too) */
	for (int i = 0; i < STALL_MAX * 10; i++) {
		pthread_mutex_lock(&mode_lock);
		int n = active;
		pthread_mutex_unlock(&mode_lock);
		if (n == 0)
			break;
		usleep(100000);
	}
	tp_server_key_free(&key);
	EVP_PKEY_free(sig_key);
	json_decref(sig_pub);
	for (size_t i = 0; i < n_advs; i++)
		free(advs[i].text);
	free(jwe);
	return tp_exit();
}
