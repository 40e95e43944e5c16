/* Signing JWSs in tests with plain OpenSSL, to build cases jose's CLI will
 * not make (wrong alg header, chosen payloads). */
#ifndef TP_TEST_SIGN_HELPER_H
#define TP_TEST_SIGN_HELPER_H

#include <openssl/ecdsa.h>

#include "jose/b64url.h"
#include "jose/jwk.h"
#include "ossl_helpers.h"
#include "test.h"

/* A flattened JWS signed here: header text, payload text, key, digest. */
static inline json_t *sign_jws(const char *hdr, const char *payload, const char *keyfile,
			const char *digest)
{
	json_t *k = fixture_json(keyfile), *jws;
	const tp_curve *c = NULL;
	uint8_t pt[TP_EC_MAX_POINT], d[TP_EC_MAX_FIELD], rs[2 * TP_EC_MAX_FIELD];
	uint8_t der[256];
	const uint8_t *q = der;
	size_t len = 0, der_len = sizeof(der);
	char *ph = b64url_encode_alloc((const uint8_t *)hdr, strlen(hdr));
	char *pp = b64url_encode_alloc((const uint8_t *)payload, strlen(payload));
	char *input = NULL, *sig;
	const char *ds = json_string_value(json_object_get(k, "d"));
	EVP_PKEY *key;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es;

	jwk_to_point(k, &c, pt, &len);
	b64url_decode_exact(ds, strlen(ds), d, c->field_len);
	key = ref_key_from_priv(c, d, pt);
	if (asprintf(&input, "%s.%s", ph, pp) < 0)
		exit(1);
	EVP_DigestSignInit_ex(md, NULL, digest, NULL, NULL, key, NULL);
	EVP_DigestSign(md, der, &der_len, (const uint8_t *)input, strlen(input));
	es = d2i_ECDSA_SIG(NULL, &q, (long)der_len);
	BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, (int)c->field_len);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + c->field_len, (int)c->field_len);
	sig = b64url_encode_alloc(rs, 2 * c->field_len);
	jws = json_pack("{s:s,s:s,s:s}", "payload", pp, "protected", ph, "signature", sig);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	free(input);
	free(sig);
	free(ph);
	free(pp);
	json_decref(k);
	return jws;
}

#endif
