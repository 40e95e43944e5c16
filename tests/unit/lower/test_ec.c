/* util/ec.c against plain OpenSSL: scalar multiplication, addition, point
 * validation, DER encodings. */
#include "test.h"
#include "ossl_helpers.h"

#include <openssl/ec.h>
#include <openssl/x509.h>

static const uint8_t oid_p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };

static void lookups(void)
{
	const tp_curve *c = ec_curve_by_jwk_name("P-521");

	CHECK(c && c->field_len == 66 && ec_point_len(c) == 133);
	CHECK(ec_curve_by_params(oid_p521, sizeof(oid_p521)) == c);
	CHECK(ec_curve_by_params(oid_p521, sizeof(oid_p521) - 1) == NULL);
	CHECK(ec_curve_by_jwk_name("P-256")->field_len == 32);
	CHECK(ec_curve_by_jwk_name("P-384")->field_len == 48);
	CHECK(ec_curve_by_jwk_name("p-256") == NULL);
	CHECK(ec_curve_by_jwk_name("secp256k1") == NULL);
	CHECK(ec_curve_by_jwk_name(NULL) == NULL);
	for (const char *const *n = (const char *const[]){ "P-256", "P-384", "P-521", NULL }; *n; n++) {
		const tp_curve *k = ec_curve_by_jwk_name(*n);
		CHECK(ec_curve_by_params(k->params_der, k->params_der_len) == k);
	}
}

static void arithmetic(const tp_curve *c)
{
	uint8_t da[TP_EC_MAX_FIELD], db[TP_EC_MAX_FIELD], pa[TP_EC_MAX_POINT], pb[TP_EC_MAX_POINT];
	uint8_t out[TP_EC_MAX_POINT], sum[TP_EC_MAX_POINT], z[TP_EC_MAX_FIELD];
	size_t la = 0, lb = 0, zl = sizeof(z);
	EVP_PKEY *ka = ref_keygen(c), *kb = ref_keygen(c);

	ref_pub(ka, pa, &la);
	ref_pub(kb, pb, &lb);
	ref_priv(ka, c, da);
	ref_priv(kb, c, db);
	CHECK(la == ec_point_len(c) && lb == la);
	CHECK_ERR(ec_point_check(c, pa, la), TP_OK);

	/* d·G = the public key */
	CHECK_ERR(ec_mul(c, da, c->field_len, NULL, out), TP_OK);
	CHECK(memcmp(out, pa, la) == 0);
	/* x(a·B) = OpenSSL ECDH */
	CHECK_ERR(ec_mul(c, da, c->field_len, pb, out), TP_OK);
	CHECK(ref_ecdh(ka, kb, z, &zl) && zl == c->field_len);
	CHECK(memcmp(out + 1, z, c->field_len) == 0);
	/* leading zero bytes of a scalar do not matter */
	{
		uint8_t longer[TP_EC_MAX_FIELD + 3] = { 0 };
		memcpy(longer + 3, da, c->field_len);
		CHECK_ERR(ec_mul(c, longer, c->field_len + 3, NULL, out), TP_OK);
		CHECK(memcmp(out, pa, la) == 0);
	}
	/* A + B - B = A, A - A = infinity */
	CHECK_ERR(ec_add(c, pa, pb, 0, sum), TP_OK);
	CHECK_ERR(ec_point_check(c, sum, la), TP_OK);
	CHECK_ERR(ec_add(c, sum, pb, 1, out), TP_OK);
	CHECK(memcmp(out, pa, la) == 0);
	CHECK_ERR(ec_add(c, pa, pa, 1, out), TP_ERR_INPUT);
	/* A + A = 2·A */
	{
		uint8_t two = 2;
		uint8_t dbl[TP_EC_MAX_POINT];
		CHECK_ERR(ec_add(c, pa, pa, 0, out), TP_OK);
		CHECK_ERR(ec_mul(c, &two, 1, pa, dbl), TP_OK);
		CHECK(memcmp(out, dbl, la) == 0);
	}
	/* zero scalar, infinity */
	{
		uint8_t zero[TP_EC_MAX_FIELD] = { 0 };
		CHECK_ERR(ec_mul(c, zero, c->field_len, NULL, out), TP_ERR_INPUT);
		CHECK_ERR(ec_mul(c, zero, 0, NULL, out), TP_ERR_INPUT);
	}
	/* random scalars are in range and differ */
	{
		uint8_t r1[TP_EC_MAX_FIELD], r2[TP_EC_MAX_FIELD];
		CHECK_ERR(ec_random_scalar(c, r1), TP_OK);
		CHECK_ERR(ec_random_scalar(c, r2), TP_OK);
		CHECK(memcmp(r1, r2, c->field_len) != 0);
		CHECK_ERR(ec_mul(c, r1, c->field_len, NULL, out), TP_OK);
		if (c->field_len == 66)
			CHECK(r1[0] <= 1 && r2[0] <= 1);
	}
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
}

static void validation(const tp_curve *c)
{
	uint8_t p[TP_EC_MAX_POINT], bad[TP_EC_MAX_POINT + 1], out[TP_EC_MAX_POINT];
	uint8_t one = 1;
	size_t l = 0;
	EVP_PKEY *k = ref_keygen(c);

	ref_pub(k, p, &l);
	memcpy(bad, p, l);
	bad[l - 1] ^= 1;                      /* off the curve */
	CHECK_ERR(ec_point_check(c, bad, l), TP_ERR_INPUT);
	CHECK_ERR(ec_mul(c, &one, 1, bad, out), TP_ERR_INPUT);
	CHECK_ERR(ec_add(c, p, bad, 0, out), TP_ERR_INPUT);
	CHECK_ERR(ec_point_check(c, p, l - 1), TP_ERR_INPUT);
	memcpy(bad, p, l);
	bad[l] = 0;
	CHECK_ERR(ec_point_check(c, bad, l + 1), TP_ERR_INPUT);
	memcpy(bad, p, l);
	bad[0] = 0x06 | (p[l - 1] & 1);       /* hybrid form: same length */
	CHECK_ERR(ec_point_check(c, bad, l), TP_ERR_INPUT);
	memset(bad, 0, l);
	bad[0] = 0x04;
	CHECK_ERR(ec_point_check(c, bad, l), TP_ERR_INPUT);
	CHECK_ERR(ec_point_check(c, NULL, l), TP_ERR_INPUT);
	/* a point of another curve */
	{
		const tp_curve *o = c->field_len == 32 ? ec_curve_by_jwk_name("P-384")
						       : ec_curve_by_jwk_name("P-256");
		uint8_t q[TP_EC_MAX_POINT];
		size_t ql = 0;
		EVP_PKEY *ko = ref_keygen(o);
		ref_pub(ko, q, &ql);
		CHECK_ERR(ec_point_check(c, q, ql), TP_ERR_INPUT);
		EVP_PKEY_free(ko);
	}
	/* P-521 leaves room in 66 bytes for x + p, the same x mod p: tangd
	 * would accept it, we do not */
	if (c->field_len == 66) {
		BIGNUM *x = BN_bin2bn(p + 1, 66, NULL), *pr = BN_new();
		EC_GROUP *g = EC_GROUP_new_by_curve_name(c->nid);
		EC_GROUP_get_curve(g, pr, NULL, NULL, NULL);
		BN_add(x, x, pr);
		memcpy(bad, p, l);
		CHECK(BN_bn2binpad(x, bad + 1, 66) == 66);
		CHECK_ERR(ec_point_check(c, bad, l), TP_ERR_INPUT);
		BN_free(x);
		BN_free(pr);
		EC_GROUP_free(g);
	}
	EVP_PKEY_free(k);
}

static void encodings(const tp_curve *c)
{
	uint8_t p[TP_EC_MAX_POINT];
	uint8_t *der = NULL, *ref = NULL;
	const uint8_t *in;
	size_t l = 0, dl = 0, il = 0;
	int rl;
	EVP_PKEY *k = ref_keygen(c);

	ref_pub(k, p, &l);
	/* OCTET STRING */
	CHECK_ERR(ec_point_octet_string(c, p, &der, &dl), TP_OK);
	if (c->field_len == 66)
		CHECK(dl == 136 && der[0] == 0x04 && der[1] == 0x81 && der[2] == 0x85);
	else
		CHECK(dl == l + 2 && der[0] == 0x04 && der[1] == l);
	CHECK(memcmp(der + dl - l, p, l) == 0);
	ec_point_unwrap_der(c, der, dl, &in, &il);
	CHECK(in == der + dl - l && il == l);
	ec_point_unwrap_der(c, p, l, &in, &il);
	CHECK(in == p && il == l);
	ec_point_unwrap_der(c, der, dl - 1, &in, &il);
	CHECK(in == der && il == dl - 1);
	free(der);
	/* SPKI = OpenSSL's i2d_PUBKEY */
	CHECK_ERR(ec_point_spki(c, p, &der, &dl), TP_OK);
	rl = i2d_PUBKEY(k, &ref);
	CHECK(rl > 0 && (size_t)rl == dl && memcmp(der, ref, dl) == 0);
	{
		const uint8_t *q = der;
		EVP_PKEY *back = d2i_PUBKEY(NULL, &q, (long)dl);
		CHECK(back && EVP_PKEY_eq(back, k) == 1);
		EVP_PKEY_free(back);
	}
	OPENSSL_free(ref);
	free(der);
	p[l - 1] ^= 1;
	CHECK_ERR(ec_point_spki(c, p, &der, &dl), TP_ERR_INPUT);
	CHECK(der == NULL);
	CHECK_ERR(ec_point_octet_string(c, p, &der, &dl), TP_ERR_INPUT);
	EVP_PKEY_free(k);
}

int main(void)
{
	/* lazily created on first use, and again after a free */
	lookups();
	for (const char *const *n = (const char *const[]){ "P-256", "P-384", "P-521", NULL }; *n; n++) {
		const tp_curve *c = ec_curve_by_jwk_name(*n);
		arithmetic(c);
		validation(c);
		encodings(c);
	}
	ossl_ctx_free();
	CHECK(ossl_ctx() != NULL);
	ossl_ctx_free();
	CHECK_ERR(ossl_ctx_init(), TP_OK);
	CHECK_ERR(ossl_ctx_init(), TP_OK);
	arithmetic(ec_curve_by_jwk_name("P-521"));
	ossl_ctx_free();
	return test_exit("ec");
}
