/* tang/adv.c: verification and pinning as clevis 19 does it
 * (TANG_PROTOCOL.md §3), on jose-made and OpenSSL-signed advertisements. */
#include "test.h"
#include "sign_helper.h"

#include "tang/adv.h"

/* S256 / S1 thumbprints of a fixture key, from thumbprints.txt (jose). */
static void thp_of(const char *file, char *s256, char *s1)
{
	char *text = fixture_text("thumbprints.txt", NULL);
	char *line = strstr(text, file);

	if (!line || sscanf(line + strlen(file), " %63s %63s", s256, s1) != 2)
		exit(1);
	free(text);
}

static tp_err verify_fixture(const char *name, const char *thp, tp_adv **out)
{
	size_t len;
	char *text = fixture_text(name, &len);
	tp_err err = adv_verify(text, len, thp, name, out);

	free(text);
	return err;
}

static tp_err verify_json(const json_t *jws, const char *thp, tp_adv **out)
{
	char *text = json_dumps(jws, JSON_COMPACT);
	tp_err err = adv_verify(text, strlen(text), thp, "test", out);

	free(text);
	return err;
}

/* The public form of a fixture key, as a payload member. */
static char *pub_text(const char *file, const char *drop)
{
	json_t *k = fixture_json(file);
	char *t;

	json_object_del(k, "d");
	if (json_string_value(json_object_get(k, "alg")) &&
	    strcmp(json_string_value(json_object_get(k, "alg")), "ECMR") != 0)
		json_object_set_new(k, "key_ops", json_pack("[s]", "verify"));
	if (drop)
		json_object_del(k, drop);
	t = json_dumps(k, JSON_SORT_KEYS);
	json_decref(k);
	return t;
}

static json_t *signed_payload(const char *keys_json)
{
	char *payload = NULL;
	json_t *jws;

	if (asprintf(&payload, "{\"keys\": [%s]}", keys_json) < 0)
		exit(1);
	jws = sign_jws("{\"alg\":\"ES512\",\"cty\":\"jwk-set+json\"}", payload, "sig521.jwk", "SHA512");
	free(payload);
	return jws;
}

static void good(void)
{
	char sig256[64], sig1[64], exc256[64], exc1[64];
	json_t *exc = fixture_json("exc521.jwk");
	uint8_t pt[TP_EC_MAX_POINT];
	tp_adv *adv = NULL;

	thp_of("sig521.jwk", sig256, sig1);
	thp_of("exc521.jwk", exc256, exc1);
	jwk_to_point(exc, NULL, pt, NULL);

	CHECK_ERR(verify_fixture("adv521.jws", sig256, &adv), TP_OK);
	CHECK(adv && adv->n_keys == 1);
	if (adv && adv->n_keys == 1) {
		CHECK(adv->keys[0].curve == ec_curve_by_jwk_name("P-521"));
		CHECK(adv->keys[0].point_len == 133 && memcmp(adv->keys[0].point, pt, 133) == 0);
		CHECK(strcmp(adv->keys[0].kid, exc256) == 0);
		CHECK(json_array_size(json_object_get(adv->payload, "keys")) == 2);
		{
			uint8_t raw[32];
			b64url_decode_exact(exc256, 43, raw, 32);
			CHECK(memcmp(adv->keys[0].id, raw, 32) == 0);
		}
	}
	adv_free(adv);
	/* pin by S1, no pin */
	CHECK_ERR(verify_fixture("adv521.jws", sig1, &adv), TP_OK);
	adv_free(adv);
	CHECK_ERR(verify_fixture("adv521.jws", NULL, &adv), TP_OK);
	adv_free(adv);
	/* general form, pinned to the signer that is in the payload */
	CHECK_ERR(verify_fixture("adv521-general.jws", sig256, &adv), TP_OK);
	adv_free(adv);
	/* other curves */
	thp_of("sig256.jwk", sig256, sig1);
	CHECK_ERR(verify_fixture("adv256.jws", sig256, &adv), TP_OK);
	CHECK(adv && adv->n_keys == 1 && adv->keys[0].curve == ec_curve_by_jwk_name("P-256"));
	adv_free(adv);
	thp_of("sig384.jwk", sig256, sig1);
	CHECK_ERR(verify_fixture("adv384.jws", sig1, &adv), TP_OK);
	CHECK(adv && adv->n_keys == 1 && adv->keys[0].curve == ec_curve_by_jwk_name("P-384"));
	adv_free(adv);
	json_decref(exc);
}

static void pins(void)
{
	char s256[64], s1[64], x256[64], x1[64];
	tp_adv *adv = (tp_adv *)1;

	thp_of("sig521.jwk", s256, s1);
	/* the exchange key's thumbprint is not a trust pin */
	thp_of("exc521.jwk", x256, x1);
	CHECK_ERR(verify_fixture("adv521.jws", x256, &adv), TP_ERR_UNTRUSTED);
	CHECK(adv == NULL);
	CHECK_ERR(verify_fixture("adv521.jws", x1, &adv), TP_ERR_UNTRUSTED);
	CHECK_ERR(verify_fixture("adv521.jws", "X2eXIR7xpJL5LhOLdDDzLFikBAhtskzjPXbjiFiNW-h", &adv), TP_ERR_UNTRUSTED);
	CHECK_ERR(verify_fixture("adv521.jws", "", &adv), TP_ERR_UNTRUSTED);
	/* signed by extra521, which is not in the payload: cannot be the pin */
	thp_of("extra521.jwk", x256, x1);
	CHECK_ERR(verify_fixture("adv521-general.jws", x256, &adv), TP_ERR_UNTRUSTED);
	CHECK_ERR(verify_fixture("adv521-general.jws", x1, &adv), TP_ERR_UNTRUSTED);
	/* two verify keys in the payload, only one signed */
	CHECK_ERR(verify_fixture("adv521-missing-signer.jws", s256, &adv), TP_ERR_UNTRUSTED);
	CHECK_ERR(verify_fixture("adv521-missing-signer.jws", NULL, &adv), TP_ERR_UNTRUSTED);
	/* no exchange key */
	CHECK_ERR(verify_fixture("adv521-noexc.jws", s256, &adv), TP_ERR_BAD_REPLY);
}

static void tampered(void)
{
	json_t *jws = fixture_json("adv521.jws"), *t;
	char s256[64], s1[64], *text;
	tp_adv *adv = NULL;

	thp_of("sig521.jwk", s256, s1);
	t = json_deep_copy(jws);
	{
		char *sig = strdup(json_string_value(json_object_get(t, "signature")));
		sig[5] = sig[5] == 'A' ? 'B' : 'A';
		json_object_set_new(t, "signature", json_string(sig));
		free(sig);
	}
	CHECK_ERR(verify_json(t, s256, &adv), TP_ERR_UNTRUSTED);
	json_decref(t);
	/* ES256 header with a valid P-521 signature */
	{
		char *sigpub = pub_text("sig521.jwk", NULL), *excpub = pub_text("exc521.jwk", NULL);
		char *keys = NULL, *payload = NULL;
		if (asprintf(&keys, "%s, %s", excpub, sigpub) < 0 ||
		    asprintf(&payload, "{\"keys\": [%s]}", keys) < 0)
			exit(1);
		t = sign_jws("{\"alg\":\"ES256\",\"cty\":\"jwk-set+json\"}", payload, "sig521.jwk", "SHA512");
		CHECK_ERR(verify_json(t, s256, &adv), TP_ERR_UNTRUSTED);
		json_decref(t);
		t = signed_payload(keys);
		CHECK_ERR(verify_json(t, s256, &adv), TP_OK);
		adv_free(adv);
		json_decref(t);
		free(payload);
		free(keys);
		free(sigpub);
		free(excpub);
	}
	/* malformed */
	CHECK_ERR(adv_verify("{", 1, NULL, "test", &adv), TP_ERR_BAD_REPLY);
	CHECK_ERR(adv_verify("[]", 2, NULL, "test", &adv), TP_ERR_BAD_REPLY);
	CHECK_ERR(adv_verify(NULL, 0, NULL, "test", &adv), TP_ERR_BAD_REPLY);
	t = json_deep_copy(jws);
	json_object_set_new(t, "payload", json_string("e30"));   /* {} */
	CHECK_ERR(verify_json(t, NULL, &adv), TP_ERR_BAD_REPLY);
	json_object_set_new(t, "payload", json_string("e30="));
	CHECK_ERR(verify_json(t, NULL, &adv), TP_ERR_BAD_REPLY);
	json_object_del(t, "payload");
	CHECK_ERR(verify_json(t, NULL, &adv), TP_ERR_BAD_REPLY);
	json_decref(t);
	/* duplicate members in the JWS are rejected outright */
	text = fixture_text("adv521.jws", NULL);
	{
		char *dup = NULL;
		if (asprintf(&dup, "{\"payload\":\"e30\",%s", text + 1) < 0)
			exit(1);
		CHECK_ERR(adv_verify(dup, strlen(dup), NULL, "test", &adv), TP_ERR_BAD_REPLY);
		free(dup);
	}
	free(text);
	/* too many signatures */
	{
		json_t *gen = json_object(), *sigs = json_array();
		json_object_set(gen, "payload", json_object_get(jws, "payload"));
		for (int i = 0; i < 9; i++)
			json_array_append_new(sigs, json_pack("{s:O,s:O}", "protected", json_object_get(jws, "protected"),
							      "signature", json_object_get(jws, "signature")));
		json_object_set_new(gen, "signatures", sigs);
		CHECK_ERR(verify_json(gen, s256, &adv), TP_ERR_BAD_REPLY);
		/* eight copies of the same good signature are fine */
		json_array_remove(sigs, 0);
		CHECK_ERR(verify_json(gen, s256, &adv), TP_OK);
		adv_free(adv);
		json_decref(gen);
	}
	/* oversized */
	{
		size_t n = 300 * 1024;
		char *big = malloc(n);
		memset(big, ' ', n);
		big[0] = '{';
		big[n - 1] = '}';
		CHECK_ERR(adv_verify(big, n, NULL, "test", &adv), TP_ERR_BAD_REPLY);
		free(big);
	}
	json_decref(jws);
}

/* Exchange keys: only alg ECMR + deriveKey, validated, in payload order. */
static void exchange_keys(void)
{
	char *sigpub = pub_text("sig521.jwk", NULL), *exc = pub_text("exc521.jwk", NULL);
	char *exc256 = pub_text("exc256.jwk", NULL), *noalg = pub_text("exc521.jwk", "alg");
	char *keys = NULL;
	json_t *t;
	tp_adv *adv = NULL;

	if (asprintf(&keys, "%s, %s, %s, %s", exc256, sigpub, noalg, exc) < 0)
		exit(1);
	t = signed_payload(keys);
	CHECK_ERR(verify_json(t, NULL, &adv), TP_OK);
	CHECK(adv && adv->n_keys == 2);
	if (adv && adv->n_keys == 2) {
		CHECK(adv->keys[0].curve == ec_curve_by_jwk_name("P-256"));
		CHECK(adv->keys[1].curve == ec_curve_by_jwk_name("P-521"));
	}
	adv_free(adv);
	json_decref(t);
	free(keys);
	/* an exchange key off its curve poisons the advertisement */
	{
		json_t *k = fixture_json("exc521.jwk");
		char *bad, *y = strdup(json_string_value(json_object_get(k, "y")));
		y[80] = y[80] == 'A' ? 'B' : 'A';
		json_object_del(k, "d");
		json_object_set_new(k, "y", json_string(y));
		bad = json_dumps(k, JSON_SORT_KEYS);
		if (asprintf(&keys, "%s, %s", bad, sigpub) < 0)
			exit(1);
		t = signed_payload(keys);
		CHECK_ERR(verify_json(t, NULL, &adv), TP_ERR_BAD_REPLY);
		json_decref(t);
		free(keys);
		free(bad);
		free(y);
		json_decref(k);
	}
	/* no verify key at all */
	t = signed_payload(exc);
	CHECK_ERR(verify_json(t, NULL, &adv), TP_ERR_UNTRUSTED);
	json_decref(t);
	free(sigpub);
	free(exc);
	free(exc256);
	free(noalg);
}

int main(void)
{
	good();
	pins();
	tampered();
	exchange_keys();
	ossl_ctx_free();
	return test_exit("adv");
}
