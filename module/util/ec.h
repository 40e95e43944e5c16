/* Elliptic-curve helpers over OpenSSL, always in the module's private
 * OSSL_LIB_CTX (a host process may route its default provider back into
 * PKCS#11).  Points travel as uncompressed octets 04||X||Y with fixed-width
 * coordinates; scalars as fixed-width big-endian. */
#ifndef TP_UTIL_EC_H
#define TP_UTIL_EC_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "util/err.h"

#define TP_EC_MAX_FIELD 66
#define TP_EC_MAX_POINT (1 + 2 * TP_EC_MAX_FIELD)

typedef struct tp_curve {
	int nid;                     /* NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1 */
	const char *jwk_name;        /* "P-256", "P-384", "P-521" */
	const char *sn;              /* OpenSSL group name */
	size_t field_len;            /* 32, 48, 66 */
	const uint8_t *params_der;   /* DER OID: CKA_EC_PARAMS */
	size_t params_der_len;
} tp_curve;

/* The module's private library context (default provider only).  Created by
 * ossl_ctx_init (C_Initialize) or on first use.  ossl_ctx_free (C_Finalize)
 * keeps it: it lives until the process ends, because C_Finalize may race a
 * derive still running in another thread, and OpenSSL 3.0 crashes at thread
 * exit when a context a thread used is gone (see util/ec.c). */
tp_err ossl_ctx_init(void);
void ossl_ctx_free(void);
OSSL_LIB_CTX *ossl_ctx(void);

const tp_curve *ec_curve_by_jwk_name(const char *crv);
const tp_curve *ec_curve_by_params(const uint8_t *der, size_t len);
size_t ec_point_len(const tp_curve *c);       /* 1 + 2 * field_len */

/* TP_OK iff pt is an uncompressed point of exactly ec_point_len bytes, on
 * the curve, not the point at infinity. */
tp_err ec_point_check(const tp_curve *c, const uint8_t *pt, size_t len);

/* out = scalar * pt (pt NULL: the generator).  scalar is big-endian of any
 * length.  out has ec_point_len bytes.  TP_ERR_INPUT if the result is the
 * point at infinity or an input is invalid. */
tp_err ec_mul(const tp_curve *c, const uint8_t *scalar, size_t scalar_len,
	      const uint8_t *pt, uint8_t *out);
/* out = a + b, or a - b when subtract is nonzero. */
tp_err ec_add(const tp_curve *c, const uint8_t *a, const uint8_t *b,
	      int subtract, uint8_t *out);
/* A uniformly random scalar in [1, n-1], field_len bytes. */
tp_err ec_random_scalar(const tp_curve *c, uint8_t *out);

/* DER encodings of a public point, for CKA_EC_POINT (OCTET STRING) and
 * CKA_PUBLIC_KEY_INFO (SubjectPublicKeyInfo).  Malloc'd into *der. */
tp_err ec_point_octet_string(const tp_curve *c, const uint8_t *pt, uint8_t **der, size_t *len);
tp_err ec_point_spki(const tp_curve *c, const uint8_t *pt, uint8_t **der, size_t *len);
/* If in is a DER OCTET STRING wrapping exactly ec_point_len bytes, point
 * *pt and *pt_len into it; otherwise leave in as is.  No allocation. */
void ec_point_unwrap_der(const tp_curve *c, const uint8_t *in, size_t len,
			 const uint8_t **pt, size_t *pt_len);

#endif
