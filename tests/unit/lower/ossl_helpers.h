/* OpenSSL as the independent reference for the EC tests: keys generated
 * and ECDH computed by plain OpenSSL calls, not by util/ec.c. */
#ifndef TP_TEST_OSSL_HELPERS_H
#define TP_TEST_OSSL_HELPERS_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "util/ec.h"

static inline EVP_PKEY *ref_keygen(const tp_curve *c)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", c->sn);
}

static inline void ref_pub(EVP_PKEY *k, uint8_t *pt, size_t *len)
{
	EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, TP_EC_MAX_POINT, len);
}

static inline void ref_priv(EVP_PKEY *k, const tp_curve *c, uint8_t *d)
{
	BIGNUM *bn = NULL;

	EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &bn);
	BN_bn2binpad(bn, d, (int)c->field_len);
	BN_clear_free(bn);
}

/* A key pair from a private scalar (e.g. a tangd key file's "d"). */
static inline EVP_PKEY *ref_key_from_priv(const tp_curve *c, const uint8_t *d, const uint8_t *pub)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	BIGNUM *bn = BN_bin2bn(d, (int)c->field_len, NULL);
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;

	OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, c->sn, 0);
	OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn);
	OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, ec_point_len(c));
	params = OSSL_PARAM_BLD_to_param(b);
	EVP_PKEY_fromdata_init(ctx);
	EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(bn);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static inline EVP_PKEY *ref_key_from_pub(const tp_curve *c, const uint8_t *pub)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)c->sn, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, ec_point_len(c));
	params[2] = OSSL_PARAM_construct_end();
	EVP_PKEY_fromdata_init(ctx);
	EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

/* x(priv · peer), field_len bytes: OpenSSL's ECDH. */
static inline int ref_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z, size_t *z_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
	int ok = ctx && EVP_PKEY_derive_init(ctx) == 1 &&
		 EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
		 EVP_PKEY_derive(ctx, z, z_len) == 1;

	EVP_PKEY_CTX_free(ctx);
	return ok;
}

#endif
