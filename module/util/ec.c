#include "util/ec.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/provider.h>

#include "util/log.h"

/* Named-curve OIDs as DER (the CKA_EC_PARAMS value). */
static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t oid_p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };
/* id-ecPublicKey, the algorithm of an EC SubjectPublicKeyInfo. */
static const uint8_t oid_ec_public_key[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };

#define N_CURVES 3

static const tp_curve curves[N_CURVES] = {
	{ NID_X9_62_prime256v1, "P-256", "prime256v1", 32, oid_p256, sizeof(oid_p256) },
	{ NID_secp384r1, "P-384", "secp384r1", 48, oid_p384, sizeof(oid_p384) },
	{ NID_secp521r1, "P-521", "secp521r1", 66, oid_p521, sizeof(oid_p521) },
};

/* The context and the three groups are created once and then live as long
 * as the process (the module is linked -z nodelete).  They are never freed,
 * on purpose: C_Finalize may run while another thread is still inside a
 * derive (the core allows that and must not crash), and OpenSSL 3.0 keeps
 * per-thread state (DRBGs) for a library context that crashes at thread
 * exit once the context is gone.  Only creation takes the mutex; after
 * that the pointers are only read. */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_LIB_CTX *lib_ctx;
static EC_GROUP *groups[N_CURVES];

static tp_err create_locked(void)
{
	OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
	EC_GROUP *g[N_CURVES] = { NULL };
	tp_err err = TP_ERR_GENERAL;

	/* The provider stays loaded for the context's (the process's) life. */
	if (!ctx || !OSSL_PROVIDER_load(ctx, "default"))
		goto out;
	for (size_t i = 0; i < N_CURVES; i++) {
		g[i] = EC_GROUP_new_by_curve_name_ex(ctx, NULL, curves[i].nid);
		if (!g[i])
			goto out;
	}
	memcpy(groups, g, sizeof(groups));
	/* Published last, with release order: a reader that sees lib_ctx
	 * also sees the groups. */
	__atomic_store_n(&lib_ctx, ctx, __ATOMIC_RELEASE);
	ctx = NULL;
	err = TP_OK;
out:
	if (err != TP_OK) {
		for (size_t i = 0; i < N_CURVES; i++)
			EC_GROUP_free(g[i]);
		OSSL_LIB_CTX_free(ctx);
		log_error("cannot set up the OpenSSL library context");
	}
	return err;
}

tp_err ossl_ctx_init(void)
{
	tp_err err = TP_OK;

	pthread_mutex_lock(&ctx_lock);
	if (!lib_ctx)
		err = create_locked();
	pthread_mutex_unlock(&ctx_lock);
	return err;
}

void ossl_ctx_free(void)
{
	/* Deliberately keeps the context: see above. */
}

OSSL_LIB_CTX *ossl_ctx(void)
{
	OSSL_LIB_CTX *ctx = __atomic_load_n(&lib_ctx, __ATOMIC_ACQUIRE);

	if (ctx)
		return ctx;
	pthread_mutex_lock(&ctx_lock);
	if (!lib_ctx)
		create_locked();
	ctx = lib_ctx;
	pthread_mutex_unlock(&ctx_lock);
	return ctx;
}

/* The cached group of a curve; creates the context on first use so that
 * callers (and unit tests) need not care about the order of init. */
static const EC_GROUP *group_of(const tp_curve *c)
{
	if (!c || !ossl_ctx())
		return NULL;
	for (size_t i = 0; i < N_CURVES; i++) {
		if (c->nid == curves[i].nid)
			return groups[i];
	}
	return NULL;
}

const tp_curve *ec_curve_by_jwk_name(const char *crv)
{
	if (!crv)
		return NULL;
	for (size_t i = 0; i < N_CURVES; i++) {
		if (strcmp(crv, curves[i].jwk_name) == 0)
			return &curves[i];
	}
	return NULL;
}

const tp_curve *ec_curve_by_params(const uint8_t *der, size_t len)
{
	if (!der)
		return NULL;
	for (size_t i = 0; i < N_CURVES; i++) {
		if (len == curves[i].params_der_len && memcmp(der, curves[i].params_der, len) == 0)
			return &curves[i];
	}
	return NULL;
}

size_t ec_point_len(const tp_curve *c)
{
	return 1 + 2 * c->field_len;
}

/* Parse an uncompressed point; NULL unless it is exactly ec_point_len bytes,
 * 0x04-prefixed, on the curve and not infinity.  (oct2point alone would
 * also take hybrid encodings of the same length.) */
static EC_POINT *point_parse(const EC_GROUP *g, const tp_curve *c,
			     const uint8_t *pt, size_t len, BN_CTX *bn)
{
	EC_POINT *p = NULL;

	if (!pt || len != ec_point_len(c) || pt[0] != 0x04)
		return NULL;
	p = EC_POINT_new(g);
	if (!p)
		return NULL;
	if (EC_POINT_oct2point(g, p, pt, len, bn) != 1 ||
	    EC_POINT_is_at_infinity(g, p) ||
	    EC_POINT_is_on_curve(g, p, bn) != 1) {
		EC_POINT_free(p);
		return NULL;
	}
	return p;
}

static tp_err point_write(const EC_GROUP *g, const tp_curve *c, const EC_POINT *p,
			  uint8_t *out, BN_CTX *bn)
{
	if (EC_POINT_is_at_infinity(g, p))
		return TP_ERR_INPUT;
	if (EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, out,
			       ec_point_len(c), bn) != ec_point_len(c))
		return TP_ERR_GENERAL;
	return TP_OK;
}

tp_err ec_point_check(const tp_curve *c, const uint8_t *pt, size_t len)
{
	const EC_GROUP *g = group_of(c);
	BN_CTX *bn = NULL;
	EC_POINT *p = NULL;
	tp_err err = TP_ERR_GENERAL;

	if (!g)
		goto out;
	bn = BN_CTX_new_ex(ossl_ctx());
	if (!bn)
		goto out;
	p = point_parse(g, c, pt, len, bn);
	err = p ? TP_OK : TP_ERR_INPUT;
out:
	EC_POINT_free(p);
	BN_CTX_free(bn);
	return err;
}

tp_err ec_mul(const tp_curve *c, const uint8_t *scalar, size_t scalar_len,
	      const uint8_t *pt, uint8_t *out)
{
	const EC_GROUP *g = group_of(c);
	BN_CTX *bn = NULL;
	BIGNUM *k = NULL;
	EC_POINT *p = NULL, *r = NULL;
	tp_err err = TP_ERR_GENERAL;

	if (!g)
		goto out;
	if (!scalar || scalar_len == 0 || scalar_len > 2 * TP_EC_MAX_FIELD) {
		err = TP_ERR_INPUT;
		goto out;
	}
	bn = BN_CTX_new_ex(ossl_ctx());
	k = BN_secure_new();
	r = EC_POINT_new(g);
	if (!bn || !k || !r)
		goto out;
	BN_set_flags(k, BN_FLG_CONSTTIME);
	if (!BN_bin2bn(scalar, (int)scalar_len, k))
		goto out;
	/* Reduce mod n: a scalar of n or more is the same point, and
	 * OpenSSL's constant-time ladder wants k < n. */
	if (BN_cmp(k, EC_GROUP_get0_order(g)) >= 0 &&
	    !BN_nnmod(k, k, EC_GROUP_get0_order(g), bn))
		goto out;
	if (BN_is_zero(k)) {
		err = TP_ERR_INPUT;
		goto out;
	}
	if (pt) {
		p = point_parse(g, c, pt, ec_point_len(c), bn);
		if (!p) {
			err = TP_ERR_INPUT;
			goto out;
		}
		if (EC_POINT_mul(g, r, NULL, p, k, bn) != 1)
			goto out;
	} else if (EC_POINT_mul(g, r, k, NULL, NULL, bn) != 1) {
		goto out;
	}
	err = point_write(g, c, r, out, bn);
out:
	BN_clear_free(k);
	EC_POINT_clear_free(r);
	EC_POINT_free(p);
	BN_CTX_free(bn);
	return err;
}

tp_err ec_add(const tp_curve *c, const uint8_t *a, const uint8_t *b,
	      int subtract, uint8_t *out)
{
	const EC_GROUP *g = group_of(c);
	BN_CTX *bn = NULL;
	EC_POINT *pa = NULL, *pb = NULL, *r = NULL;
	tp_err err = TP_ERR_GENERAL;

	if (!g)
		goto out;
	bn = BN_CTX_new_ex(ossl_ctx());
	r = EC_POINT_new(g);
	if (!bn || !r)
		goto out;
	pa = point_parse(g, c, a, ec_point_len(c), bn);
	pb = point_parse(g, c, b, ec_point_len(c), bn);
	if (!pa || !pb) {
		err = TP_ERR_INPUT;
		goto out;
	}
	if (subtract && EC_POINT_invert(g, pb, bn) != 1)
		goto out;
	if (EC_POINT_add(g, r, pa, pb, bn) != 1)
		goto out;
	err = point_write(g, c, r, out, bn);
out:
	EC_POINT_clear_free(r);
	EC_POINT_clear_free(pa);
	EC_POINT_clear_free(pb);
	BN_CTX_free(bn);
	return err;
}

tp_err ec_random_scalar(const tp_curve *c, uint8_t *out)
{
	const EC_GROUP *g = group_of(c);
	BN_CTX *bn = NULL;
	BIGNUM *k = NULL;
	tp_err err = TP_ERR_GENERAL;

	if (!g)
		goto out;
	bn = BN_CTX_new_ex(ossl_ctx());
	k = BN_secure_new();
	if (!bn || !k)
		goto out;
	do {
		if (BN_priv_rand_range_ex(k, EC_GROUP_get0_order(g), 0, bn) != 1)
			goto out;
	} while (BN_is_zero(k));
	if (BN_bn2binpad(k, out, (int)c->field_len) != (int)c->field_len)
		goto out;
	err = TP_OK;
out:
	BN_clear_free(k);
	BN_CTX_free(bn);
	return err;
}

/* DER tag + definite length; returns the header size (at most 4 bytes,
 * plenty for our largest structure, a P-521 SPKI of 158 bytes). */
static size_t der_header(uint8_t *out, uint8_t tag, size_t len)
{
	out[0] = tag;
	if (len < 0x80) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len < 0x100) {
		out[1] = 0x81;
		out[2] = (uint8_t)len;
		return 3;
	}
	out[1] = 0x82;
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	return 4;
}

static size_t der_header_len(size_t len)
{
	return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

tp_err ec_point_octet_string(const tp_curve *c, const uint8_t *pt, uint8_t **der, size_t *len)
{
	size_t plen = ec_point_len(c);
	size_t total = der_header_len(plen) + plen;
	uint8_t *buf;
	size_t off;

	*der = NULL;
	*len = 0;
	if (ec_point_check(c, pt, plen) != TP_OK)
		return TP_ERR_INPUT;
	buf = malloc(total);
	if (!buf)
		return TP_ERR_NOMEM;
	off = der_header(buf, 0x04, plen);
	memcpy(buf + off, pt, plen);
	*der = buf;
	*len = total;
	return TP_OK;
}

/* SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve }, BIT STRING { 0, point } }
 * (RFC 5480), built by hand: it is fixed and tiny, and needs no EVP_PKEY. */
tp_err ec_point_spki(const tp_curve *c, const uint8_t *pt, uint8_t **der, size_t *len)
{
	size_t plen = ec_point_len(c);
	size_t alg_len = sizeof(oid_ec_public_key) + c->params_der_len;
	size_t bits_len = 1 + plen;
	size_t body = der_header_len(alg_len) + alg_len + der_header_len(bits_len) + bits_len;
	size_t total = der_header_len(body) + body;
	uint8_t *buf;
	size_t off;

	*der = NULL;
	*len = 0;
	if (ec_point_check(c, pt, plen) != TP_OK)
		return TP_ERR_INPUT;
	buf = malloc(total);
	if (!buf)
		return TP_ERR_NOMEM;
	off = der_header(buf, 0x30, body);
	off += der_header(buf + off, 0x30, alg_len);
	memcpy(buf + off, oid_ec_public_key, sizeof(oid_ec_public_key));
	off += sizeof(oid_ec_public_key);
	memcpy(buf + off, c->params_der, c->params_der_len);
	off += c->params_der_len;
	off += der_header(buf + off, 0x03, bits_len);
	buf[off++] = 0x00;   /* no unused bits */
	memcpy(buf + off, pt, plen);
	*der = buf;
	*len = total;
	return TP_OK;
}

void ec_point_unwrap_der(const tp_curve *c, const uint8_t *in, size_t len,
			 const uint8_t **pt, size_t *pt_len)
{
	size_t plen = ec_point_len(c);
	uint8_t hdr[4];
	size_t hlen = der_header(hdr, 0x04, plen);

	*pt = in;
	*pt_len = len;
	/* A raw point is plen bytes and a wrapped one plen + hlen, so the
	 * length alone tells them apart even though both start with 0x04. */
	if (in && len == hlen + plen && memcmp(in, hdr, hlen) == 0) {
		*pt = in + hlen;
		*pt_len = plen;
	}
}
