#include "jose/jws.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "jose/b64url.h"
#include "jose/jwk.h"
#include "util/ec.h"

#define JWS_MAX_PROTECTED 4096   /* b64u chars of a protected header */

/* The signature object i: the JWS itself when flattened, signatures[i]
 * when general.  A JWS with both forms is malformed (RFC 7515 §7.2.2). */
static const json_t *signature_object(const json_t *jws, size_t i)
{
	const json_t *sigs;

	if (!json_is_object(jws))
		return NULL;
	sigs = json_object_get(jws, "signatures");
	if (sigs) {
		if (json_object_get(jws, "signature") || json_object_get(jws, "protected"))
			return NULL;
		return json_is_array(sigs) ? json_array_get(sigs, i) : NULL;
	}
	return i == 0 && json_object_get(jws, "signature") ? jws : NULL;
}

size_t jws_signature_count(const json_t *jws)
{
	const json_t *sigs;

	if (!json_is_object(jws))
		return 0;
	sigs = json_object_get(jws, "signatures");
	if (sigs) {
		if (!json_is_array(sigs) || json_object_get(jws, "signature") ||
		    json_object_get(jws, "protected"))
			return 0;
		return json_array_size(sigs);
	}
	return json_object_get(jws, "signature") ? 1 : 0;
}

bool jws_signature(const json_t *jws, size_t i, const char **protected_b64, const char **sig_b64)
{
	const json_t *s = signature_object(jws, i);
	const char *p, *sig;

	if (!json_is_object(s))
		return false;
	p = json_string_value(json_object_get(s, "protected"));
	sig = json_string_value(json_object_get(s, "signature"));
	if (!p || !sig)
		return false;
	if (protected_b64)
		*protected_b64 = p;
	if (sig_b64)
		*sig_b64 = sig;
	return true;
}

static const char *alg_for_curve(const tp_curve *c)
{
	switch (c->field_len) {
	case 32: return "ES256";
	case 48: return "ES384";
	case 66: return "ES512";
	}
	return NULL;
}

static const char *digest_for_curve(const tp_curve *c)
{
	switch (c->field_len) {
	case 32: return "SHA256";
	case 48: return "SHA384";
	case 66: return "SHA512";
	}
	return NULL;
}

/* The protected header must name the algorithm of the key's curve and ask
 * for nothing we do not implement ("crit"; unencoded payloads). */
static tp_err check_header(const char *protected_b64, const tp_curve *c)
{
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	json_t *hdr = NULL;
	const char *alg;
	tp_err err = TP_ERR_INPUT;

	if (strlen(protected_b64) > JWS_MAX_PROTECTED)
		goto out;
	err = b64url_decode(protected_b64, strlen(protected_b64), &raw, &raw_len);
	if (err != TP_OK)
		goto out;
	err = TP_ERR_INPUT;
	hdr = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(hdr) || json_object_get(hdr, "crit") || json_object_get(hdr, "b64"))
		goto out;
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (!alg || strcmp(alg, alg_for_curve(c)) != 0)
		goto out;
	err = TP_OK;
out:
	json_decref(hdr);
	free(raw);
	return err;
}

/* JWS raw R||S -> the DER ECDSA-Sig-Value OpenSSL verifies. */
static tp_err signature_der(const char *sig_b64, const tp_curve *c, uint8_t **der, int *der_len)
{
	uint8_t raw[2 * TP_EC_MAX_FIELD];
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	tp_err err;

	*der = NULL;
	err = b64url_decode_exact(sig_b64, strlen(sig_b64), raw, 2 * c->field_len);
	if (err != TP_OK)
		return err;
	err = TP_ERR_GENERAL;
	sig = ECDSA_SIG_new();
	r = BN_bin2bn(raw, (int)c->field_len, NULL);
	s = BN_bin2bn(raw + c->field_len, (int)c->field_len, NULL);
	if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL;   /* owned by sig now */
	*der_len = i2d_ECDSA_SIG(sig, der);
	if (*der_len <= 0) {
		*der = NULL;
		goto out;
	}
	err = TP_OK;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return err;
}

/* An EVP_PKEY for a validated public point, in the private context. */
static EVP_PKEY *public_pkey(const tp_curve *c, const uint8_t *pt, size_t pt_len)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *pctx;
	EVP_PKEY *pkey = NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)c->sn, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, pt_len);
	params[2] = OSSL_PARAM_construct_end();
	pctx = EVP_PKEY_CTX_new_from_name(ossl_ctx(), "EC", NULL);
	if (pctx && EVP_PKEY_fromdata_init(pctx) == 1)
		EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(pctx);
	return pkey;
}

/* Verify der over protected_b64 "." payload_b64, exactly as received. */
static tp_err verify_der(const tp_curve *c, const uint8_t *pt, size_t pt_len,
			 const char *protected_b64, const char *payload_b64,
			 const uint8_t *der, size_t der_len)
{
	size_t plen = strlen(protected_b64), ylen = strlen(payload_b64);
	EVP_MD_CTX *md = NULL;
	EVP_PKEY *pkey = NULL;
	char *input = NULL;
	tp_err err = TP_ERR_GENERAL;
	int rc;

	input = malloc(plen + 1 + ylen);
	pkey = public_pkey(c, pt, pt_len);
	md = EVP_MD_CTX_new();
	if (!input || !pkey || !md)
		goto out;
	memcpy(input, protected_b64, plen);
	input[plen] = '.';
	memcpy(input + plen + 1, payload_b64, ylen);
	if (EVP_DigestVerifyInit_ex(md, NULL, digest_for_curve(c), ossl_ctx(), NULL, pkey, NULL) != 1)
		goto out;
	rc = EVP_DigestVerify(md, der, der_len, (const uint8_t *)input, plen + 1 + ylen);
	err = rc == 1 ? TP_OK : TP_ERR_INPUT;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	free(input);
	return err;
}

tp_err jws_verify_signature(const json_t *jws, size_t i, const json_t *jwk)
{
	uint8_t pt[TP_EC_MAX_POINT];
	const char *protected_b64, *sig_b64, *payload_b64;
	const tp_curve *c = NULL;
	uint8_t *der = NULL;
	size_t pt_len = 0;
	int der_len = 0;
	tp_err err;

	payload_b64 = json_string_value(json_object_get(jws, "payload"));
	if (!payload_b64 || !jws_signature(jws, i, &protected_b64, &sig_b64))
		return TP_ERR_INPUT;
	err = jwk_to_point(jwk, &c, pt, &pt_len);
	if (err != TP_OK)
		goto out;
	err = check_header(protected_b64, c);
	if (err != TP_OK)
		goto out;
	err = signature_der(sig_b64, c, &der, &der_len);
	if (err != TP_OK)
		goto out;
	err = verify_der(c, pt, pt_len, protected_b64, payload_b64, der, (size_t)der_len);
out:
	OPENSSL_free(der);
	return err;
}
