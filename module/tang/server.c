#include "tang/server.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "jose/jwk.h"
#include "util/http.h"
#include "util/log.h"

#define REC_MAX_REPLY (64 * 1024)
#define BLINDING_TRIES 4

struct tp_tang_server {
	char *url;
	char *thp;
	char *adv_jws;                  /* configured advertisement, or NULL */
	long timeout_s;

	/* LOCKED SECTION: everything below is guarded by lock, which is
	 * never held across network I/O. */
	pthread_mutex_t lock;
	tp_exchange_key *keys;          /* cached, verified; NULL until known */
	size_t n_keys;
	json_t *payload;                /* the payload those keys come from */
	double fetched_at;              /* monotonic seconds of the last good fetch */
	bool failed;                    /* the last attempt failed ... */
	tp_err fail_err;                /* ... with this error ... */
	double failed_at;               /* ... at this time */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *dup_or_null(const char *s, bool *ok)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*ok = false;
	return d;
}

tp_tang_server *tang_server_new(const char *url, const char *thp,
				const char *adv_jws, long timeout_s)
{
	tp_tang_server *srv;
	bool ok = true;

	if (!url)
		return NULL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->url = dup_or_null(url, &ok);
	srv->thp = dup_or_null(thp, &ok);
	srv->adv_jws = dup_or_null(adv_jws, &ok);
	srv->timeout_s = timeout_s > 0 ? timeout_s : 10;
	if (!ok || pthread_mutex_init(&srv->lock, NULL) != 0) {
		free(srv->url);
		free(srv->thp);
		free(srv->adv_jws);
		free(srv);
		return NULL;
	}
	return srv;
}

void tang_server_free(tp_tang_server *srv)
{
	if (!srv)
		return;
	pthread_mutex_destroy(&srv->lock);
	free(srv->keys);
	json_decref(srv->payload);
	free(srv->url);
	free(srv->thp);
	free(srv->adv_jws);
	free(srv);
}

const char *tang_server_url(const tp_tang_server *srv)
{
	return srv->url;
}

/* tangd's status codes (TANG_PROTOCOL.md §4) as our errors. */
static tp_err status_err(long status)
{
	switch (status) {
	case 200: return TP_OK;
	case 400: return TP_ERR_BAD_REQUEST;
	case 403: return TP_ERR_REFUSED;
	case 404: return TP_ERR_UNKNOWN_KEY;
	default: return TP_ERR_HTTP;
	}
}

static void log_failure(const char *what, const char *url, const char *kid,
			tp_err err, long status)
{
	char st[64] = "";

	if (err == TP_ERR_HTTP)
		snprintf(st, sizeof(st), " (HTTP %ld)", status);
	else if (err == TP_ERR_INPUT)
		snprintf(st, sizeof(st), ": not a point of the key's curve");
	if (kid)
		log_error("%s with %s kid %s: %s%s", what, url, kid, tp_err_str(err), st);
	else
		log_error("%s from %s: %s%s", what, url, tp_err_str(err), st);
}

/* GET url/adv/<thp> (or url/adv/), verified.  No lock held. */
static tp_err fetch_adv(const tp_tang_server *srv, tp_adv **adv)
{
	tp_http_reply reply = { 0 };
	char *url = NULL;
	tp_err err;

	*adv = NULL;
	if (asprintf(&url, "%s/adv/%s", srv->url, srv->thp ? srv->thp : "") < 0) {
		url = NULL;
		err = TP_ERR_NOMEM;
		goto out;
	}
	err = http_request(url, NULL, NULL, 0, srv->timeout_s, TP_HTTP_MAX_BODY, &reply);
	if (err == TP_OK)
		err = status_err(reply.status);
	if (err != TP_OK) {
		log_failure("advertisement", srv->url, NULL, err, reply.status);
		goto out;
	}
	err = adv_verify((const char *)reply.body, reply.len, srv->thp, srv->url, adv);
out:
	http_reply_clear(&reply);
	free(url);
	return err;
}

/* The configured advertisement: no network at all. */
static tp_err configured_adv(const tp_tang_server *srv, tp_adv **adv)
{
	char origin[512];

	snprintf(origin, sizeof(origin), "the configuration of %s", srv->url);
	return adv_verify(srv->adv_jws, strlen(srv->adv_jws), srv->thp, origin, adv);
}

static tp_err copy_keys_locked(const tp_tang_server *srv, tp_exchange_key **keys, size_t *n_keys)
{
	*keys = malloc((srv->n_keys ? srv->n_keys : 1) * sizeof(**keys));
	if (!*keys)
		return TP_ERR_NOMEM;
	memcpy(*keys, srv->keys, srv->n_keys * sizeof(**keys));
	*n_keys = srv->n_keys;
	return TP_OK;
}

/* Whether the cache answers this call without a new fetch, and if not,
 * whether a recent failure answers it (no request storms). */
static bool answer_locked(tp_tang_server *srv, int refetch, double now, tp_err *err)
{
	if (srv->keys && (!refetch || srv->adv_jws || now - srv->fetched_at < TP_ADV_RETRY_S)) {
		*err = TP_OK;
		return true;
	}
	/* A configured advertisement cannot change: its failure is final. */
	if (srv->failed && (srv->adv_jws || now - srv->failed_at < TP_ADV_RETRY_S)) {
		*err = srv->fail_err;
		return true;
	}
	return false;
}

static void store_locked(tp_tang_server *srv, tp_adv *adv, tp_err err, double now)
{
	if (err != TP_OK) {
		srv->failed = true;
		srv->fail_err = err;
		srv->failed_at = now;
		return;
	}
	free(srv->keys);
	srv->keys = adv->keys;
	srv->n_keys = adv->n_keys;
	adv->keys = NULL;
	adv->n_keys = 0;
	json_decref(srv->payload);
	srv->payload = adv->payload;
	adv->payload = NULL;
	srv->fetched_at = now;
	srv->failed = false;
}

tp_err tang_server_keys(tp_tang_server *srv, int refetch,
			tp_exchange_key **keys, size_t *n_keys)
{
	tp_adv *adv = NULL;
	tp_err err;

	*keys = NULL;
	*n_keys = 0;
	pthread_mutex_lock(&srv->lock);
	if (answer_locked(srv, refetch, now_s(), &err)) {
		if (err == TP_OK)
			err = copy_keys_locked(srv, keys, n_keys);
		else
			log_debug("advertisement of %s: not retried yet (%s)", srv->url, tp_err_str(err));
		pthread_mutex_unlock(&srv->lock);
		return err;
	}
	pthread_mutex_unlock(&srv->lock);

	/* Two threads may both get here and fetch; the later result wins,
	 * which is harmless (both verified). */
	err = srv->adv_jws ? configured_adv(srv, &adv) : fetch_adv(srv, &adv);

	pthread_mutex_lock(&srv->lock);
	store_locked(srv, adv, err, now_s());
	if (err == TP_OK)
		err = copy_keys_locked(srv, keys, n_keys);
	pthread_mutex_unlock(&srv->lock);
	adv_free(adv);
	return err;
}

tp_err tang_server_payload(tp_tang_server *srv, json_t **payload)
{
	tp_err err = TP_ERR_GENERAL;

	*payload = NULL;
	pthread_mutex_lock(&srv->lock);
	/* LOCKED SECTION: a deep copy, so that the caller may serialise it
	 * while a refetch replaces the cached one. */
	if (srv->payload) {
		*payload = json_deep_copy(srv->payload);
		err = *payload ? TP_OK : TP_ERR_NOMEM;
	}
	pthread_mutex_unlock(&srv->lock);
	if (err == TP_ERR_GENERAL)
		log_error("advertisement of %s: not fetched yet", srv->url);
	return err;
}

/* X = C + e·G with a fresh e (retried in the 2^-260-ish case X = ∞). */
static tp_err blind(const tp_curve *c, const uint8_t *peer, uint8_t *e, uint8_t *x)
{
	uint8_t big_e[TP_EC_MAX_POINT];
	tp_err err = TP_ERR_GENERAL;

	for (int i = 0; i < BLINDING_TRIES; i++) {
		err = ec_random_scalar(c, e);
		if (err == TP_OK)
			err = ec_mul(c, e, c->field_len, NULL, big_e);
		if (err == TP_OK)
			err = ec_add(c, peer, big_e, 0, x);
		if (err != TP_ERR_INPUT)
			break;
	}
	OPENSSL_cleanse(big_e, sizeof(big_e));
	return err;
}

/* POST url/rec/<kid> with X; the reply Y = s·X, on the key's curve. */
static tp_err exchange(const tp_tang_server *srv, const tp_exchange_key *key,
		       const uint8_t *x, uint8_t *y, long *status)
{
	tp_http_reply reply = { 0 };
	const tp_curve *yc = NULL;
	json_t *req = NULL, *rep = NULL;
	char *body = NULL, *url = NULL;
	size_t y_len = 0;
	tp_err err = TP_ERR_NOMEM;

	req = jwk_from_point(key->curve, x, "ECMR");
	body = req ? json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!body || asprintf(&url, "%s/rec/%s", srv->url, key->kid) < 0) {
		url = NULL;
		goto out;
	}
	err = http_request(url, "application/jwk+json", body, strlen(body),
			   srv->timeout_s, REC_MAX_REPLY, &reply);
	*status = reply.status;
	if (err == TP_OK)
		err = status_err(reply.status);
	if (err != TP_OK)
		goto out;
	rep = json_loadb((const char *)reply.body, reply.len, JSON_REJECT_DUPLICATES, NULL);
	if (jwk_to_point(rep, &yc, y, &y_len) != TP_OK || yc != key->curve)
		err = TP_ERR_BAD_REPLY;
out:
	json_decref(rep);
	json_decref(req);
	http_reply_clear(&reply);
	free(body);
	free(url);
	return err;
}

tp_err tang_recover(tp_tang_server *srv, const tp_exchange_key *key,
		    const uint8_t *peer, size_t peer_len,
		    uint8_t *z, size_t z_len)
{
	uint8_t e[TP_EC_MAX_FIELD], x[TP_EC_MAX_POINT], y[TP_EC_MAX_POINT];
	uint8_t t[TP_EC_MAX_POINT], k[TP_EC_MAX_POINT];
	const tp_curve *c = key ? key->curve : NULL;
	long status = 0;
	tp_err err = TP_ERR_INPUT;

	if (!c || z_len != c->field_len || ec_point_check(c, peer, peer_len) != TP_OK ||
	    ec_point_check(c, key->point, key->point_len) != TP_OK)
		goto out;
	err = blind(c, peer, e, x);
	if (err != TP_OK)
		goto out;
	err = exchange(srv, key, x, y, &status);
	if (err != TP_OK)
		goto out;
	/* K = Y - e·S = s·C + e·S - e·S */
	err = ec_mul(c, e, c->field_len, key->point, t);
	if (err != TP_OK)
		goto out;
	err = ec_add(c, y, t, 1, k);
	if (err == TP_ERR_INPUT)
		err = TP_ERR_BAD_REPLY;   /* Y = T: the server did not use s */
	if (err != TP_OK)
		goto out;
	memcpy(z, k + 1, c->field_len);
out:
	if (err != TP_OK) {
		if (z && c && z_len == c->field_len)
			OPENSSL_cleanse(z, z_len);
		log_failure("recovery", srv->url, key ? key->kid : "?", err, status);
	}
	OPENSSL_cleanse(e, sizeof(e));
	OPENSSL_cleanse(t, sizeof(t));
	OPENSSL_cleanse(k, sizeof(k));
	return err;
}
