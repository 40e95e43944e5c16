#include "jose/jwk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "jose/b64url.h"

/* A coordinate member of exactly field_len bytes, decoded into out. */
static tp_err coordinate(const json_t *jwk, const char *name, const tp_curve *c, uint8_t *out)
{
	const json_t *v = json_object_get(jwk, name);

	if (!json_is_string(v))
		return TP_ERR_INPUT;
	return b64url_decode_exact(json_string_value(v), json_string_length(v), out, c->field_len);
}

tp_err jwk_to_point(const json_t *jwk, const tp_curve **curve, uint8_t *out, size_t *out_len)
{
	const tp_curve *c;
	const char *kty, *crv;
	tp_err err;

	if (!json_is_object(jwk))
		return TP_ERR_INPUT;
	kty = json_string_value(json_object_get(jwk, "kty"));
	crv = json_string_value(json_object_get(jwk, "crv"));
	if (!kty || strcmp(kty, "EC") != 0)
		return TP_ERR_INPUT;
	c = ec_curve_by_jwk_name(crv);
	if (!c)
		return TP_ERR_INPUT;
	out[0] = 0x04;
	err = coordinate(jwk, "x", c, out + 1);
	if (err == TP_OK)
		err = coordinate(jwk, "y", c, out + 1 + c->field_len);
	if (err == TP_OK)
		err = ec_point_check(c, out, ec_point_len(c));
	if (err != TP_OK)
		return err == TP_ERR_GENERAL || err == TP_ERR_NOMEM ? err : TP_ERR_INPUT;
	if (curve)
		*curve = c;
	if (out_len)
		*out_len = ec_point_len(c);
	return TP_OK;
}

json_t *jwk_from_point(const tp_curve *c, const uint8_t *pt, const char *alg)
{
	char x[TP_EC_MAX_FIELD * 2], y[TP_EC_MAX_FIELD * 2];
	json_t *jwk;

	b64url_encode(pt + 1, c->field_len, x);
	b64url_encode(pt + 1 + c->field_len, c->field_len, y);
	/* Members in sorted order: dumped as is, the text equals what jose
	 * (JSON_SORT_KEYS) writes. */
	jwk = json_object();
	if (!jwk)
		return NULL;
	if ((alg && json_object_set_new(jwk, "alg", json_string(alg)) != 0) ||
	    json_object_set_new(jwk, "crv", json_string(c->jwk_name)) != 0 ||
	    json_object_set_new(jwk, "kty", json_string("EC")) != 0 ||
	    json_object_set_new(jwk, "x", json_string(x)) != 0 ||
	    json_object_set_new(jwk, "y", json_string(y)) != 0) {
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

/* RFC 7638: the required members only, values copied verbatim, serialised
 * compact with sorted keys (what jose hashes). */
static char *thumbprint_input(const json_t *jwk)
{
	static const char *const members[] = { "crv", "kty", "x", "y" };
	json_t *req = NULL;
	char *text = NULL;
	const char *kty;

	if (!json_is_object(jwk))
		return NULL;
	kty = json_string_value(json_object_get(jwk, "kty"));
	if (!kty || strcmp(kty, "EC") != 0)
		return NULL;
	req = json_object();
	if (!req)
		return NULL;
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		json_t *v = json_object_get(jwk, members[i]);
		if (!json_is_string(v) || json_object_set(req, members[i], v) != 0)
			goto out;
	}
	text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(req);
	return text;
}

tp_err jwk_thumbprint(const json_t *jwk, tp_thp_hash hash, uint8_t *raw, char *b64)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD *alg = NULL;
	char *text = NULL;
	tp_err err = TP_ERR_INPUT;

	text = thumbprint_input(jwk);
	if (!text)
		goto out;
	err = TP_ERR_GENERAL;
	alg = EVP_MD_fetch(ossl_ctx(), hash == TP_THP_S1 ? "SHA1" : "SHA256", NULL);
	if (!alg || EVP_Digest(text, strlen(text), md, &md_len, alg, NULL) != 1)
		goto out;
	if (raw)
		memcpy(raw, md, md_len);
	if (b64)
		b64url_encode(md, md_len, b64);
	err = TP_OK;
out:
	EVP_MD_free(alg);
	free(text);
	return err;
}

/* The "use" values that imply an operation (RFC 7517 §4.2/4.3). */
static bool use_implies(const char *use, const char *op)
{
	static const char *const sig_ops[] = { "sign", "verify", NULL };
	static const char *const enc_ops[] = { "encrypt", "decrypt", "wrapKey", "unwrapKey",
					       "deriveKey", "deriveBits", NULL };
	const char *const *ops;

	if (strcmp(use, "sig") == 0)
		ops = sig_ops;
	else if (strcmp(use, "enc") == 0)
		ops = enc_ops;
	else
		return false;
	for (; *ops; ops++) {
		if (strcmp(*ops, op) == 0)
			return true;
	}
	return false;
}

bool jwk_allows(const json_t *jwk, const char *op)
{
	const json_t *ops = json_object_get(jwk, "key_ops");
	const char *use = json_string_value(json_object_get(jwk, "use"));
	size_t i;
	json_t *v;

	if (!json_is_object(jwk) || !op)
		return false;
	json_array_foreach(ops, i, v) {
		const char *s = json_string_value(v);
		if (s && strcmp(s, op) == 0)
			return true;
	}
	return use && use_implies(use, op);
}
