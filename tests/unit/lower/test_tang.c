/* tang/server.c and tang/adv.c against a real tangd (run under
 * tests/fixtures/with-tangd): every recovered value is compared with the
 * ECDH computed locally from the server's key file and from the peer key. */
#include "test.h"
#include "ossl_helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jose/b64url.h"
#include "jose/jwk.h"
#include "tang/server.h"
#include "util/http.h"
#include "util/log.h"

static const char *url, *db, *thp, *ctl;
static const tp_curve *p521;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The key file of the server's current key with that alg. */
static json_t *key_file(const char *alg)
{
	DIR *d = opendir(db);
	struct dirent *e;
	json_t *found = NULL;

	while (d && (e = readdir(d)) && !found) {
		char path[4096];
		json_t *j;
		size_t n = strlen(e->d_name);

		if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".jwk") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", db, e->d_name);
		j = json_load_file(path, 0, NULL);
		if (j && strcmp(json_string_value(json_object_get(j, "alg")), alg) == 0)
			found = j;
		else
			json_decref(j);
	}
	if (d)
		closedir(d);
	return found;
}

/* One recovery with a fresh random peer, checked both ways. */
static void check_recovery(tp_tang_server *srv, const tp_exchange_key *key, const json_t *server_key)
{
	uint8_t c_pub[TP_EC_MAX_POINT], s_d[TP_EC_MAX_FIELD], s_pub[TP_EC_MAX_POINT];
	uint8_t z[TP_EC_MAX_FIELD], z1[TP_EC_MAX_FIELD], z2[TP_EC_MAX_FIELD];
	size_t c_len = 0, z1_len = sizeof(z1), z2_len = sizeof(z2);
	const char *d = json_string_value(json_object_get(server_key, "d"));
	EVP_PKEY *peer = ref_keygen(p521), *s_key, *s_pubkey, *c_pubkey;

	ref_pub(peer, c_pub, &c_len);
	CHECK_ERR(jwk_to_point(server_key, NULL, s_pub, NULL), TP_OK);
	CHECK(memcmp(s_pub, key->point, key->point_len) == 0);
	CHECK_ERR(b64url_decode_exact(d, strlen(d), s_d, 66), TP_OK);
	s_key = ref_key_from_priv(p521, s_d, s_pub);
	s_pubkey = ref_key_from_pub(p521, s_pub);
	c_pubkey = ref_key_from_pub(p521, c_pub);

	CHECK_ERR(tang_recover(srv, key, c_pub, c_len, z, 66), TP_OK);
	CHECK(ref_ecdh(peer, s_pubkey, z1, &z1_len) && z1_len == 66);   /* x(c·S) */
	CHECK(ref_ecdh(s_key, c_pubkey, z2, &z2_len) && z2_len == 66);  /* x(s·C) */
	CHECK(memcmp(z, z1, 66) == 0 && memcmp(z, z2, 66) == 0);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(s_key);
	EVP_PKEY_free(s_pubkey);
	EVP_PKEY_free(c_pubkey);
}

static void random_peer(uint8_t *pt, size_t *len)
{
	EVP_PKEY *k = ref_keygen(p521);
	ref_pub(k, pt, len);
	EVP_PKEY_free(k);
}

static int ctl_run(const char *what)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "'%s' %s", ctl, what);
	return system(cmd);
}

static void advertisement(void)
{
	json_t *sig = key_file("ES512"), *exc = key_file("ECMR");
	char s1[TP_THP_MAX_B64], exc_thp[TP_THP_MAX_B64];
	tp_exchange_key *keys = NULL;
	tp_tang_server *srv;
	tp_http_reply r;
	tp_adv *adv = NULL;
	size_t n = 0;
	char adv_url[4200];

	CHECK(sig && exc);
	/* pinned by S256 (the fixture's TANG_THP), then by S1 */
	srv = tang_server_new(url, thp, NULL, 5);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_OK);
	CHECK(n == 1 && keys && keys[0].curve == p521);
	if (n == 1) {
		char kid[TP_THP_MAX_B64];
		uint8_t pt[TP_EC_MAX_POINT];
		jwk_thumbprint(exc, TP_THP_S256, NULL, kid);
		jwk_to_point(exc, NULL, pt, NULL);
		CHECK(strcmp(keys[0].kid, kid) == 0);
		CHECK(memcmp(keys[0].point, pt, 133) == 0);
	}
	free(keys);
	tang_server_free(srv);
	jwk_thumbprint(sig, TP_THP_S1, NULL, s1);
	srv = tang_server_new(url, s1, NULL, 5);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_OK);
	free(keys);
	tang_server_free(srv);

	/* the exchange key's thumbprint: tangd has no adv for it (404) */
	jwk_thumbprint(exc, TP_THP_S256, NULL, exc_thp);
	srv = tang_server_new(url, exc_thp, NULL, 5);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_UNKNOWN_KEY);
	CHECK(keys == NULL && n == 0);
	tang_server_free(srv);

	/* the real /adv verified directly: pins */
	snprintf(adv_url, sizeof(adv_url), "%s/adv", url);
	CHECK_ERR(http_request(adv_url, NULL, NULL, 0, 5, 0, &r), TP_OK);
	CHECK(r.status == 200);
	CHECK_ERR(adv_verify((char *)r.body, r.len, thp, url, &adv), TP_OK);
	adv_free(adv);
	CHECK_ERR(adv_verify((char *)r.body, r.len, s1, url, &adv), TP_OK);
	adv_free(adv);
	CHECK_ERR(adv_verify((char *)r.body, r.len, exc_thp, url, &adv), TP_ERR_UNTRUSTED);
	CHECK_ERR(adv_verify((char *)r.body, r.len, NULL, url, &adv), TP_OK);
	adv_free(adv);

	/* a configured advertisement needs no network at all */
	ctl_run("stop");
	srv = tang_server_new(url, thp, (char *)r.body, 5);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_OK);
	CHECK(n == 1);
	free(keys);
	CHECK_ERR(tang_server_keys(srv, 1, &keys, &n), TP_OK);
	free(keys);
	tang_server_free(srv);
	srv = tang_server_new(url, exc_thp, (char *)r.body, 5);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_UNTRUSTED);
	CHECK_ERR(tang_server_keys(srv, 1, &keys, &n), TP_ERR_UNTRUSTED);
	tang_server_free(srv);
	CHECK(ctl_run("start") == 0);
	http_reply_clear(&r);
	json_decref(sig);
	json_decref(exc);
}

struct worker {
	tp_tang_server *srv;
	const tp_exchange_key *key;
	const json_t *server_key;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	tp_exchange_key *keys = NULL;
	size_t n = 0;

	for (int i = 0; i < 3; i++) {
		CHECK_ERR(tang_server_keys(w->srv, 0, &keys, &n), TP_OK);
		free(keys);
		check_recovery(w->srv, w->key, w->server_key);
	}
	return NULL;
}

static void recovery(void)
{
	json_t *exc = key_file("ECMR"), *sig = key_file("ES512");
	tp_tang_server *srv = tang_server_new(url, thp, NULL, 5);
	tp_exchange_key *keys = NULL, *fresh = NULL, old, bogus;
	uint8_t pt[TP_EC_MAX_POINT], z[TP_EC_MAX_FIELD];
	size_t n = 0, len = 0;
	char *log;

	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_OK);
	if (n < 1)
		exit(1);
	old = keys[0];
	for (int i = 0; i < 3; i++)
		check_recovery(srv, &old, exc);
	/* concurrently */
	{
		pthread_t th[4];
		struct worker w = { srv, &old, exc };
		for (int i = 0; i < 4; i++)
			pthread_create(&th[i], NULL, worker_main, &w);
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
	}

	/* bad peers are refused before any request */
	random_peer(pt, &len);
	pt[len - 1] ^= 1;
	CHECK_ERR(tang_recover(srv, &old, pt, len, z, 66), TP_ERR_INPUT);
	CHECK_ERR(tang_recover(srv, &old, pt, len - 1, z, 66), TP_ERR_INPUT);
	random_peer(pt, &len);
	CHECK_ERR(tang_recover(srv, &old, pt, len, z, 65), TP_ERR_INPUT);
	{
		const tp_curve *p256 = ec_curve_by_jwk_name("P-256");
		EVP_PKEY *k = ref_keygen(p256);
		uint8_t q[TP_EC_MAX_POINT];
		size_t ql = 0;
		ref_pub(k, q, &ql);
		CHECK_ERR(tang_recover(srv, &old, q, ql, z, 66), TP_ERR_INPUT);
		EVP_PKEY_free(k);
	}

	/* the signing key's kid: 403; an unknown kid: 404 */
	bogus = old;
	jwk_thumbprint(sig, TP_THP_S256, bogus.id, bogus.kid);
	CHECK_ERR(tang_recover(srv, &bogus, pt, len, z, 66), TP_ERR_REFUSED);
	strcpy(bogus.kid, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	CHECK_ERR(tang_recover(srv, &bogus, pt, len, z, 66), TP_ERR_UNKNOWN_KEY);
	/* the S1 kid of the exchange key works too (old clevis JWEs) */
	bogus = old;
	jwk_thumbprint(exc, TP_THP_S1, NULL, bogus.kid);
	check_recovery(srv, &bogus, exc);

	/* rotation: the old key keeps working, the pin to the old signing key
	 * no longer matches the payload, a new pin sees the new key */
	{
		char cmd[4200], new_thp[TP_THP_MAX_B64];
		json_t *new_sig, *new_exc;
		tp_tang_server *srv2;

		tp_tang_server *srv3 = tang_server_new(url, thp, NULL, 5);
		double t0 = now();

		CHECK_ERR(tang_server_keys(srv3, 0, &fresh, &n), TP_OK);
		free(fresh);
		snprintf(cmd, sizeof(cmd), "/usr/libexec/tangd-rotate-keys -d '%s' >/dev/null 2>&1", db);
		CHECK(system(cmd) == 0);
		/* within TP_ADV_RETRY_S of the last fetch a refetch is served
		 * from the cache (only checkable if we are quick enough, e.g.
		 * not under valgrind) */
		{
			tp_err err = tang_server_keys(srv3, 1, &fresh, &n);
			if (now() - t0 < TP_ADV_RETRY_S - 0.2)
				CHECK_ERR(err, TP_OK);
			free(fresh);
		}
		tang_server_free(srv3);
		check_recovery(srv, &old, exc);
		sleep(TP_ADV_RETRY_S + 1);
		CHECK_ERR(tang_server_keys(srv, 1, &fresh, &n), TP_ERR_UNTRUSTED);
		/* the verified keys from before stay usable */
		CHECK_ERR(tang_server_keys(srv, 0, &fresh, &n), TP_OK);
		CHECK(n == 1 && memcmp(fresh[0].point, old.point, 133) == 0);
		free(fresh);
		new_sig = key_file("ES512");
		new_exc = key_file("ECMR");
		jwk_thumbprint(new_sig, TP_THP_S256, NULL, new_thp);
		srv2 = tang_server_new(url, new_thp, NULL, 5);
		CHECK_ERR(tang_server_keys(srv2, 0, &fresh, &n), TP_OK);
		CHECK(n == 1 && strcmp(fresh[0].kid, old.kid) != 0);
		if (n == 1)
			check_recovery(srv2, &fresh[0], new_exc);
		free(fresh);
		tang_server_free(srv2);
		json_decref(new_sig);
		json_decref(new_exc);

		/* the old key file deleted: 404 */
		snprintf(cmd, sizeof(cmd), "rm -f '%s'/.%s.jwk", db, old.kid);
		CHECK(system(cmd) == 0);
		random_peer(pt, &len);
		CHECK_ERR(tang_recover(srv, &old, pt, len, z, 66), TP_ERR_UNKNOWN_KEY);
	}
	log = fixture_text_abs(getenv("TANG_PKCS11_LOG"));
	{
		char want[512];
		snprintf(want, sizeof(want), "recovery with %s kid %s: unknown key (HTTP 404)", url, old.kid);
		CHECK(log && strstr(log, want));
		CHECK(log && strstr(log, "refused (HTTP 403)"));
	}
	free(log);
	free(keys);
	tang_server_free(srv);
	json_decref(exc);
	json_decref(sig);
}

static void outages(void)
{
	tp_tang_server *srv = tang_server_new(url, NULL, NULL, 5);
	tp_exchange_key *keys = NULL, key;
	uint8_t pt[TP_EC_MAX_POINT], z[TP_EC_MAX_FIELD];
	size_t n = 0, len = 0;
	double t0;

	/* no pin: GET /adv/ trusted as given (signatures still checked) */
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_OK);
	if (n < 1)
		exit(1);
	key = keys[0];
	free(keys);
	tang_server_free(srv);

	CHECK(ctl_run("stop") == 0);
	srv = tang_server_new(url, thp, NULL, 5);
	random_peer(pt, &len);
	CHECK_ERR(tang_recover(srv, &key, pt, len, z, 66), TP_ERR_UNREACHABLE);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_UNREACHABLE);
	/* no request storm: the failure is answered from memory for a while */
	t0 = now();
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_UNREACHABLE);
	CHECK(now() - t0 < 0.5);
	CHECK(ctl_run("start") == 0);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_UNREACHABLE);
	sleep(TP_ADV_RETRY_S + 1);
	CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_UNTRUSTED);  /* thp: rotated away */
	tang_server_free(srv);

	/* a server that accepts connections but never answers */
	{
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t al = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char silent[64];

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
		    getsockname(fd, (struct sockaddr *)&a, &al) != 0)
			exit(1);
		snprintf(silent, sizeof(silent), "http://127.0.0.1:%d", ntohs(a.sin_port));
		srv = tang_server_new(silent, thp, NULL, 1);
		t0 = now();
		CHECK_ERR(tang_recover(srv, &key, pt, len, z, 66), TP_ERR_TIMEOUT);
		CHECK(now() - t0 < 1 + 3);
		t0 = now();
		CHECK_ERR(tang_server_keys(srv, 0, &keys, &n), TP_ERR_TIMEOUT);
		CHECK(now() - t0 < 1 + 3);
		tang_server_free(srv);
		close(fd);
	}
}

int main(void)
{
	url = getenv("TANG_URL");
	db = getenv("TANG_DB");
	thp = getenv("TANG_THP");
	ctl = getenv("TANG_CTL");
	if (!url || !db || !thp || !ctl) {
		fprintf(stderr, "run me under tests/fixtures/with-tangd\n");
		return getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77;
	}
	log_open();
	CHECK_ERR(ossl_ctx_init(), TP_OK);
	http_global_init();
	p521 = ec_curve_by_jwk_name("P-521");
	advertisement();
	recovery();
	outages();
	ossl_ctx_free();
	log_close();
	return test_exit("tang");
}
