/* tp-hostile: the module against a misbehaving Tang server.
 *
 * A small HTTP server in this process (a thread on a free loopback port)
 * serves the real server's advertisement and answers POST /rec/{kid} as the
 * case says: correctly (computed here from the real key file), with an
 * error status, with a point off the curve or on another curve, with
 * garbage, with an oversized body, or dripping one byte at a time.  The
 * derive must return CKR_DEVICE_ERROR (and the right ulDeviceError) for
 * every bad answer, within the timeout plus a margin, and the right secret
 * for the good one.  Runs under tests/fixtures/with-tangd (for the real
 * advertisement and keys). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

#define TIMEOUT 3

static char *adv;          /* the real advertisement */
static tp_server_key key;  /* the real exchange key */
static const char *mode = "good";
static int lfd, port;
static volatile int posts;
static uint8_t last_x[66]; /* x of the point the last POST carried */

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

static void reply(int fd, const char *status, const char *type, const char *body)
{
	char head[256];
	size_t n = strlen(body);
	snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		 status, type, n);
	send_all(fd, head, strlen(head));
	send_all(fd, body, n);
}

/* s·X for the JWK in the request, as a JWK (what tangd answers). */
static char *exchange(const char *req, const char *curve_override, bool flip_y)
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
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp521r1);
	EC_POINT *X = EC_POINT_new(g), *Y = EC_POINT_new(g);
	BIGNUM *bx = BN_bin2bn(x, 66, NULL), *by = BN_bin2bn(y, 66, NULL);
	BIGNUM *d = BN_bin2bn(key.d, 66, NULL);
	if (EC_POINT_set_affine_coordinates(g, X, bx, by, NULL) &&
	    EC_POINT_mul(g, Y, NULL, X, d, NULL) &&
	    EC_POINT_point2oct(g, Y, POINT_CONVERSION_UNCOMPRESSED, out, sizeof out, NULL) == sizeof out) {
		char ox[100], oy[100];
		if (flip_y)
			out[sizeof out - 1] ^= 1;
		tp_b64u_encode(out + 1, 66, ox);
		tp_b64u_encode(out + 67, 66, oy);
		res = malloc(512);
		snprintf(res, 512,
			 "{\"alg\":\"ECMR\",\"crv\":\"%s\",\"key_ops\":[\"deriveKey\"],\"kty\":\"EC\","
			 "\"x\":\"%s\",\"y\":\"%s\"}", curve_override ? curve_override : "P-521", ox, oy);
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

static void handle(int fd)
{
	char buf[65536];
	size_t n = 0;
	char *end = NULL;
	buf[0] = 0;
	while (n < sizeof buf - 1 && !(end = strstr(buf, "\r\n\r\n"))) {
		ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
		if (r <= 0)
			return;
		n += (size_t)r;
		buf[n] = 0;
	}
	if (!end)
		return;
	size_t clen = 0;
	char *cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl)
		clen = strtoul(cl + 17, NULL, 10);
	size_t have = n - (size_t)(end + 4 - buf);
	while (have < clen && n < sizeof buf - 1) {
		ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
		if (r <= 0)
			return;
		n += (size_t)r;
		have += (size_t)r;
		buf[n] = 0;
	}
	const char *body = end + 4;

	if (strncmp(buf, "GET /adv", 8) == 0) {
		reply(fd, "200 OK", "application/jose+json", adv);
		return;
	}
	if (strncmp(buf, "POST /rec/", 10) != 0) {
		printf("# test server: unexpected request: %.80s\n", buf);
		reply(fd, "404 Not Found", "text/plain", "");
		return;
	}
	{
		json_t *j = json_loads(body, 0, NULL);
		const char *xs = json_string_value(json_object_get(j, "x"));
		if (!xs || tp_b64u_decode(xs, last_x, 66) != 66)
			memset(last_x, 0, sizeof last_x);
		json_decref(j);
	}
	__atomic_add_fetch(&posts, 1, __ATOMIC_SEQ_CST);
	char *ans = NULL;
	if (strcmp(mode, "good") == 0 && (ans = exchange(body, NULL, false)))
		reply(fd, "200 OK", "application/jwk+json", ans);
	else if (strncmp(mode, "status:", 7) == 0)
		reply(fd, mode + 7, "text/plain", "");
	else if (strcmp(mode, "off-curve") == 0 && (ans = exchange(body, NULL, true)))
		reply(fd, "200 OK", "application/jwk+json", ans);
	else if (strcmp(mode, "other-curve") == 0 && (ans = exchange(body, "P-256", false)))
		reply(fd, "200 OK", "application/jwk+json", ans);
	else if (strcmp(mode, "garbage") == 0)
		reply(fd, "200 OK", "application/jwk+json", "this is not JSON");
	else if (strcmp(mode, "no-y") == 0)
		reply(fd, "200 OK", "application/jwk+json",
		      "{\"alg\":\"ECMR\",\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"AAAA\"}");
	else if (strcmp(mode, "huge") == 0) {
		/* 64 MiB announced, sent until the client hangs up */
		const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\n"
				   "Content-Length: 67108864\r\n\r\n{\"x\":\"";
		send_all(fd, head, strlen(head));
		static char chunk[65536];
		memset(chunk, 'A', sizeof chunk);
		for (int i = 0; i < 1024; i++) {
			ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
			if (w <= 0)
				break;
		}
	} else if (strcmp(mode, "drip") == 0) {
		/* a valid start, then one byte every 200 ms for up to 30 s */
		const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\n"
				   "Content-Length: 1000\r\n\r\n";
		send_all(fd, head, strlen(head));
		for (int i = 0; i < 150; i++) {
			if (send(fd, " ", 1, MSG_NOSIGNAL) <= 0)
				break;
			usleep(200000);
		}
	} else
		reply(fd, "500 Internal Server Error", "text/plain", "");
	free(ans);
}

static void *server(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return NULL; /* closed: the end */
		}
		handle(fd);
		close(fd);
	}
}

typedef struct {
	const char *mode;
	CK_RV want;
	CK_ULONG deverr; /* 0: any */
	const char *log_word;
} case_t;

int main(void)
{
	char cmd[4400], path[4200];
	snprintf(path, sizeof path, "%s/real-adv.jws", tp_env("TANG_TMP"));
	snprintf(cmd, sizeof cmd, "curl -sf -o '%s' '%s/adv'", path, tp_env("TANG_URL"));
	REQUIRE(system(cmd) == 0);
	adv = tp_read_file(path, 0);
	REQUIRE(adv && *adv);
	REQUIRE(tp_server_keys(&key, 1, false) == 1);

	lfd = tp_blackhole(&port); /* listening; the thread accepts */
	pthread_t th;
	pthread_create(&th, NULL, server, NULL);

	char conf[1024], url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	snprintf(conf, sizeof conf,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" }, "
		 "\"timeout\": %d } ] }\n", url, tp_env("TANG_THP"), TIMEOUT);
	snprintf(path, sizeof path, "%s/hostile.conf", tp_env("TANG_TMP"));
	tp_write_file(path, conf);
	setenv("TANG_PKCS11_CONF", path, 1);
	const char *log = tp_env("TANG_PKCS11_LOG");

	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(tp_slot("tang"));
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, key.id);
	REQUIRE(priv != CK_INVALID_HANDLE);

	static const case_t cases[] = {
		{ "good", CKR_OK, 0, NULL },
		{ "status:400 Bad Request", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_BAD_REQUEST, "400" },
		{ "status:403 Forbidden", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_REFUSED, "403" },
		{ "status:404 Not Found", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_UNKNOWN_KEY, "404" },
		{ "status:500 Internal Server Error", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_HTTP, "HTTP" },
		{ "status:302 Found", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_HTTP, "HTTP" },
		{ "off-curve", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_BAD_REPLY, "bad reply" },
		{ "other-curve", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_BAD_REPLY, "bad reply" },
		{ "garbage", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_BAD_REPLY, "bad reply" },
		{ "no-y", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_BAD_REPLY, "bad reply" },
		{ "huge", CKR_DEVICE_ERROR, 0, NULL },
		{ "drip", CKR_DEVICE_ERROR, TANG_PKCS11_DEVERR_TIMEOUT, "timeout" },
		{ "good", CKR_OK, 0, NULL },
	};
	tp_case_begin("the server only sees a blinded point, a fresh one each time");
	{
		mode = "good";
		EVP_PKEY *peer = tp_ec_gen("P-521");
		uint8_t raw[133], z[66], out[128], x1[66], x2[66];
		size_t ol = 0;
		tp_ec_point(peer, raw, sizeof raw);
		tp_ecdh(peer, key.pkey, z);
		CHECK_RV(tp_derive(s, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET, 0,
				   out, &ol), CKR_OK);
		CHECK_MEM(out, ol, z, 66, "derive through the test server");
		memcpy(x1, last_x, 66);
		CHECK_RV(tp_derive(s, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET, 0,
				   out, &ol), CKR_OK);
		CHECK_MEM(out, ol, z, 66, "second derive with the same peer");
		memcpy(x2, last_x, 66);
		CHECKF(memcmp(x1, raw + 1, 66) != 0, "the server saw the peer point itself");
		CHECKF(memcmp(x2, raw + 1, 66) != 0, "the server saw the peer point itself");
		CHECKF(memcmp(x1, x2, 66) != 0, "the same blinded point was sent twice");
		EVP_PKEY_free(peer);
	}
	tp_case_end();

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const case_t *c = &cases[i];
		char name[128];
		snprintf(name, sizeof name, "Tang answers /rec with: %s -> %s", c->mode,
			 tp_rv_name(c->want));
		tp_case_begin(name);
		mode = c->mode;
		EVP_PKEY *peer = tp_ec_gen("P-521");
		uint8_t raw[133], z[66], out[128];
		size_t ol = 0;
		tp_ec_point(peer, raw, sizeof raw);
		tp_ecdh(peer, key.pkey, z);
		size_t off = tp_file_size(log);
		int before = posts;
		double t0 = tp_now();
		CK_RV rv = tp_derive(s, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET, 0,
				     out, &ol);
		double dt = tp_now() - t0;
		CHECKF(rv == c->want, "%s: expected %s, got %s", c->mode, tp_rv_name(c->want),
		       tp_rv_name(rv));
		CHECKF(dt < TIMEOUT + 5.0, "%s: returned after %.1f s (timeout %d s)", c->mode, dt,
		       TIMEOUT);
		CHECKF(posts > before, "%s: no request reached the server", c->mode);
		if (rv == CKR_OK && c->want == CKR_OK)
			CHECK_MEM(out, ol, z, 66, "derive through the test server");
		if (c->want != CKR_OK) {
			CK_SESSION_INFO si;
			CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
			if (c->deverr)
				CHECKF(si.ulDeviceError == c->deverr, "%s: ulDeviceError %lu, expected %lu",
				       c->mode, (unsigned long)si.ulDeviceError, (unsigned long)c->deverr);
			char *text = tp_read_file(log, off);
			tp_note("%.1f s; log: %s", dt, text ? text : "(none)");
			if (c->log_word)
				CHECKF(tp_contains_ci(text, c->log_word), "%s: the log does not say \"%s\"",
				       c->mode, c->log_word);
			CHECKF(tp_contains_ci(text, url), "%s: the log does not name %s", c->mode, url);
			free(text);
		}
		EVP_PKEY_free(peer);
		tp_case_end();
	}

	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
	tp_server_key_free(&key);
	free(adv);
	return tp_exit();
}
