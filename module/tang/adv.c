#include "tang/adv.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jose/b64url.h"
#include "jose/jws.h"
#include "util/http.h"
#include "util/log.h"

/* Bounds on what a server (or a file) may hand us.  A real advertisement
 * is ~1.5 KiB with 2 keys and 1-2 signatures. */
#define ADV_MAX_TEXT TP_HTTP_MAX_BODY
#define ADV_MAX_KEYS 32
#define ADV_MAX_SIGNATURES 8

struct check {
	const char *origin;
	json_t *jws;
	json_t *payload;
};

static tp_err reject(const struct check *c, tp_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The one log line of a failed verification. */
static tp_err reject(const struct check *c, tp_err err, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_error("advertisement from %s: %s", c->origin, why);
	return err;
}

/* The JWS object and its payload, {"keys":[...]}, both parsed strictly. */
static tp_err parse(struct check *c, const char *text, size_t len)
{
	const char *payload_b64;
	uint8_t *raw = NULL;
	size_t raw_len = 0, n_sigs;
	const json_t *keys;
	tp_err err;

	if (len > ADV_MAX_TEXT)
		return reject(c, TP_ERR_BAD_REPLY, "larger than %d bytes", ADV_MAX_TEXT);
	c->jws = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(c->jws))
		return reject(c, TP_ERR_BAD_REPLY, "not a JWS in JSON serialization");
	n_sigs = jws_signature_count(c->jws);
	if (n_sigs == 0 || n_sigs > ADV_MAX_SIGNATURES)
		return reject(c, TP_ERR_BAD_REPLY, "%zu signatures (1 to %d expected)",
			      n_sigs, ADV_MAX_SIGNATURES);
	payload_b64 = json_string_value(json_object_get(c->jws, "payload"));
	if (!payload_b64)
		return reject(c, TP_ERR_BAD_REPLY, "no payload");
	err = b64url_decode(payload_b64, strlen(payload_b64), &raw, &raw_len);
	if (err != TP_OK)
		return reject(c, TP_ERR_BAD_REPLY, "payload is not base64url");
	c->payload = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	keys = json_object_get(c->payload, "keys");
	if (!json_is_object(c->payload) || !json_is_array(keys))
		return reject(c, TP_ERR_BAD_REPLY, "payload is not an object with a \"keys\" array");
	if (json_array_size(keys) > ADV_MAX_KEYS)
		return reject(c, TP_ERR_BAD_REPLY, "more than %d keys", ADV_MAX_KEYS);
	return TP_OK;
}

static bool signed_by(const json_t *jws, const json_t *jwk)
{
	size_t n = jws_signature_count(jws);

	for (size_t i = 0; i < n; i++) {
		if (jws_verify_signature(jws, i, jwk) == TP_OK)
			return true;
	}
	return false;
}

/* Every key of the payload that explicitly allows "verify" must have
 * signed (clevis: jose jws ver -a), and there must be at least one. */
static tp_err check_signatures(const struct check *c)
{
	const json_t *keys = json_object_get(c->payload, "keys");
	size_t i, n_ver = 0;
	json_t *k;

	json_array_foreach(keys, i, k) {
		if (!jwk_allows(k, "verify"))
			continue;
		n_ver++;
		if (!signed_by(c->jws, k))
			return reject(c, TP_ERR_UNTRUSTED, "keys[%zu] did not sign the advertisement", i);
	}
	if (n_ver == 0)
		return reject(c, TP_ERR_UNTRUSTED, "no signing key in the payload");
	return TP_OK;
}

static bool matches_pin(const json_t *keys, const char *thp, tp_thp_hash hash)
{
	char b64[TP_THP_MAX_B64];
	size_t i;
	json_t *k;

	json_array_foreach(keys, i, k) {
		if (jwk_allows(k, "verify") && jwk_thumbprint(k, hash, NULL, b64) == TP_OK &&
		    strcmp(b64, thp) == 0)
			return true;
	}
	return false;
}

/* The pin names a verify key of the payload by S256, else S1 (clevis 19);
 * a key that signed but is not in the payload cannot satisfy it. */
static tp_err check_pin(const struct check *c, const char *thp)
{
	const json_t *keys = json_object_get(c->payload, "keys");

	if (!thp || matches_pin(keys, thp, TP_THP_S256) || matches_pin(keys, thp, TP_THP_S1))
		return TP_OK;
	return reject(c, TP_ERR_UNTRUSTED, "no signing key has thumbprint %s", thp);
}

static bool is_exchange_key(const json_t *k)
{
	const char *alg = json_string_value(json_object_get(k, "alg"));

	/* tangd refuses /rec with a key whose alg is not ECMR (403). */
	return jwk_allows(k, "deriveKey") && alg && strcmp(alg, "ECMR") == 0;
}

static tp_err collect_keys(const struct check *c, tp_adv *adv)
{
	const json_t *keys = json_object_get(c->payload, "keys");
	size_t i, n = 0;
	json_t *k;

	adv->keys = calloc(json_array_size(keys) + 1, sizeof(*adv->keys));
	if (!adv->keys)
		return TP_ERR_NOMEM;
	json_array_foreach(keys, i, k) {
		tp_exchange_key *x = &adv->keys[n];

		if (!is_exchange_key(k))
			continue;
		if (jwk_to_point(k, &x->curve, x->point, &x->point_len) != TP_OK)
			return reject(c, TP_ERR_BAD_REPLY, "keys[%zu] is not a valid EC key", i);
		if (jwk_thumbprint(k, TP_THP_S256, x->id, x->kid) != TP_OK)
			return reject(c, TP_ERR_GENERAL, "keys[%zu]: cannot compute its thumbprint", i);
		n++;
	}
	adv->n_keys = n;
	if (n == 0)
		return reject(c, TP_ERR_BAD_REPLY, "no exchange key (alg ECMR, deriveKey)");
	return TP_OK;
}

tp_err adv_verify(const char *jws, size_t len, const char *thp,
		  const char *origin, tp_adv **out)
{
	struct check c = { origin ? origin : "(unknown)", NULL, NULL };
	tp_adv *adv = NULL;
	tp_err err;

	*out = NULL;
	if (!jws) {
		err = reject(&c, TP_ERR_BAD_REPLY, "empty");
		goto out;
	}
	err = parse(&c, jws, len);
	if (err != TP_OK)
		goto out;
	err = check_signatures(&c);
	if (err != TP_OK)
		goto out;
	err = check_pin(&c, thp);
	if (err != TP_OK)
		goto out;
	adv = calloc(1, sizeof(*adv));
	if (!adv) {
		err = TP_ERR_NOMEM;
		goto out;
	}
	err = collect_keys(&c, adv);
	if (err != TP_OK)
		goto out;
	adv->payload = c.payload;
	c.payload = NULL;
	*out = adv;
	adv = NULL;
out:
	adv_free(adv);
	json_decref(c.payload);
	json_decref(c.jws);
	return err;
}

void adv_free(tp_adv *adv)
{
	if (!adv)
		return;
	json_decref(adv->payload);
	free(adv->keys);
	free(adv);
}
