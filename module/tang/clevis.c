#include "tang/clevis.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "jose/b64url.h"
#include "jose/jwk.h"
#include "util/ec.h"
#include "util/log.h"
#include "util/url.h"

static tp_err refuse(const tp_tang_server *srv, const char *kid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The one log line of a JWE refused before any request.  The kid and any
 * text quoted from the JWE are bounded: the JWE is the caller's input. */
static tp_err refuse(const tp_tang_server *srv, const char *kid, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (kid)
		log_error("Clevis JWE for %s kid %.64s refused: %s", tang_server_url(srv), kid, why);
	else
		log_error("Clevis JWE for %s refused: %s", tang_server_url(srv), why);
	return TP_ERR_INPUT;
}

static const json_t *get_path(const json_t *j, const char *a, const char *b)
{
	j = json_object_get(j, a);
	return b ? json_object_get(j, b) : j;
}

/* clevis.pin and clevis.tang.url: a tang JWE bound to srv. */
static tp_err check_binding(const tp_tang_server *srv, const json_t *hdr)
{
	const json_t *clevis = json_object_get(hdr, "clevis");
	const char *pin = json_string_value(json_object_get(clevis, "pin"));
	const char *url = json_string_value(get_path(clevis, "tang", "url"));

	if (!json_is_object(clevis))
		return refuse(srv, NULL, "no clevis object in the header");
	if (pin && strcmp(pin, "sss") == 0)
		return refuse(srv, NULL, "an sss JWE (Shamir over several pins): "
			      "supported in a later version of this module");
	if (!pin || strcmp(pin, "tang") != 0)
		return refuse(srv, NULL, "clevis.pin is not \"tang\"");
	if (!json_is_object(json_object_get(clevis, "tang")))
		return refuse(srv, NULL, "no clevis.tang object");
	if (!url)
		return refuse(srv, NULL, "no clevis.tang.url");
	if (!url_same_server(url, tang_server_url(srv)))
		return refuse(srv, NULL, "bound to another server (%.200s)", url);
	return TP_OK;
}

/* The key of adv whose `hash` thumbprint is kid, or NULL. */
static const json_t *key_by_thp(const json_t *keys, const char *kid, tp_thp_hash hash)
{
	char b64[TP_THP_MAX_B64];
	size_t i;
	json_t *k;

	json_array_foreach(keys, i, k) {
		if (jwk_thumbprint(k, hash, NULL, b64) == TP_OK && strcmp(b64, kid) == 0)
			return k;
	}
	return NULL;
}

/* S: the key of clevis.tang.adv that kid names, S256 first then S1 (as
 * clevis-decrypt-tang), which must be an exchange key: tangd would answer
 * 403 for the signing key, so that needs no request to find out. */
static tp_err find_server_key(const tp_tang_server *srv, const json_t *hdr, const char *kid,
			      tp_exchange_key *key)
{
	const json_t *adv = get_path(hdr, "clevis", "tang");
	const json_t *keys, *k;
	const char *alg;

	adv = json_object_get(adv, "adv");
	keys = json_object_get(adv, "keys");
	if (!json_is_object(adv) || !json_is_array(keys))
		return refuse(srv, kid, "no clevis.tang.adv object with a keys array");
	if (json_array_size(keys) > TP_CLEVIS_MAX_ADV_KEYS)
		return refuse(srv, kid, "clevis.tang.adv has more than %d keys", TP_CLEVIS_MAX_ADV_KEYS);
	k = key_by_thp(keys, kid, TP_THP_S256);
	if (!k)
		k = key_by_thp(keys, kid, TP_THP_S1);
	if (!k)
		return refuse(srv, kid, "the kid is not the thumbprint of a key in clevis.tang.adv");
	alg = json_string_value(json_object_get(k, "alg"));
	if (!jwk_allows(k, "deriveKey") || (alg && strcmp(alg, "ECMR") != 0))
		return refuse(srv, kid, "the kid names a key that does not allow deriveKey "
			      "(the signing key?)");
	if (jwk_to_point(k, &key->curve, key->point, &key->point_len) != TP_OK)
		return refuse(srv, kid, "the kid's key in clevis.tang.adv is not a valid EC key");
	if (jwk_thumbprint(k, TP_THP_S256, key->id, NULL) != TP_OK)
		return refuse(srv, kid, "cannot compute the thumbprint of the kid's key");
	/* The kid equals a computed thumbprint: base64url, at most 43 chars,
	 * safe to put in the /rec URL. */
	snprintf(key->kid, sizeof(key->kid), "%s", kid);
	return TP_OK;
}

static tp_err check_epk(const tp_tang_server *srv, const json_t *hdr, tp_clevis_jwe *cj)
{
	const tp_curve *c = NULL;

	if (jwk_to_point(json_object_get(hdr, "epk"), &c, cj->epk, &cj->epk_len) != TP_OK)
		return refuse(srv, cj->key.kid, "epk is not a valid point of a supported curve");
	if (c != cj->key.curve)
		return refuse(srv, cj->key.kid, "epk is on %s, the server key on %s",
			      c->jwk_name, cj->key.curve->jwk_name);
	return TP_OK;
}

tp_err clevis_jwe_parse(const tp_tang_server *srv, const char *text, size_t len,
			tp_clevis_jwe *cj)
{
	const char *why = NULL, *kid;
	tp_err err;

	memset(cj, 0, sizeof(*cj));
	err = jwe_parse(text, len, &cj->jwe, &why);
	if (err == TP_OK)
		err = jwe_check_ecdh_es(&cj->jwe, &why);
	if (err != TP_OK) {
		if (err == TP_ERR_INPUT)
			refuse(srv, NULL, "%s", why);
		return err;
	}
	err = check_binding(srv, cj->jwe.header);
	if (err != TP_OK)
		return err;
	kid = json_string_value(json_object_get(cj->jwe.header, "kid"));
	if (!kid || !*kid)
		return refuse(srv, NULL, "no kid");
	err = find_server_key(srv, cj->jwe.header, kid, &cj->key);
	if (err == TP_OK)
		err = check_epk(srv, cj->jwe.header, cj);
	return err;
}

void clevis_jwe_clear(tp_clevis_jwe *cj)
{
	if (cj)
		jwe_clear(&cj->jwe);
}

tp_err clevis_jwe_decrypt(tp_tang_server *srv, const tp_clevis_jwe *cj, uint8_t *pt)
{
	uint8_t z[TP_EC_MAX_FIELD], cek[TP_JWE_CEK_LEN];
	size_t field = cj->key.curve->field_len;
	tp_err err;

	/* Network: K = s·C through the blinded exchange; Z = x(K). */
	err = tang_recover(srv, &cj->key, cj->epk, cj->epk_len, z, field);
	if (err != TP_OK)
		goto out;
	err = jwe_derive_cek(&cj->jwe, z, field, cek);
	if (err != TP_OK)
		goto out;
	err = jwe_open(&cj->jwe, cek, pt);
	if (err == TP_ERR_INPUT)
		log_error("Clevis JWE for %s kid %s: authentication tag mismatch "
			  "(JWE altered, or the server answered with a wrong point)",
			  tang_server_url(srv), cj->key.kid);
out:
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(cek, sizeof(cek));
	return err;
}

/* Does payload still list key as an exchange key (by its S256 kid)? */
static bool payload_has(const json_t *payload, const tp_exchange_key *key)
{
	const json_t *k = key_by_thp(json_object_get(payload, "keys"), key->kid, TP_THP_S256);

	return k && jwk_allows(k, "deriveKey");
}

static json_t *clevis_header(const tp_tang_server *srv, const tp_exchange_key *key,
			     json_t *payload, const uint8_t *epk)
{
	json_t *epk_jwk = jwk_from_point(key->curve, epk, NULL);

	if (!epk_jwk)
		return NULL;
	/* "o" steals epk_jwk (even on failure); "O" adds a reference. */
	return json_pack("{s:s, s:{s:s, s:{s:O, s:s}}, s:s, s:o, s:s}",
			 "alg", "ECDH-ES",
			 "clevis", "pin", "tang", "tang", "adv", payload,
			 "url", tang_server_url(srv),
			 "enc", "A256GCM",
			 "epk", epk_jwk,
			 "kid", key->kid);
}

/* c random, C = c·G (the epk), Z = x(c·S). */
static tp_err ephemeral(const tp_exchange_key *key, uint8_t *epk, uint8_t *z)
{
	const tp_curve *cv = key->curve;
	uint8_t c[TP_EC_MAX_FIELD], k[TP_EC_MAX_POINT];
	tp_err err;

	err = ec_random_scalar(cv, c);
	if (err == TP_OK)
		err = ec_mul(cv, c, cv->field_len, NULL, epk);
	if (err == TP_OK)
		err = ec_mul(cv, c, cv->field_len, key->point, k);
	if (err == TP_OK)
		memcpy(z, k + 1, cv->field_len);
	OPENSSL_cleanse(c, sizeof(c));
	OPENSSL_cleanse(k, sizeof(k));
	return err;
}

tp_err clevis_jwe_encrypt(tp_tang_server *srv, const tp_exchange_key *key,
			  const uint8_t *pt, size_t len, char **out, size_t *out_len)
{
	uint8_t epk[TP_EC_MAX_POINT], z[TP_EC_MAX_FIELD], cek[TP_JWE_CEK_LEN];
	json_t *payload = NULL, *hdr = NULL;
	char *text = NULL;
	tp_err err;

	*out = NULL;
	*out_len = 0;
	err = tang_server_payload(srv, &payload);
	if (err != TP_OK)
		goto out;
	if (!payload_has(payload, key)) {
		log_error("Clevis JWE for %s kid %s: the server's advertisement no longer "
			  "lists this key (rotated); use a current key", tang_server_url(srv), key->kid);
		err = TP_ERR_UNKNOWN_KEY;
		goto out;
	}
	err = ephemeral(key, epk, z);
	if (err != TP_OK)
		goto out;
	err = TP_ERR_NOMEM;
	hdr = clevis_header(srv, key, payload, epk);
	/* jose writes protected headers compact with sorted keys. */
	text = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!text)
		goto out;
	if (b64url_encoded_len(strlen(text)) > TP_JWE_MAX_HEADER_B64) {
		/* We could not read it back ourselves. */
		log_error("Clevis JWE for %s: the advertisement makes the header larger than 64 KiB",
			  tang_server_url(srv));
		err = TP_ERR_BAD_REPLY;
		goto out;
	}
	err = jwe_concat_kdf(z, key->curve->field_len, "A256GCM", NULL, 0, NULL, 0, cek);
	if (err == TP_OK)
		err = jwe_seal(text, strlen(text), cek, pt, len, out, out_len);
out:
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(cek, sizeof(cek));
	free(text);
	json_decref(hdr);
	json_decref(payload);
	return err;
}
