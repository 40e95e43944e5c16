/* jose/jwk.c and jose/jws.c against fixtures made by the jose CLI
 * (fixtures/make-fixtures.sh) and signatures made here with OpenSSL. */
#include "test.h"
#include "ossl_helpers.h"
#include "sign_helper.h"

#include "jose/b64url.h"
#include "jose/jwk.h"
#include "jose/jws.h"

static json_t *public_of(const json_t *jwk)
{
	json_t *p = json_deep_copy(jwk);

	json_object_del(p, "d");
	json_object_del(p, "alg");
	json_object_del(p, "key_ops");
	return p;
}

static void thumbprints(void)
{
	char *text = fixture_text("thumbprints.txt", NULL);
	char *save = NULL;
	int n = 0;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char file[64], s256[64], s1[64], b64[TP_THP_MAX_B64];
		uint8_t raw[TP_THP_MAX_RAW], want[TP_THP_MAX_RAW];
		json_t *k, *pub;

		if (sscanf(line, "%63s %63s %63s", file, s256, s1) != 3)
			continue;
		n++;
		k = fixture_json(file);
		pub = public_of(k);
		CHECK_ERR(jwk_thumbprint(k, TP_THP_S256, raw, b64), TP_OK);
		CHECK(strcmp(b64, s256) == 0);
		CHECK_ERR(b64url_decode_exact(s256, strlen(s256), want, 32), TP_OK);
		CHECK(memcmp(raw, want, 32) == 0);
		CHECK_ERR(jwk_thumbprint(k, TP_THP_S1, raw, b64), TP_OK);
		CHECK(strcmp(b64, s1) == 0);
		CHECK_ERR(b64url_decode_exact(s1, strlen(s1), want, 20), TP_OK);
		CHECK(memcmp(raw, want, 20) == 0);
		/* d, alg, key_ops are not part of it */
		CHECK_ERR(jwk_thumbprint(pub, TP_THP_S256, NULL, b64), TP_OK);
		CHECK(strcmp(b64, s256) == 0);
		CHECK_ERR(jwk_thumbprint(pub, TP_THP_S1, raw, NULL), TP_OK);
		json_decref(pub);
		json_decref(k);
	}
	CHECK(n == 7);
	free(text);
	/* values verbatim: a thumbprint is computed even for a non-point */
	{
		json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-521", "x", "a", "y", "b");
		char b64[TP_THP_MAX_B64];
		CHECK_ERR(jwk_thumbprint(j, TP_THP_S256, NULL, b64), TP_OK);
		CHECK(strlen(b64) == 43);
		json_object_set_new(j, "kty", json_string("RSA"));
		CHECK_ERR(jwk_thumbprint(j, TP_THP_S256, NULL, b64), TP_ERR_INPUT);
		json_object_set_new(j, "kty", json_string("EC"));
		json_object_del(j, "y");
		CHECK_ERR(jwk_thumbprint(j, TP_THP_S256, NULL, b64), TP_ERR_INPUT);
		json_decref(j);
	}
}

static void points(void)
{
	json_t *k = fixture_json("exc521.jwk");
	uint8_t pt[TP_EC_MAX_POINT], pt2[TP_EC_MAX_POINT];
	const tp_curve *c = NULL;
	size_t len = 0;
	json_t *back, *bad;
	char *text;

	CHECK_ERR(jwk_to_point(k, &c, pt, &len), TP_OK);
	CHECK(c == ec_curve_by_jwk_name("P-521") && len == 133 && pt[0] == 0x04);
	back = jwk_from_point(c, pt, "ECMR");
	text = json_dumps(back, JSON_COMPACT);
	{
		const char *want = "{\"alg\":\"ECMR\",\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"";
		CHECK(strncmp(text, want, strlen(want)) == 0);
	}
	CHECK(strcmp(json_string_value(json_object_get(back, "x")),
		     json_string_value(json_object_get(k, "x"))) == 0);
	CHECK(strcmp(json_string_value(json_object_get(back, "y")),
		     json_string_value(json_object_get(k, "y"))) == 0);
	free(text);
	json_decref(back);
	back = jwk_from_point(c, pt, NULL);
	CHECK(json_object_get(back, "alg") == NULL && json_object_size(back) == 4);
	CHECK_ERR(jwk_to_point(back, NULL, pt2, NULL), TP_OK);
	CHECK(memcmp(pt, pt2, len) == 0);
	json_decref(back);

	/* malformed variants */
	bad = json_deep_copy(k);
	json_object_set_new(bad, "kty", json_string("RSA"));
	CHECK_ERR(jwk_to_point(bad, &c, pt2, &len), TP_ERR_INPUT);
	json_object_set_new(bad, "kty", json_string("EC"));
	json_object_set_new(bad, "crv", json_string("P-256"));
	CHECK_ERR(jwk_to_point(bad, &c, pt2, &len), TP_ERR_INPUT);
	json_object_set_new(bad, "crv", json_string("P-999"));
	CHECK_ERR(jwk_to_point(bad, &c, pt2, &len), TP_ERR_INPUT);
	json_object_set_new(bad, "crv", json_string("P-521"));
	/* 65-byte x: leading zero dropped, as clevis accepts but we do not */
	{
		uint8_t raw[66];
		char enc[100];
		b64url_encode(pt + 1, 66, enc);
		memcpy(raw, pt + 1, 66);
		b64url_encode(raw + 1, 65, enc);
		json_object_set_new(bad, "x", json_string(enc));
		CHECK_ERR(jwk_to_point(bad, &c, pt2, &len), TP_ERR_INPUT);
		/* flipped last bit of y: off the curve */
		raw[0] = 0;
		memcpy(raw, pt + 67, 66);
		raw[65] ^= 1;
		b64url_encode(raw, 66, enc);
		json_object_set(bad, "x", json_object_get(k, "x"));
		json_object_set_new(bad, "y", json_string(enc));
		CHECK_ERR(jwk_to_point(bad, &c, pt2, &len), TP_ERR_INPUT);
		json_object_set_new(bad, "y", json_integer(5));
		CHECK_ERR(jwk_to_point(bad, &c, pt2, &len), TP_ERR_INPUT);
	}
	{
		json_t *str = json_string("x");
		CHECK_ERR(jwk_to_point(str, &c, pt2, &len), TP_ERR_INPUT);
		json_decref(str);
	}
	json_decref(bad);
	json_decref(k);
}

static void key_ops(void)
{
	json_t *j = json_pack("{s:[s]}", "key_ops", "verify");

	CHECK(jwk_allows(j, "verify"));
	CHECK(!jwk_allows(j, "sign"));
	CHECK(!jwk_allows(j, "deriveKey"));
	json_decref(j);
	j = json_pack("{s:s}", "use", "sig");
	CHECK(jwk_allows(j, "verify") && jwk_allows(j, "sign") && !jwk_allows(j, "deriveKey"));
	json_decref(j);
	j = json_pack("{s:s}", "use", "enc");
	CHECK(jwk_allows(j, "deriveKey") && !jwk_allows(j, "verify"));
	json_decref(j);
	j = json_pack("{s:s}", "alg", "ES512");  /* not explicit: no */
	CHECK(!jwk_allows(j, "verify"));
	json_decref(j);
	j = json_pack("{s:[i,s]}", "key_ops", 1, "deriveKey");
	CHECK(jwk_allows(j, "deriveKey"));
	json_decref(j);
}

/* Replace one character of member name of obj, keeping the b64 valid. */
static void flip(json_t *obj, const char *name, size_t pos)
{
	char *s = strdup(json_string_value(json_object_get(obj, name)));

	s[pos] = s[pos] == 'A' ? 'B' : 'A';
	json_object_set_new(obj, name, json_string(s));
	free(s);
}

static void signatures(void)
{
	json_t *jws = fixture_json("adv521.jws"), *gen = fixture_json("adv521-general.jws");
	json_t *sig = fixture_json("sig521.jwk"), *extra = fixture_json("extra521.jwk");
	json_t *exc = fixture_json("exc521.jwk"), *t;
	const char *p = NULL, *s = NULL;

	/* flattened, as made by jose */
	CHECK(jws_signature_count(jws) == 1);
	CHECK(jws_signature(jws, 0, &p, &s) && p && s);
	CHECK(!jws_signature(jws, 1, &p, &s));
	CHECK_ERR(jws_verify_signature(jws, 0, sig), TP_OK);
	CHECK_ERR(jws_verify_signature(jws, 0, extra), TP_ERR_INPUT);
	CHECK_ERR(jws_verify_signature(jws, 0, exc), TP_ERR_INPUT);
	CHECK_ERR(jws_verify_signature(jws, 1, sig), TP_ERR_INPUT);
	/* general, two signers in order */
	CHECK(jws_signature_count(gen) == 2);
	CHECK_ERR(jws_verify_signature(gen, 0, sig), TP_OK);
	CHECK_ERR(jws_verify_signature(gen, 1, extra), TP_OK);
	CHECK_ERR(jws_verify_signature(gen, 0, extra), TP_ERR_INPUT);
	CHECK_ERR(jws_verify_signature(gen, 2, extra), TP_ERR_INPUT);
	/* the other curves */
	{
		json_t *j = fixture_json("adv256.jws"), *k = fixture_json("sig256.jwk");
		CHECK_ERR(jws_verify_signature(j, 0, k), TP_OK);
		CHECK_ERR(jws_verify_signature(j, 0, sig), TP_ERR_INPUT);
		json_decref(j);
		json_decref(k);
		j = fixture_json("adv384.jws");
		k = fixture_json("sig384.jwk");
		CHECK_ERR(jws_verify_signature(j, 0, k), TP_OK);
		json_decref(j);
		json_decref(k);
	}
	/* tampered signature, payload, header */
	t = json_deep_copy(jws);
	flip(t, "signature", 10);
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	t = json_deep_copy(jws);
	flip(t, "payload", 20);
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	t = json_deep_copy(jws);
	flip(t, "protected", 3);
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	/* signature of the wrong length, not base64url */
	t = json_deep_copy(jws);
	json_object_set_new(t, "signature", json_string("AAAA"));
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_object_set_new(t, "signature", json_string("!!"));
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	/* both forms at once: malformed */
	t = json_deep_copy(gen);
	json_object_set(t, "signature", json_object_get(jws, "signature"));
	CHECK(jws_signature_count(t) == 0);
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	/* our own signer agrees with jose's verifier view */
	t = sign_jws("{\"alg\":\"ES512\",\"cty\":\"jwk-set+json\"}", "{\"keys\": []}", "sig521.jwk", "SHA512");
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_OK);
	json_decref(t);
	/* ES256 header on a P-521 key: rejected even with a valid signature
	 * (SHA-512 or SHA-256 digest) */
	t = sign_jws("{\"alg\":\"ES256\",\"cty\":\"jwk-set+json\"}", "{\"keys\": []}", "sig521.jwk", "SHA512");
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	t = sign_jws("{\"alg\":\"ES256\"}", "{\"keys\": []}", "sig521.jwk", "SHA256");
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	/* no alg, crit, b64=false */
	t = sign_jws("{\"cty\":\"jwk-set+json\"}", "{}", "sig521.jwk", "SHA512");
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	t = sign_jws("{\"alg\":\"ES512\",\"crit\":[\"x\"],\"x\":1}", "{}", "sig521.jwk", "SHA512");
	CHECK_ERR(jws_verify_signature(t, 0, sig), TP_ERR_INPUT);
	json_decref(t);
	/* P-256 signer with ES256 */
	t = sign_jws("{\"alg\":\"ES256\"}", "{}", "sig256.jwk", "SHA256");
	{
		json_t *k = fixture_json("sig256.jwk");
		CHECK_ERR(jws_verify_signature(t, 0, k), TP_OK);
		json_decref(k);
	}
	json_decref(t);

	json_decref(exc);
	json_decref(extra);
	json_decref(sig);
	json_decref(gen);
	json_decref(jws);
}

int main(void)
{
	thumbprints();
	points();
	key_ops();
	signatures();
	ossl_ctx_free();
	return test_exit("jose");
}
