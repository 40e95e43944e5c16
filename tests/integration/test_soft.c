/* tp-soft: the soft-key mechanisms end to end, through the PKCS#11 API
 * only, next to a real tangd (tests/fixtures/with-tangd).
 *
 * Secret keys of known value are made the only way the API offers today
 * without a store: C_Encrypt(CKM_TANG_JWE) of the key bytes with the Tang
 * public key (offline), then C_UnwrapKey(CKM_TANG_JWE) of that JWE with the
 * Tang private key (one recovery exchange with tangd) and the template of
 * the key wanted.  Every output is compared with OpenSSL computing the same
 * thing here from the same key bytes; every CK_RV is exact.
 *
 * Covered: the mechanism list and infos; AES ECB/CBC/CBC_PAD/CTR/GCM (both
 * CK_GCM_PARAMS layouts)/KEY_WRAP/KEY_WRAP_PAD encryption and decryption,
 * single- and multi-part, the two-call convention; HMAC (AES, generic and
 * HMAC-typed keys), CMAC, AES-MAC sign/verify; digests and C_DigestKey;
 * C_WrapKey/C_UnwrapKey with the AES mechanisms (Barbican's CBC_PAD
 * pattern); key usage, type, size and extractability rules; operation
 * state rules; C_SeedRandom; use of a key from other sessions and threads. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

static CK_SESSION_HANDLE S;
static CK_SLOT_ID SLOT;
static CK_OBJECT_HANDLE tang_pub, tang_priv;
static CK_BBOOL T = CK_TRUE, F = CK_FALSE;
static CK_OBJECT_CLASS SECRET = CKO_SECRET_KEY;

/* ---- making keys of known value ---------------------------------------- */

#define MAX_TMPL 16

/* A session secret key of type kt and value v, with extra template
 * attributes (after CKA_CLASS and CKA_KEY_TYPE). */
static CK_OBJECT_HANDLE make_key(CK_KEY_TYPE kt, const uint8_t *v, size_t n,
				 const CK_ATTRIBUTE *extra, size_t n_extra)
{
	CK_MECHANISM jwe = { CKM_TANG_JWE, NULL, 0 };
	CK_ATTRIBUTE tmpl[MAX_TMPL] = {
		{ CKA_CLASS, &SECRET, sizeof(SECRET) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
	};
	CK_ULONG jl = 0;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	uint8_t *buf;

	REQUIRE(n_extra + 2 <= MAX_TMPL);
	if (n_extra)
		memcpy(tmpl + 2, extra, n_extra * sizeof(*extra));
	REQUIRE_RV(P->C_EncryptInit(S, &jwe, tang_pub), CKR_OK);
	REQUIRE_RV(P->C_Encrypt(S, (CK_BYTE_PTR)v, n, NULL, &jl), CKR_OK);
	buf = malloc(jl);
	REQUIRE(buf);
	REQUIRE_RV(P->C_Encrypt(S, (CK_BYTE_PTR)v, n, buf, &jl), CKR_OK);
	REQUIRE_RV(P->C_UnwrapKey(S, &jwe, tang_priv, buf, jl, tmpl, 2 + n_extra, &h), CKR_OK);
	free(buf);
	return h;
}

static CK_OBJECT_HANDLE make_simple(CK_KEY_TYPE kt, const uint8_t *v, size_t n)
{
	return make_key(kt, v, n, NULL, 0);
}

/* ---- OpenSSL references --------------------------------------------------- */

static size_t ref_cipher(const char *mode, const uint8_t *key, size_t kl, const uint8_t *iv,
			 bool enc, bool pad, const uint8_t *in, size_t n, uint8_t *out)
{
	char name[40];
	EVP_CIPHER *c;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0;

	snprintf(name, sizeof(name), "AES-%zu-%s", kl * 8, mode);
	c = EVP_CIPHER_fetch(NULL, name, NULL);
	REQUIRE(c && ctx);
	REQUIRE(EVP_CipherInit_ex2(ctx, c, key, iv, enc, NULL) == 1);
	EVP_CIPHER_CTX_set_padding(ctx, pad);
	REQUIRE(EVP_CipherUpdate(ctx, out, &l1, in, (int)n) == 1);
	REQUIRE(EVP_CipherFinal_ex(ctx, out + l1, &l2) == 1);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return (size_t)(l1 + l2);
}

static size_t ref_gcm(const uint8_t *key, size_t kl, const uint8_t *iv, size_t ivl,
		      const uint8_t *aad, size_t al, const uint8_t *in, size_t n, size_t tl,
		      uint8_t *out)
{
	char name[32];
	EVP_CIPHER *c;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int l = 0;

	snprintf(name, sizeof(name), "AES-%zu-GCM", kl * 8);
	c = EVP_CIPHER_fetch(NULL, name, NULL);
	REQUIRE(EVP_EncryptInit_ex2(ctx, c, NULL, NULL, NULL) == 1);
	REQUIRE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)ivl, NULL) == 1);
	REQUIRE(EVP_EncryptInit_ex2(ctx, NULL, key, iv, NULL) == 1);
	if (al)
		REQUIRE(EVP_EncryptUpdate(ctx, NULL, &l, aad, (int)al) == 1);
	REQUIRE(EVP_EncryptUpdate(ctx, out, &l, in, (int)n) == 1);
	REQUIRE(EVP_EncryptFinal_ex(ctx, out + n, &l) == 1);
	REQUIRE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)tl, out + n) == 1);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return n + tl;
}

static size_t ref_mac(const char *alg, const char *sub_name, const char *sub,
		      const uint8_t *key, size_t kl, const uint8_t *in, size_t n, uint8_t *out)
{
	size_t ol = 0;

	REQUIRE(EVP_Q_mac(NULL, alg, NULL, sub, NULL, key, kl, in, n, out, 64, &ol) != NULL);
	(void)sub_name;
	return ol;
}

/* ---- PKCS#11 helpers ------------------------------------------------------ */

/* Single-part C_Encrypt/C_Decrypt: length query, a one-byte-short buffer
 * (CKR_BUFFER_TOO_SMALL, the operation stays), then the exact buffer. */
static CK_RV crypt1(bool enc, CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *in,
		    size_t n, uint8_t *out, size_t *out_len)
{
	CK_RV rv = enc ? P->C_EncryptInit(S, m, k) : P->C_DecryptInit(S, m, k);
	CK_ULONG l = 0, small;
	CK_RV (*step)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) =
		enc ? P->C_Encrypt : P->C_Decrypt;

	*out_len = 0;
	if (rv != CKR_OK)
		return rv;
	rv = step(S, (CK_BYTE_PTR)in, n, NULL, &l);
	if (rv != CKR_OK)
		return rv;
	if (l > 0) {
		small = l - 1;
		CHECK_RV(step(S, (CK_BYTE_PTR)in, n, out, &small), CKR_BUFFER_TOO_SMALL);
		CHECK(small == l);
	}
	rv = step(S, (CK_BYTE_PTR)in, n, out, &l);
	if (rv == CKR_OK)
		*out_len = l;
	/* The operation is over. */
	CHECK_RV(step(S, (CK_BYTE_PTR)in, n, out, &l), CKR_OPERATION_NOT_INITIALIZED);
	return rv;
}

/* Multi-part with chunks of `chunk` bytes; every Update and the Final
 * measured first (NULL buffer). */
static CK_RV cryptm(bool enc, CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *in,
		    size_t n, size_t chunk, uint8_t *out, size_t *out_len)
{
	CK_RV rv = enc ? P->C_EncryptInit(S, m, k) : P->C_DecryptInit(S, m, k);
	CK_RV (*upd)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) =
		enc ? P->C_EncryptUpdate : P->C_DecryptUpdate;
	CK_RV (*fin)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) =
		enc ? P->C_EncryptFinal : P->C_DecryptFinal;
	size_t done = 0;
	CK_ULONG l;

	*out_len = 0;
	for (size_t off = 0; rv == CKR_OK && off < n; off += chunk) {
		size_t p = n - off < chunk ? n - off : chunk;

		l = 0;
		rv = upd(S, (CK_BYTE_PTR)in + off, p, NULL, &l);
		if (rv == CKR_OK) {
			CK_ULONG want = l;

			rv = upd(S, (CK_BYTE_PTR)in + off, p, out + done, &l);
			if (rv == CKR_OK)
				CHECK(l == want);
		}
		done += l;
	}
	if (rv != CKR_OK)
		return rv;
	l = 0;
	rv = fin(S, NULL, &l);
	if (rv == CKR_OK)
		rv = fin(S, out + done, &l);
	if (rv == CKR_OK)
		*out_len = done + l;
	return rv;
}

static CK_RV sign1(CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *in, size_t n,
		   uint8_t *sig, size_t *sl)
{
	CK_ULONG l = 0, small = 0;
	CK_RV rv = P->C_SignInit(S, m, k);

	*sl = 0;
	if (rv != CKR_OK)
		return rv;
	CHECK_RV(P->C_Sign(S, (CK_BYTE_PTR)in, n, NULL, &l), CKR_OK);
	CHECK_RV(P->C_Sign(S, (CK_BYTE_PTR)in, n, sig, &small), CKR_BUFFER_TOO_SMALL);
	CHECK(small == l);
	rv = P->C_Sign(S, (CK_BYTE_PTR)in, n, sig, &l);
	*sl = l;
	return rv;
}

static CK_RV signm(CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *in, size_t n,
		   size_t chunk, uint8_t *sig, size_t *sl)
{
	CK_ULONG l = 64;
	CK_RV rv = P->C_SignInit(S, m, k);

	for (size_t off = 0; rv == CKR_OK && off < n; off += chunk)
		rv = P->C_SignUpdate(S, (CK_BYTE_PTR)in + off, n - off < chunk ? n - off : chunk);
	if (rv == CKR_OK)
		rv = P->C_SignFinal(S, sig, &l);
	*sl = l;
	return rv;
}

static CK_RV verify1(CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *in, size_t n,
		     const uint8_t *sig, size_t sl)
{
	CK_RV rv = P->C_VerifyInit(S, m, k);

	if (rv != CKR_OK)
		return rv;
	rv = P->C_Verify(S, (CK_BYTE_PTR)in, n, (CK_BYTE_PTR)sig, sl);
	/* C_Verify always ends the operation. */
	CHECK_RV(P->C_Verify(S, (CK_BYTE_PTR)in, n, (CK_BYTE_PTR)sig, sl),
		 CKR_OPERATION_NOT_INITIALIZED);
	return rv;
}

static CK_RV verifym(CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *in, size_t n,
		     size_t chunk, const uint8_t *sig, size_t sl)
{
	CK_RV rv = P->C_VerifyInit(S, m, k);

	for (size_t off = 0; rv == CKR_OK && off < n; off += chunk)
		rv = P->C_VerifyUpdate(S, (CK_BYTE_PTR)in + off, n - off < chunk ? n - off : chunk);
	if (rv == CKR_OK) {
		rv = P->C_VerifyFinal(S, (CK_BYTE_PTR)sig, sl);
		CHECK_RV(P->C_VerifyFinal(S, (CK_BYTE_PTR)sig, sl), CKR_OPERATION_NOT_INITIALIZED);
	}
	return rv;
}

/* ---- the mechanism list ------------------------------------------------------ */

static void test_mechanism_list(CK_SLOT_ID slot)
{
	const CK_FLAGS ED = CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP;
	const CK_FLAGS SV = CKF_SIGN | CKF_VERIFY;
	static const struct {
		CK_MECHANISM_TYPE t;
		CK_ULONG min, max;
		CK_FLAGS flags;
	} want[] = {
		{ CKM_AES_ECB, 16, 32, 0 }, { CKM_AES_CBC, 16, 32, 0 },
		{ CKM_AES_CBC_PAD, 16, 32, 0 }, { CKM_AES_CTR, 16, 32, 0 },
		{ CKM_AES_GCM, 16, 32, 0 }, { CKM_AES_KEY_WRAP, 16, 32, 0 },
		{ CKM_AES_KEY_WRAP_PAD, 16, 32, 0 },
		{ CKM_AES_MAC, 16, 32, 1 }, { CKM_AES_MAC_GENERAL, 16, 32, 1 },
		{ CKM_AES_CMAC, 16, 32, 1 }, { CKM_AES_CMAC_GENERAL, 16, 32, 1 },
		{ CKM_SHA_1_HMAC, 1, 8192, 1 }, { CKM_SHA_1_HMAC_GENERAL, 1, 8192, 1 },
		{ CKM_SHA224_HMAC, 1, 8192, 1 }, { CKM_SHA224_HMAC_GENERAL, 1, 8192, 1 },
		{ CKM_SHA256_HMAC, 1, 8192, 1 }, { CKM_SHA256_HMAC_GENERAL, 1, 8192, 1 },
		{ CKM_SHA384_HMAC, 1, 8192, 1 }, { CKM_SHA384_HMAC_GENERAL, 1, 8192, 1 },
		{ CKM_SHA512_HMAC, 1, 8192, 1 }, { CKM_SHA512_HMAC_GENERAL, 1, 8192, 1 },
		{ CKM_SHA_1, 0, 0, 2 }, { CKM_SHA224, 0, 0, 2 }, { CKM_SHA256, 0, 0, 2 },
		{ CKM_SHA384, 0, 0, 2 }, { CKM_SHA512, 0, 0, 2 },
	};
	CK_MECHANISM_TYPE list[64];
	CK_ULONG n = 64;

	tp_case_begin("mechanism list and info");
	CHECK_RV(P->C_GetMechanismList(slot, list, &n), CKR_OK);
	/* the Tang mechanisms, these, and the store's key generation */
	CHECK(n >= 2 + sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CK_MECHANISM_INFO mi;
		CK_FLAGS f = want[i].flags == 0 ? ED : want[i].flags == 1 ? SV : CKF_DIGEST;
		bool listed = false;

		for (CK_ULONG j = 0; j < n; j++)
			listed |= list[j] == want[i].t;
		CHECKF(listed, "mechanism 0x%lx not listed", (unsigned long)want[i].t);
		CHECK_RV(P->C_GetMechanismInfo(slot, want[i].t, &mi), CKR_OK);
		CHECKF(mi.flags == (CKF_HW | f) && mi.ulMinKeySize == want[i].min &&
			       mi.ulMaxKeySize == want[i].max,
		       "mechanism 0x%lx: flags 0x%lx sizes %lu..%lu", (unsigned long)want[i].t,
		       (unsigned long)mi.flags, (unsigned long)mi.ulMinKeySize,
		       (unsigned long)mi.ulMaxKeySize);
	}
	tp_case_end();
}

/* ---- encryption ----------------------------------------------------------------- */

static void test_ciphers(void)
{
	static uint8_t in[3000], out[3100], ref[3100], back[3100], multi[3100];
	uint8_t k16[16], k24[24], k32[32], iv[16];
	CK_OBJECT_HANDLE h16, h24, h32;
	size_t ol, rl, bl, ml;

	tp_case_begin("AES modes against OpenSSL, single- and multi-part");
	RAND_bytes(k16, 16);
	RAND_bytes(k24, 24);
	RAND_bytes(k32, 32);
	RAND_bytes(iv, 16);
	RAND_bytes(in, sizeof(in));
	h16 = make_simple(CKK_AES, k16, 16);
	h24 = make_simple(CKK_AES, k24, 24);
	h32 = make_simple(CKK_AES, k32, 32);

	const struct {
		CK_OBJECT_HANDLE h;
		const uint8_t *k;
		size_t kl;
	} keys[3] = { { h16, k16, 16 }, { h24, k24, 24 }, { h32, k32, 32 } };
	const size_t sizes[] = { 0, 1, 15, 16, 17, 32, 100, 1024, 2999 };

	for (int ki = 0; ki < 3; ki++) {
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			size_t n = sizes[si], nb = n / 16 * 16;
			CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 }, cbc = { CKM_AES_CBC, iv, 16 };
			CK_MECHANISM pad = { CKM_AES_CBC_PAD, iv, 16 };
			CK_AES_CTR_PARAMS cp = { 128, { 0 } };
			CK_MECHANISM ctr = { CKM_AES_CTR, &cp, sizeof(cp) };
			const uint8_t *k = keys[ki].k;
			size_t kl = keys[ki].kl;
			CK_OBJECT_HANDLE h = keys[ki].h;

			memcpy(cp.cb, iv, 16);
			/* ECB, CBC: whole blocks (Barbican's CBC: exact buffers) */
			rl = ref_cipher("ECB", k, kl, NULL, true, false, in, nb, ref);
			CHECK_RV(crypt1(true, &ecb, h, in, nb, out, &ol), CKR_OK);
			CHECK_MEM(out, ol, ref, rl, "ECB");
			CHECK_RV(cryptm(false, &ecb, h, out, ol, 7, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, nb, "ECB back");
			rl = ref_cipher("CBC", k, kl, iv, true, false, in, nb, ref);
			CHECK_RV(crypt1(true, &cbc, h, in, nb, out, &ol), CKR_OK);
			CHECK_MEM(out, ol, ref, rl, "CBC");
			CHECK_RV(cryptm(true, &cbc, h, in, nb, 33, multi, &ml), CKR_OK);
			CHECK_MEM(multi, ml, out, ol, "CBC multi-part");
			CHECK_RV(crypt1(false, &cbc, h, out, ol, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, nb, "CBC back");
			/* CBC_PAD: any length */
			rl = ref_cipher("CBC", k, kl, iv, true, true, in, n, ref);
			CHECK_RV(crypt1(true, &pad, h, in, n, out, &ol), CKR_OK);
			CHECK_MEM(out, ol, ref, rl, "CBC_PAD");
			CHECK_RV(cryptm(true, &pad, h, in, n, 5, multi, &ml), CKR_OK);
			CHECK_MEM(multi, ml, out, ol, "CBC_PAD multi-part");
			CHECK_RV(crypt1(false, &pad, h, out, ol, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, n, "CBC_PAD back");
			CHECK_RV(cryptm(false, &pad, h, out, ol, 16, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, n, "CBC_PAD back multi-part");
			/* CTR */
			rl = ref_cipher("CTR", k, kl, iv, true, false, in, n, ref);
			CHECK_RV(crypt1(true, &ctr, h, in, n, out, &ol), CKR_OK);
			CHECK_MEM(out, ol, ref, rl, "CTR");
			CHECK_RV(cryptm(false, &ctr, h, out, ol, 3, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, n, "CTR back");
		}
	}
	/* Length rules */
	{
		CK_MECHANISM cbc = { CKM_AES_CBC, iv, 16 }, pad = { CKM_AES_CBC_PAD, iv, 16 };
		CK_ULONG l = sizeof(out);

		CHECK_RV(crypt1(true, &cbc, h16, in, 17, out, &ol), CKR_DATA_LEN_RANGE);
		CHECK_RV(crypt1(false, &cbc, h16, in, 31, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
		CHECK_RV(crypt1(false, &pad, h16, in, 33, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
		/* The error ended the operation (crypt1 checks it after OK only). */
		CHECK_RV(P->C_DecryptInit(S, &pad, h16), CKR_OK);
		CHECK_RV(P->C_Decrypt(S, in, 33, out, &l), CKR_ENCRYPTED_DATA_LEN_RANGE);
		CHECK_RV(P->C_Decrypt(S, in, 32, out, &l), CKR_OPERATION_NOT_INITIALIZED);
		/* Multi-part: an incomplete block is found at Final. */
		CHECK_RV(cryptm(true, &cbc, h16, in, 20, 7, out, &ol), CKR_DATA_LEN_RANGE);
		CHECK_RV(P->C_EncryptFinal(S, out, &l), CKR_OPERATION_NOT_INITIALIZED);
		/* A wrong padding: CBC_PAD decryption of CBC(15 x 'A' || 0x05). */
		memset(in, 'A', 15);
		in[15] = 5;
		CHECK_RV(crypt1(true, &cbc, h16, in, 16, out, &ol), CKR_OK);
		CHECK_RV(crypt1(false, &pad, h16, out, 16, back, &bl), CKR_ENCRYPTED_DATA_INVALID);
	}
	/* CTR counter limit: 2 counter bits starting at 1 allow 3 blocks. */
	{
		CK_AES_CTR_PARAMS cp = { 2, { 0 } };
		CK_MECHANISM ctr = { CKM_AES_CTR, &cp, sizeof(cp) };

		cp.cb[15] = 1;
		CHECK_RV(crypt1(true, &ctr, h16, in, 48, out, &ol), CKR_OK);
		CHECK_RV(crypt1(true, &ctr, h16, in, 49, out, &ol), CKR_DATA_LEN_RANGE);
		cp.counter_bits = 0;
		CHECK_RV(P->C_EncryptInit(S, &ctr, h16), CKR_MECHANISM_PARAM_INVALID);
		cp.counter_bits = 129;
		CHECK_RV(P->C_EncryptInit(S, &ctr, h16), CKR_MECHANISM_PARAM_INVALID);
	}
	tp_case_end();

	tp_case_begin("AES-GCM, both parameter layouts, AAD, tag lengths");
	{
		/* PKCS#11 2.40's CK_GCM_PARAMS has no ulIvBits. */
		struct gcm240 {
			CK_BYTE_PTR iv;
			CK_ULONG iv_len;
			CK_BYTE_PTR aad;
			CK_ULONG aad_len;
			CK_ULONG tag_bits;
		} p240;
		uint8_t aad[40], giv[12];
		CK_GCM_PARAMS p30;
		CK_MECHANISM m30 = { CKM_AES_GCM, &p30, sizeof(p30) };
		CK_MECHANISM m240 = { CKM_AES_GCM, &p240, sizeof(p240) };
		const size_t tags[] = { 16, 12, 8, 4 };

		RAND_bytes(aad, sizeof(aad));
		RAND_bytes(giv, sizeof(giv));
		RAND_bytes(in, sizeof(in));
		CHECK(sizeof(p30) == 6 * sizeof(CK_ULONG) && sizeof(p240) == 5 * sizeof(CK_ULONG));
		for (size_t ti = 0; ti < 4; ti++) {
			size_t n = 1000 + ti;

			p30 = (CK_GCM_PARAMS){ giv, 12, 96, aad, sizeof(aad), tags[ti] * 8 };
			p240 = (struct gcm240){ giv, 12, aad, sizeof(aad), tags[ti] * 8 };
			rl = ref_gcm(k32, 32, giv, 12, aad, sizeof(aad), in, n, tags[ti], ref);
			CHECK_RV(crypt1(true, &m30, h32, in, n, out, &ol), CKR_OK);
			CHECK_MEM(out, ol, ref, rl, "GCM (3.0 layout)");
			CHECK_RV(crypt1(true, &m240, h32, in, n, multi, &ml), CKR_OK);
			CHECK_MEM(multi, ml, ref, rl, "GCM (2.40 layout)");
			CHECK_RV(cryptm(true, &m30, h32, in, n, 100, multi, &ml), CKR_OK);
			CHECK_MEM(multi, ml, ref, rl, "GCM multi-part");
			CHECK_RV(crypt1(false, &m240, h32, out, ol, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, n, "GCM back");
			CHECK_RV(cryptm(false, &m30, h32, out, ol, 77, back, &bl), CKR_OK);
			CHECK_MEM(back, bl, in, n, "GCM back multi-part");
		}
		/* Barbican: 12-byte IV, 128-bit tag, output ct||tag, exact buffer */
		p30 = (CK_GCM_PARAMS){ giv, 12, 96, NULL, 0, 128 };
		rl = ref_gcm(k16, 16, giv, 12, NULL, 0, in, 48, 16, ref);
		{
			CK_ULONG l = rl;

			CHECK_RV(P->C_EncryptInit(S, &m30, h16), CKR_OK);
			CHECK_RV(P->C_Encrypt(S, in, 48, out, &l), CKR_OK);
			CHECK_MEM(out, l, ref, rl, "GCM Barbican");
			/* A tag failure is CKR_ENCRYPTED_DATA_INVALID, no plaintext. */
			out[l - 1] ^= 1;
			memset(back, 0xA5, 64);
			CK_ULONG bl2 = 64;
			CHECK_RV(P->C_DecryptInit(S, &m30, h16), CKR_OK);
			CHECK_RV(P->C_Decrypt(S, out, l, back, &bl2), CKR_ENCRYPTED_DATA_INVALID);
			for (int i = 0; i < 64; i++)
				CHECK(back[i] == 0xA5);
			CHECK_RV(P->C_Decrypt(S, out, l, back, &bl2), CKR_OPERATION_NOT_INITIALIZED);
			/* multi-part: nothing is released before the tag is checked */
			CHECK_RV(P->C_DecryptInit(S, &m30, h16), CKR_OK);
			bl2 = 64;
			CHECK_RV(P->C_DecryptUpdate(S, out, l, back, &bl2), CKR_OK);
			CHECK(bl2 == 0);
			bl2 = 64;
			CHECK_RV(P->C_DecryptFinal(S, back, &bl2), CKR_ENCRYPTED_DATA_INVALID);
			CHECK_RV(P->C_DecryptFinal(S, back, &bl2), CKR_OPERATION_NOT_INITIALIZED);
			/* shorter than the tag */
			CHECK_RV(crypt1(false, &m30, h16, out, 15, back, &ol),
				 CKR_ENCRYPTED_DATA_LEN_RANGE);
		}
		/* Parameter validation by length and content */
		{
			CK_MECHANISM bad = { CKM_AES_GCM, &p30, sizeof(p30) - 4 };

			CHECK_RV(P->C_EncryptInit(S, &bad, h16), CKR_MECHANISM_PARAM_INVALID);
			bad.ulParameterLen = 0;
			CHECK_RV(P->C_EncryptInit(S, &bad, h16), CKR_MECHANISM_PARAM_INVALID);
			p30.tag_bits = 130;
			CHECK_RV(P->C_EncryptInit(S, &m30, h16), CKR_MECHANISM_PARAM_INVALID);
			p30.tag_bits = 128;
			p30.iv_bits = 64;
			CHECK_RV(P->C_DecryptInit(S, &m30, h16), CKR_MECHANISM_PARAM_INVALID);
			p30.iv_bits = 96;
			p30.iv_len = 0;
			CHECK_RV(P->C_DecryptInit(S, &m30, h16), CKR_MECHANISM_PARAM_INVALID);
		}
	}
	tp_case_end();

	tp_case_begin("AES key wrap mechanisms as encryption (single-part only)");
	{
		CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 }, kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
		CK_ULONG l = sizeof(out);

		rl = ref_cipher("WRAP", k24, 24, NULL, true, false, in, 40, ref);
		CHECK_RV(crypt1(true, &kw, h24, in, 40, out, &ol), CKR_OK);
		CHECK_MEM(out, ol, ref, rl, "KEY_WRAP");
		CHECK_RV(crypt1(false, &kw, h24, out, ol, back, &bl), CKR_OK);
		CHECK_MEM(back, bl, in, 40, "KEY_WRAP back");
		rl = ref_cipher("WRAP-PAD", k24, 24, NULL, true, false, in, 41, ref);
		CHECK_RV(crypt1(true, &kwp, h24, in, 41, out, &ol), CKR_OK);
		CHECK_MEM(out, ol, ref, rl, "KEY_WRAP_PAD");
		CHECK_RV(crypt1(false, &kwp, h24, out, ol, back, &bl), CKR_OK);
		CHECK_MEM(back, bl, in, 41, "KEY_WRAP_PAD back");
		out[5] ^= 1;
		CHECK_RV(crypt1(false, &kwp, h24, out, ol, back, &bl), CKR_ENCRYPTED_DATA_INVALID);
		CHECK_RV(crypt1(true, &kw, h24, in, 41, out, &ol), CKR_DATA_LEN_RANGE);
		CHECK_RV(P->C_EncryptInit(S, &kw, h24), CKR_OK);
		CHECK_RV(P->C_EncryptUpdate(S, in, 16, out, &l), CKR_FUNCTION_NOT_SUPPORTED);
		CHECK_RV(P->C_EncryptFinal(S, out, &l), CKR_OPERATION_NOT_INITIALIZED);
	}
	tp_case_end();
}

/* ---- operation state --------------------------------------------------------- */

static void test_op_rules(void)
{
	uint8_t k[16], iv[16] = { 0 }, in[64] = { 0 }, out[128];
	CK_MECHANISM cbc = { CKM_AES_CBC, iv, 16 }, jwe = { CKM_TANG_JWE, NULL, 0 };
	CK_OBJECT_HANDLE h, hnone;
	CK_ULONG l;
	CK_SESSION_HANDLE s2;
	CK_ATTRIBUTE none[] = {
		{ CKA_ENCRYPT, &F, 1 }, { CKA_DECRYPT, &F, 1 }, { CKA_SIGN, &F, 1 },
		{ CKA_VERIFY, &F, 1 }, { CKA_WRAP, &F, 1 }, { CKA_UNWRAP, &F, 1 },
	};

	tp_case_begin("operation state rules");
	RAND_bytes(k, 16);
	h = make_simple(CKK_AES, k, 16);
	hnone = make_key(CKK_AES, k, 16, none, 6);
	CHECK_RV(P->C_EncryptInit(S, &cbc, hnone), CKR_KEY_FUNCTION_NOT_PERMITTED);
	CHECK_RV(P->C_DecryptInit(S, &cbc, hnone), CKR_KEY_FUNCTION_NOT_PERMITTED);
	{
		CK_MECHANISM hm = { CKM_SHA256_HMAC, NULL, 0 };

		CHECK_RV(P->C_SignInit(S, &hm, hnone), CKR_KEY_FUNCTION_NOT_PERMITTED);
		CHECK_RV(P->C_VerifyInit(S, &hm, hnone), CKR_KEY_FUNCTION_NOT_PERMITTED);
	}
	CHECK_RV(P->C_EncryptInit(S, &cbc, 0x7fffffff), CKR_KEY_HANDLE_INVALID);
	CHECK_RV(P->C_EncryptInit(S, &cbc, tang_pub), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(P->C_EncryptInit(S, NULL, h), CKR_ARGUMENTS_BAD);

	/* Init twice; JWE and AES share the encryption slot */
	CHECK_RV(P->C_EncryptInit(S, &cbc, h), CKR_OK);
	CHECK_RV(P->C_EncryptInit(S, &cbc, h), CKR_OPERATION_ACTIVE);
	CHECK_RV(P->C_EncryptInit(S, &jwe, tang_pub), CKR_OPERATION_ACTIVE);
	/* single then multi: CKR_OPERATION_ACTIVE, the operation stays */
	l = 0;
	CHECK_RV(P->C_Encrypt(S, in, 32, NULL, &l), CKR_OK);
	CHECK(l == 32);
	CHECK_RV(P->C_EncryptUpdate(S, in, 16, out, &l), CKR_OPERATION_ACTIVE);
	l = sizeof(out);
	CHECK_RV(P->C_Encrypt(S, in, 32, out, &l), CKR_OK);
	CHECK(l == 32);
	/* multi then single */
	CHECK_RV(P->C_EncryptInit(S, &cbc, h), CKR_OK);
	l = sizeof(out);
	CHECK_RV(P->C_EncryptUpdate(S, in, 10, out, &l), CKR_OK);
	CHECK(l == 0);
	CHECK_RV(P->C_Encrypt(S, in, 16, out, &l), CKR_OPERATION_ACTIVE);
	l = sizeof(out);
	CHECK_RV(P->C_EncryptUpdate(S, in, 22, out, &l), CKR_OK);
	CHECK(l == 32);
	/* nothing is left for Final: 0 bytes, and the operation is over */
	l = 0;
	CHECK_RV(P->C_EncryptFinal(S, out, &l), CKR_OK);   /* nothing left: 0 fits */
	CHECK_RV(P->C_EncryptFinal(S, out, &l), CKR_OPERATION_NOT_INITIALIZED);
	/* ARGUMENTS_BAD ends the operation too */
	CHECK_RV(P->C_EncryptInit(S, &cbc, h), CKR_OK);
	CHECK_RV(P->C_Encrypt(S, in, 16, out, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(P->C_Encrypt(S, in, 16, out, &l), CKR_OPERATION_NOT_INITIALIZED);

	/* A key used from another session; destroyed after Init the
	 * operation goes on with the value it took. */
	s2 = tp_open(SLOT);
	CHECK_RV(P->C_EncryptInit(s2, &cbc, h), CKR_OK);
	CHECK_RV(P->C_DestroyObject(S, h), CKR_OK);
	l = sizeof(out);
	CHECK_RV(P->C_Encrypt(s2, in, 16, out, &l), CKR_OK);
	{
		uint8_t ref[32];
		size_t rl = ref_cipher("CBC", k, 16, iv, true, false, in, 16, ref);

		CHECK_MEM(out, l, ref, rl, "CBC after the key was destroyed");
	}
	CHECK_RV(P->C_EncryptInit(s2, &cbc, h), CKR_KEY_HANDLE_INVALID);
	/* Closing a session ends its operations */
	CHECK_RV(P->C_DigestInit(s2, &(CK_MECHANISM){ CKM_SHA256, NULL, 0 }), CKR_OK);
	CHECK_RV(P->C_CloseSession(s2), CKR_OK);
	tp_case_end();
}

/* ---- MACs ------------------------------------------------------------------------ */

static void test_macs(void)
{
	static uint8_t msg[2000];
	uint8_t kaes[32], kgen[45], khm[20], sig[64], ref[64], sig2[64];
	CK_OBJECT_HANDLE haes, hgen, hhm, htang = tang_priv;
	size_t sl, rl, sl2;
	CK_KEY_TYPE hm256 = CKK_SHA256_HMAC;
	static const struct {
		CK_MECHANISM_TYPE m, mg;
		const char *md;
		size_t len;
	} hmacs[] = {
		{ CKM_SHA_1_HMAC, CKM_SHA_1_HMAC_GENERAL, "SHA1", 20 },
		{ CKM_SHA224_HMAC, CKM_SHA224_HMAC_GENERAL, "SHA224", 28 },
		{ CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL, "SHA256", 32 },
		{ CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL, "SHA384", 48 },
		{ CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL, "SHA512", 64 },
	};

	tp_case_begin("HMAC with AES, generic-secret and HMAC-typed keys; CMAC; AES-MAC");
	RAND_bytes(msg, sizeof(msg));
	RAND_bytes(kaes, sizeof(kaes));
	RAND_bytes(kgen, sizeof(kgen));
	RAND_bytes(khm, sizeof(khm));
	haes = make_simple(CKK_AES, kaes, 32);
	hgen = make_simple(CKK_GENERIC_SECRET, kgen, sizeof(kgen));
	hhm = make_simple(hm256, khm, sizeof(khm));
	for (size_t i = 0; i < 5; i++) {
		CK_MECHANISM m = { hmacs[i].m, NULL, 0 };
		CK_ULONG glen = hmacs[i].len / 2;
		CK_MECHANISM mg = { hmacs[i].mg, &glen, sizeof(glen) };
		const struct {
			CK_OBJECT_HANDLE h;
			const uint8_t *k;
			size_t kl;
		} ks[2] = { { haes, kaes, 32 }, { hgen, kgen, sizeof(kgen) } };

		for (int j = 0; j < 2; j++) {
			rl = ref_mac("HMAC", "digest", hmacs[i].md, ks[j].k, ks[j].kl, msg, 1500, ref);
			CHECK_RV(sign1(&m, ks[j].h, msg, 1500, sig, &sl), CKR_OK);
			CHECK_MEM(sig, sl, ref, rl, hmacs[i].md);
			CHECK_RV(signm(&m, ks[j].h, msg, 1500, 101, sig2, &sl2), CKR_OK);
			CHECK_MEM(sig2, sl2, ref, rl, "HMAC multi-part");
			CHECK_RV(verify1(&m, ks[j].h, msg, 1500, ref, rl), CKR_OK);
			CHECK_RV(verifym(&m, ks[j].h, msg, 1500, 64, ref, rl), CKR_OK);
			CHECK_RV(sign1(&mg, ks[j].h, msg, 1500, sig, &sl), CKR_OK);
			CHECK_MEM(sig, sl, ref, glen, "HMAC general");
			CHECK_RV(verify1(&mg, ks[j].h, msg, 1500, ref, glen), CKR_OK);
			CHECK_RV(verify1(&mg, ks[j].h, msg, 1500, ref, rl), CKR_SIGNATURE_LEN_RANGE);
		}
		/* The HMAC-typed key works with its own hash only */
		if (hmacs[i].m == CKM_SHA256_HMAC) {
			rl = ref_mac("HMAC", "digest", "SHA256", khm, sizeof(khm), msg, 10, ref);
			CHECK_RV(sign1(&m, hhm, msg, 10, sig, &sl), CKR_OK);
			CHECK_MEM(sig, sl, ref, rl, "HMAC-SHA256 with CKK_SHA256_HMAC");
		} else {
			CHECK_RV(P->C_SignInit(S, &m, hhm), CKR_KEY_TYPE_INCONSISTENT);
		}
	}
	/* HMAC key sizes: 1 to 8192 bytes, as C_GetMechanismInfo says */
	{
		static uint8_t big[8193];
		CK_MECHANISM m = { CKM_SHA512_HMAC, NULL, 0 };
		CK_OBJECT_HANDLE hmax, hover;

		RAND_bytes(big, sizeof(big));
		hmax = make_simple(CKK_GENERIC_SECRET, big, 8192);
		hover = make_simple(CKK_GENERIC_SECRET, big, 8193);
		rl = ref_mac("HMAC", "digest", "SHA512", big, 8192, msg, 100, ref);
		CHECK_RV(sign1(&m, hmax, msg, 100, sig, &sl), CKR_OK);
		CHECK_MEM(sig, sl, ref, rl, "HMAC with an 8192-byte key");
		CHECK_RV(P->C_SignInit(S, &m, hover), CKR_KEY_SIZE_RANGE);
		CHECK_RV(P->C_VerifyInit(S, &m, hover), CKR_KEY_SIZE_RANGE);
	}
	/* Verification failures end the operation */
	{
		CK_MECHANISM m = { CKM_SHA256_HMAC, NULL, 0 };

		rl = ref_mac("HMAC", "digest", "SHA256", kaes, 32, msg, 100, ref);
		ref[31] ^= 1;
		CHECK_RV(verify1(&m, haes, msg, 100, ref, rl), CKR_SIGNATURE_INVALID);
		CHECK_RV(verifym(&m, haes, msg, 100, 7, ref, rl), CKR_SIGNATURE_INVALID);
		CHECK_RV(verify1(&m, haes, msg, 100, ref, 31), CKR_SIGNATURE_LEN_RANGE);
		CHECK_RV(verify1(&m, haes, msg, 100, ref, 33), CKR_SIGNATURE_LEN_RANGE);
		CHECK_RV(P->C_SignInit(S, &m, htang), CKR_KEY_TYPE_INCONSISTENT);
		/* general length parameters */
		CK_ULONG glen = 33;
		CK_MECHANISM mg = { CKM_SHA256_HMAC_GENERAL, &glen, sizeof(glen) };

		CHECK_RV(P->C_SignInit(S, &mg, haes), CKR_MECHANISM_PARAM_INVALID);
		glen = 0;
		CHECK_RV(P->C_SignInit(S, &mg, haes), CKR_MECHANISM_PARAM_INVALID);
		mg.ulParameterLen = 4;
		CHECK_RV(P->C_SignInit(S, &mg, haes), CKR_MECHANISM_PARAM_INVALID);
		/* sign: a short buffer keeps the operation, a length query too */
		CK_ULONG l = 0;
		CHECK_RV(P->C_SignInit(S, &m, haes), CKR_OK);
		CHECK_RV(P->C_SignUpdate(S, msg, 10), CKR_OK);
		CHECK_RV(P->C_SignFinal(S, NULL, &l), CKR_OK);
		CHECK(l == 32);
		l = 31;
		CHECK_RV(P->C_SignFinal(S, sig, &l), CKR_BUFFER_TOO_SMALL);
		CHECK_RV(P->C_Sign(S, msg, 10, sig, &l), CKR_OPERATION_ACTIVE);
		l = 32;
		CHECK_RV(P->C_SignFinal(S, sig, &l), CKR_OK);
		rl = ref_mac("HMAC", "digest", "SHA256", kaes, 32, msg, 10, ref);
		CHECK_MEM(sig, l, ref, rl, "HMAC after BUFFER_TOO_SMALL");
		CHECK_RV(P->C_SignFinal(S, sig, &l), CKR_OPERATION_NOT_INITIALIZED);
	}
	/* CMAC and AES-MAC need AES keys */
	{
		CK_MECHANISM cm = { CKM_AES_CMAC, NULL, 0 }, am = { CKM_AES_MAC, NULL, 0 };
		CK_ULONG g = 10;
		CK_MECHANISM cmg = { CKM_AES_CMAC_GENERAL, &g, sizeof(g) };
		uint8_t padded[1008] = { 0 }, cbc[1008];
		static const uint8_t zero_iv[16];

		rl = ref_mac("CMAC", "cipher", "AES-256-CBC", kaes, 32, msg, 1000, ref);
		CHECK_RV(sign1(&cm, haes, msg, 1000, sig, &sl), CKR_OK);
		CHECK_MEM(sig, sl, ref, rl, "CMAC");
		CHECK_RV(signm(&cm, haes, msg, 1000, 13, sig, &sl), CKR_OK);
		CHECK_MEM(sig, sl, ref, rl, "CMAC multi-part");
		CHECK_RV(sign1(&cmg, haes, msg, 1000, sig, &sl), CKR_OK);
		CHECK_MEM(sig, sl, ref, 10, "CMAC general");
		CHECK_RV(verify1(&cmg, haes, msg, 1000, ref, 10), CKR_OK);
		CHECK_RV(P->C_SignInit(S, &cm, hgen), CKR_KEY_TYPE_INCONSISTENT);
		/* AES-MAC: first half of the last block of CBC (zero IV) over the
		 * data zero padded to whole blocks */
		memcpy(padded, msg, 1000);
		ref_cipher("CBC", kaes, 32, zero_iv, true, false, padded, 1008, cbc);
		CHECK_RV(sign1(&am, haes, msg, 1000, sig, &sl), CKR_OK);
		CHECK_MEM(sig, sl, cbc + 992, 8, "AES-MAC");
		CHECK_RV(verifym(&am, haes, msg, 1000, 9, cbc + 992, 8), CKR_OK);
		CHECK_RV(P->C_SignInit(S, &am, hgen), CKR_KEY_TYPE_INCONSISTENT);
	}
	tp_case_end();
}

/* ---- digests ---------------------------------------------------------------------- */

static void test_digests(void)
{
	static const struct {
		CK_MECHANISM_TYPE m;
		const char *md;
	} ds[] = { { CKM_SHA_1, "SHA1" }, { CKM_SHA224, "SHA224" }, { CKM_SHA256, "SHA256" },
		   { CKM_SHA384, "SHA384" }, { CKM_SHA512, "SHA512" } };
	uint8_t msg[500], out[64], ref[64], key[32], both[532];
	unsigned int rl = 0;
	CK_ULONG l;
	CK_OBJECT_HANDLE h;

	tp_case_begin("digests, C_DigestKey");
	RAND_bytes(msg, sizeof(msg));
	RAND_bytes(key, sizeof(key));
	h = make_simple(CKK_AES, key, 32);   /* sensitive, not extractable */
	for (size_t i = 0; i < 5; i++) {
		CK_MECHANISM m = { ds[i].m, NULL, 0 };

		EVP_Digest(msg, sizeof(msg), ref, &rl, EVP_get_digestbyname(ds[i].md), NULL);
		CHECK_RV(P->C_DigestInit(S, &m), CKR_OK);
		l = 0;
		CHECK_RV(P->C_Digest(S, msg, sizeof(msg), NULL, &l), CKR_OK);
		CHECK(l == rl);
		l = rl - 1;
		CHECK_RV(P->C_Digest(S, msg, sizeof(msg), out, &l), CKR_BUFFER_TOO_SMALL);
		CHECK_RV(P->C_Digest(S, msg, sizeof(msg), out, &l), CKR_OK);
		CHECK_MEM(out, l, ref, rl, ds[i].md);
		CHECK_RV(P->C_DigestInit(S, &m), CKR_OK);
		CHECK_RV(P->C_DigestUpdate(S, msg, 100), CKR_OK);
		CHECK_RV(P->C_DigestUpdate(S, msg + 100, 0), CKR_OK);
		CHECK_RV(P->C_DigestUpdate(S, msg + 100, 400), CKR_OK);
		l = sizeof(out);
		CHECK_RV(P->C_DigestFinal(S, out, &l), CKR_OK);
		CHECK_MEM(out, l, ref, rl, "multi-part digest");
	}
	/* C_DigestKey: msg || key value */
	memcpy(both, msg, 500);
	memcpy(both + 500, key, 32);
	EVP_Digest(both, sizeof(both), ref, &rl, EVP_sha256(), NULL);
	CHECK_RV(P->C_DigestInit(S, &(CK_MECHANISM){ CKM_SHA256, NULL, 0 }), CKR_OK);
	CHECK_RV(P->C_DigestUpdate(S, msg, 500), CKR_OK);
	CHECK_RV(P->C_DigestKey(S, h), CKR_OK);
	l = sizeof(out);
	CHECK_RV(P->C_DigestFinal(S, out, &l), CKR_OK);
	CHECK_MEM(out, l, ref, rl, "C_DigestKey");
	CHECK_RV(P->C_DigestInit(S, &(CK_MECHANISM){ CKM_SHA256, NULL, 0 }), CKR_OK);
	CHECK_RV(P->C_DigestKey(S, tang_priv), CKR_KEY_INDIGESTIBLE);
	CHECK_RV(P->C_DigestFinal(S, out, &l), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(P->C_DigestInit(S, &(CK_MECHANISM){ CKM_SHA256, msg, 1 }), CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(P->C_DigestInit(S, &(CK_MECHANISM){ CKM_AES_CBC, NULL, 0 }), CKR_MECHANISM_INVALID);
	/* C_SeedRandom mixes and says CKR_OK; random still flows */
	CHECK_RV(P->C_SeedRandom(S, msg, sizeof(msg)), CKR_OK);
	CHECK_RV(P->C_GenerateRandom(S, out, 64), CKR_OK);
	tp_case_end();
}

/* ---- wrap and unwrap ------------------------------------------------------------- */

static void test_wrap(void)
{
	uint8_t kek[32], pk[32], gen[20], iv[16], out[256], ref[256];
	CK_OBJECT_HANDLE hkek, hpk, hgen, hnoext, hu, hnowrap;
	CK_ATTRIBUTE ext[] = { { CKA_EXTRACTABLE, &T, 1 }, { CKA_SENSITIVE, &T, 1 } };
	CK_ATTRIBUTE nowrap[] = { { CKA_WRAP, &F, 1 }, { CKA_UNWRAP, &F, 1 } };
	CK_MECHANISM pad = { CKM_AES_CBC_PAD, iv, 16 };
	CK_ULONG l;
	size_t rl;
	CK_KEY_TYPE aes = CKK_AES, generic = CKK_GENERIC_SECRET;
	char label[] = "unwrapped project key";

	tp_case_begin("C_WrapKey / C_UnwrapKey with AES mechanisms (Barbican's pattern)");
	RAND_bytes(kek, 32);
	RAND_bytes(pk, 32);
	RAND_bytes(gen, 20);
	RAND_bytes(iv, 16);
	hkek = make_simple(CKK_AES, kek, 32);
	hpk = make_key(CKK_AES, pk, 32, ext, 2);   /* sensitive but extractable */
	hgen = make_key(CKK_GENERIC_SECRET, gen, 20, ext, 1);
	hnoext = make_simple(CKK_AES, pk, 32);     /* default: not extractable */
	hnowrap = make_key(CKK_AES, kek, 32, nowrap, 2);

	/* CBC_PAD: length query, short buffer, exact */
	rl = ref_cipher("CBC", kek, 32, iv, true, true, pk, 32, ref);
	l = 0;
	CHECK_RV(P->C_WrapKey(S, &pad, hkek, hpk, NULL, &l), CKR_OK);
	CHECK(l == rl);
	l = rl - 1;
	CHECK_RV(P->C_WrapKey(S, &pad, hkek, hpk, out, &l), CKR_BUFFER_TOO_SMALL);
	CHECK(l == rl);
	CHECK_RV(P->C_WrapKey(S, &pad, hkek, hpk, out, &l), CKR_OK);
	CHECK_MEM(out, l, ref, rl, "CBC_PAD wrap");
	/* Barbican's unwrap template: no CKA_VALUE_LEN */
	{
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &SECRET, sizeof(SECRET) }, { CKA_KEY_TYPE, &aes, sizeof(aes) },
			{ CKA_LABEL, label, sizeof(label) - 1 }, { CKA_ENCRYPT, &T, 1 },
			{ CKA_DECRYPT, &F, 1 }, { CKA_SENSITIVE, &F, 1 }, { CKA_EXTRACTABLE, &T, 1 },
			{ CKA_TOKEN, &F, 1 },
		};
		uint8_t *v = NULL, *lab = NULL;
		CK_ULONG vl = 0, ll = 0;

		CHECK_RV(P->C_UnwrapKey(S, &pad, hkek, out, l, t, 8, &hu), CKR_OK);
		CHECK_RV(tp_attr(S, hu, CKA_VALUE, &v, &vl), CKR_OK);
		CHECK_MEM(v, vl, pk, 32, "unwrapped value");
		CHECK(tp_attr_ulong(S, hu, CKA_VALUE_LEN) == 32);
		CHECK(tp_attr_ulong(S, hu, CKA_KEY_TYPE) == CKK_AES);
		CHECK_RV(tp_attr(S, hu, CKA_LABEL, &lab, &ll), CKR_OK);
		CHECK_MEM(lab, ll, label, sizeof(label) - 1, "unwrapped label");
		CHECK(tp_attr_bool(S, hu, CKA_ENCRYPT) == 1 && tp_attr_bool(S, hu, CKA_DECRYPT) == 0);
		CHECK(tp_attr_bool(S, hu, CKA_LOCAL) == 0);
		CHECK(tp_attr_bool(S, hu, CKA_NEVER_EXTRACTABLE) == 0);
		free(v);
		free(lab);
		CHECK_RV(P->C_DecryptInit(S, &pad, hu), CKR_KEY_FUNCTION_NOT_PERMITTED);
		/* wrong CKA_VALUE_LEN for a padded mode */
		CK_ULONG vlen = 16;
		CK_ATTRIBUTE t2[] = { { CKA_CLASS, &SECRET, sizeof(SECRET) },
				      { CKA_KEY_TYPE, &aes, sizeof(aes) },
				      { CKA_VALUE_LEN, &vlen, sizeof(vlen) } };
		CHECK_RV(P->C_UnwrapKey(S, &pad, hkek, out, l, t2, 3, &hu), CKR_TEMPLATE_INCONSISTENT);
		/* garbage: a wrong IV gives bad padding or a wrong key, a truncated
		 * one a length error */
		CHECK_RV(P->C_UnwrapKey(S, &pad, hkek, out, l - 1, t, 8, &hu), CKR_WRAPPED_KEY_LEN_RANGE);
	}
	/* Barbican 15's exact unwrap template, then its uses of the key:
	 * CBC encryption of data it padded itself, into an exact buffer. */
	{
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &SECRET, sizeof(SECRET) }, { CKA_KEY_TYPE, &aes, sizeof(aes) },
			{ CKA_TOKEN, &F, 1 }, { CKA_PRIVATE, &T, 1 }, { CKA_SENSITIVE, &T, 1 },
			{ CKA_ENCRYPT, &T, 1 }, { CKA_DECRYPT, &T, 1 }, { CKA_EXTRACTABLE, &T, 1 },
		};
		uint8_t data[48], ct[48], civ[16];
		CK_MECHANISM cbc = { CKM_AES_CBC, civ, 16 };
		CK_ULONG cl = sizeof(ct);

		RAND_bytes(data, sizeof(data));
		RAND_bytes(civ, sizeof(civ));
		l = sizeof(out);
		CHECK_RV(P->C_WrapKey(S, &pad, hkek, hpk, out, &l), CKR_OK);
		CHECK_RV(P->C_UnwrapKey(S, &pad, hkek, out, l, t, 8, &hu), CKR_OK);
		CHECK(tp_attr_bool(S, hu, CKA_PRIVATE) == 1 && tp_attr_bool(S, hu, CKA_SENSITIVE) == 1);
		CHECK_RV(P->C_EncryptInit(S, &cbc, hu), CKR_OK);
		CHECK_RV(P->C_Encrypt(S, data, 48, ct, &cl), CKR_OK);
		rl = ref_cipher("CBC", pk, 32, civ, true, false, data, 48, ref);
		CHECK_MEM(ct, cl, ref, rl, "CBC with Barbican's unwrapped project key");
		/* and it can be wrapped again (sensitive, extractable) */
		l = sizeof(out);
		CHECK_RV(P->C_WrapKey(S, &pad, hkek, hu, out, &l), CKR_OK);
		/* Barbican's "HSM generates the GCM IV" option: no IV given.
		 * PKCS#11 2.40 has no such mode: refused. */
		CK_GCM_PARAMS gp = { NULL, 0, 0, NULL, 0, 128 };
		CK_MECHANISM gcm = { CKM_AES_GCM, &gp, 48 };
		CHECK_RV(P->C_EncryptInit(S, &gcm, hu), CKR_MECHANISM_PARAM_INVALID);
	}
	/* Rules */
	CHECK_RV(P->C_WrapKey(S, &pad, hkek, hnoext, out, &l), CKR_KEY_UNEXTRACTABLE);
	l = sizeof(out);
	CHECK_RV(P->C_WrapKey(S, &pad, hnowrap, hpk, out, &l), CKR_KEY_FUNCTION_NOT_PERMITTED);
	CHECK_RV(P->C_WrapKey(S, &pad, hgen, hpk, out, &l), CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
	CHECK_RV(P->C_WrapKey(S, &pad, 0x7ffffff0, hpk, out, &l), CKR_WRAPPING_KEY_HANDLE_INVALID);
	CHECK_RV(P->C_WrapKey(S, &pad, hkek, 0x7ffffff0, out, &l), CKR_KEY_HANDLE_INVALID);
	CHECK_RV(P->C_WrapKey(S, &pad, hkek, tang_priv, out, &l), CKR_KEY_NOT_WRAPPABLE);
	CHECK_RV(P->C_WrapKey(S, &(CK_MECHANISM){ CKM_AES_CBC_PAD, iv, 8 }, hkek, hpk, out, &l),
		 CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(P->C_WrapKey(S, &(CK_MECHANISM){ CKM_SHA256_HMAC, NULL, 0 }, hkek, hpk, out, &l),
		 CKR_MECHANISM_INVALID);
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &SECRET, sizeof(SECRET) } };

		l = sizeof(out);
		CHECK_RV(P->C_WrapKey(S, &pad, hkek, hpk, out, &l), CKR_OK);
		CHECK_RV(P->C_UnwrapKey(S, &pad, hnowrap, out, l, t, 1, &hu),
			 CKR_KEY_FUNCTION_NOT_PERMITTED);
		CHECK_RV(P->C_UnwrapKey(S, &pad, hgen, out, l, t, 1, &hu),
			 CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
		CHECK_RV(P->C_UnwrapKey(S, &pad, 0x7ffffff0, out, l, t, 1, &hu),
			 CKR_UNWRAPPING_KEY_HANDLE_INVALID);
	}

	/* ECB/CBC: zero padding; CKA_VALUE_LEN cuts it on unwrap */
	{
		CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
		uint8_t padded[32] = { 0 }, *v = NULL;
		CK_ULONG vlen = 20, vl = 0;
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &SECRET, sizeof(SECRET) },
				     { CKA_KEY_TYPE, &generic, sizeof(generic) },
				     { CKA_VALUE_LEN, &vlen, sizeof(vlen) },
				     { CKA_SENSITIVE, &F, 1 }, { CKA_EXTRACTABLE, &T, 1 } };

		memcpy(padded, gen, 20);
		rl = ref_cipher("ECB", kek, 32, NULL, true, false, padded, 32, ref);
		l = sizeof(out);
		CHECK_RV(P->C_WrapKey(S, &ecb, hkek, hgen, out, &l), CKR_OK);
		CHECK_MEM(out, l, ref, rl, "ECB wrap (zero padded)");
		CHECK_RV(P->C_UnwrapKey(S, &ecb, hkek, out, l, t, 5, &hu), CKR_OK);
		CHECK_RV(tp_attr(S, hu, CKA_VALUE, &v, &vl), CKR_OK);
		CHECK_MEM(v, vl, gen, 20, "ECB unwrap with CKA_VALUE_LEN");
		free(v);
		vlen = 33;
		CHECK_RV(P->C_UnwrapKey(S, &ecb, hkek, out, l, t, 5, &hu), CKR_TEMPLATE_INCONSISTENT);
	}
	/* KEY_WRAP (RFC 3394), KEY_WRAP_PAD (RFC 5649), GCM, CTR round trips */
	{
		CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 }, kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
		uint8_t giv[12];
		CK_GCM_PARAMS gp = { giv, 12, 96, NULL, 0, 128 };
		CK_MECHANISM gcm = { CKM_AES_GCM, &gp, sizeof(gp) };
		CK_AES_CTR_PARAMS cp = { 64, { 0 } };
		CK_MECHANISM ctr = { CKM_AES_CTR, &cp, sizeof(cp) };
		CK_MECHANISM *ms[4] = { &kw, &kwp, &gcm, &ctr };
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &SECRET, sizeof(SECRET) },
				     { CKA_KEY_TYPE, &aes, sizeof(aes) },
				     { CKA_SENSITIVE, &F, 1 }, { CKA_EXTRACTABLE, &T, 1 } };

		RAND_bytes(giv, 12);
		rl = ref_cipher("WRAP", kek, 32, NULL, true, false, pk, 32, ref);
		l = sizeof(out);
		CHECK_RV(P->C_WrapKey(S, &kw, hkek, hpk, out, &l), CKR_OK);
		CHECK_MEM(out, l, ref, rl, "KEY_WRAP wrap");
		rl = ref_cipher("WRAP-PAD", kek, 32, NULL, true, false, gen, 20, ref);
		l = sizeof(out);
		CHECK_RV(P->C_WrapKey(S, &kwp, hkek, hgen, out, &l), CKR_OK);
		CHECK_MEM(out, l, ref, rl, "KEY_WRAP_PAD wrap");
		for (int i = 0; i < 4; i++) {
			uint8_t *v = NULL;
			CK_ULONG vl = 0;

			l = sizeof(out);
			CHECK_RV(P->C_WrapKey(S, ms[i], hkek, hpk, out, &l), CKR_OK);
			CHECK_RV(P->C_UnwrapKey(S, ms[i], hkek, out, l, t, 4, &hu), CKR_OK);
			CHECK_RV(tp_attr(S, hu, CKA_VALUE, &v, &vl), CKR_OK);
			CHECK_MEM(v, vl, pk, 32, "round trip");
			free(v);
			if (i != 3) {   /* CTR has no integrity */
				out[l - 1] ^= 1;
				CHECK_RV(P->C_UnwrapKey(S, ms[i], hkek, out, l, t, 4, &hu),
					 CKR_WRAPPED_KEY_INVALID);
			}
		}
		CHECK_RV(P->C_UnwrapKey(S, &kw, hkek, out, 20, t, 4, &hu), CKR_WRAPPED_KEY_LEN_RANGE);
	}
	tp_case_end();
}

/* ---- keys from C_GenerateKey (once the token offers it) --------------- */

/* Barbican's flow on generated keys whose values nobody sees: a master
 * key (sensitive, not extractable) wraps a project key (sensitive,
 * extractable) with CKM_AES_CBC_PAD, an HMAC key (AES, and generic
 * secret) MACs the wrapped bytes; the unwrapped key encrypts exactly as
 * the original.  Skipped while C_GenerateKey is not offered. */
static CK_RV gen_key(CK_MECHANISM_TYPE mt, CK_KEY_TYPE kt, CK_ULONG len, bool extractable,
		     CK_OBJECT_HANDLE *h)
{
	CK_MECHANISM m = { mt, NULL, 0 };
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &SECRET, sizeof(SECRET) }, { CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &len, sizeof(len) }, { CKA_TOKEN, &F, 1 },
		{ CKA_SENSITIVE, &T, 1 }, { CKA_EXTRACTABLE, extractable ? &T : &F, 1 },
		{ CKA_ENCRYPT, &T, 1 }, { CKA_DECRYPT, &T, 1 }, { CKA_WRAP, &T, 1 },
		{ CKA_UNWRAP, &T, 1 }, { CKA_SIGN, &T, 1 }, { CKA_VERIFY, &T, 1 },
	};

	return P->C_GenerateKey(S, &m, t, sizeof(t) / sizeof(t[0]), h);
}

static void test_generated(void)
{
	CK_OBJECT_HANDLE mkek, hmk, ghmk, pk, upk;
	uint8_t iv[16], wrapped[128], sig[32], data[64], c1[64], c2[64];
	CK_MECHANISM pad = { CKM_AES_CBC_PAD, iv, 16 }, cbc = { CKM_AES_CBC, iv, 16 };
	CK_MECHANISM hm = { CKM_SHA256_HMAC, NULL, 0 }, kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_KEY_TYPE aes = CKK_AES;
	CK_ATTRIBUTE ut[] = {
		{ CKA_CLASS, &SECRET, sizeof(SECRET) }, { CKA_KEY_TYPE, &aes, sizeof(aes) },
		{ CKA_TOKEN, &F, 1 }, { CKA_PRIVATE, &T, 1 }, { CKA_SENSITIVE, &T, 1 },
		{ CKA_ENCRYPT, &T, 1 }, { CKA_DECRYPT, &T, 1 }, { CKA_EXTRACTABLE, &T, 1 },
	};
	CK_ULONG wl = 0, l1 = sizeof(c1), l2 = sizeof(c2), sl = sizeof(sig);
	CK_RV rv;

	tp_case_begin("generated keys: Barbican's wrap, MAC and encrypt flow");
	rv = gen_key(CKM_AES_KEY_GEN, CKK_AES, 32, false, &mkek);
	if (rv == CKR_FUNCTION_NOT_SUPPORTED || rv == CKR_MECHANISM_INVALID) {
		tp_note("C_GenerateKey(CKM_AES_KEY_GEN) not offered (%s): skipped", tp_rv_name(rv));
		tp_case_end();
		return;
	}
	CHECK_RV(rv, CKR_OK);
	CHECK_RV(gen_key(CKM_AES_KEY_GEN, CKK_AES, 32, false, &hmk), CKR_OK);
	CHECK_RV(gen_key(CKM_AES_KEY_GEN, CKK_AES, 32, true, &pk), CKR_OK);
	RAND_bytes(iv, sizeof(iv));
	RAND_bytes(data, sizeof(data));
	CHECK_RV(P->C_WrapKey(S, &pad, mkek, pk, NULL, &wl), CKR_OK);
	CHECK(wl == 48);
	CHECK_RV(P->C_WrapKey(S, &pad, mkek, pk, wrapped, &wl), CKR_OK);
	CHECK_RV(P->C_WrapKey(S, &pad, pk, mkek, wrapped + 64, &(CK_ULONG){ 64 }),
		 CKR_KEY_UNEXTRACTABLE);
	CHECK_RV(P->C_SignInit(S, &hm, hmk), CKR_OK);
	CHECK_RV(P->C_Sign(S, wrapped, wl, sig, &sl), CKR_OK);
	CHECK(sl == 32);
	CHECK_RV(P->C_VerifyInit(S, &hm, hmk), CKR_OK);
	CHECK_RV(P->C_Verify(S, wrapped, wl, sig, sl), CKR_OK);
	sig[0] ^= 1;
	CHECK_RV(P->C_VerifyInit(S, &hm, hmk), CKR_OK);
	CHECK_RV(P->C_Verify(S, wrapped, wl, sig, sl), CKR_SIGNATURE_INVALID);
	CHECK_RV(P->C_UnwrapKey(S, &pad, mkek, wrapped, wl, ut, 8, &upk), CKR_OK);
	CHECK_RV(P->C_EncryptInit(S, &cbc, pk), CKR_OK);
	CHECK_RV(P->C_Encrypt(S, data, 64, c1, &l1), CKR_OK);
	CHECK_RV(P->C_EncryptInit(S, &cbc, upk), CKR_OK);
	CHECK_RV(P->C_Encrypt(S, data, 64, c2, &l2), CKR_OK);
	CHECK_MEM(c2, l2, c1, l1, "the unwrapped project key encrypts as the original");
	/* KEY_WRAP_PAD too, and a generic-secret HMAC key */
	wl = sizeof(wrapped);
	CHECK_RV(P->C_WrapKey(S, &kwp, mkek, pk, wrapped, &wl), CKR_OK);
	CHECK(wl == 40);
	CHECK_RV(P->C_UnwrapKey(S, &kwp, mkek, wrapped, wl, ut, 8, &upk), CKR_OK);
	l2 = sizeof(c2);
	CHECK_RV(P->C_EncryptInit(S, &cbc, upk), CKR_OK);
	CHECK_RV(P->C_Encrypt(S, data, 64, c2, &l2), CKR_OK);
	CHECK_MEM(c2, l2, c1, l1, "KEY_WRAP_PAD round trip");
	rv = gen_key(CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET, 32, false, &ghmk);
	if (rv == CKR_OK) {
		sl = sizeof(sig);
		CHECK_RV(P->C_SignInit(S, &hm, ghmk), CKR_OK);
		CHECK_RV(P->C_Sign(S, data, 64, sig, &sl), CKR_OK);
		CHECK_RV(P->C_VerifyInit(S, &hm, ghmk), CKR_OK);
		CHECK_RV(P->C_Verify(S, data, 64, sig, sl), CKR_OK);
		CHECK_RV(P->C_EncryptInit(S, &cbc, ghmk), CKR_KEY_TYPE_INCONSISTENT);
	} else {
		tp_note("C_GenerateKey(CKM_GENERIC_SECRET_KEY_GEN): %s", tp_rv_name(rv));
	}
	tp_case_end();
}

/* ---- threads: one key, many sessions ------------------------------------------ */

static CK_OBJECT_HANDLE thr_key;
static uint8_t thr_k[16];

static void *thr_main(void *arg)
{
	CK_SESSION_HANDLE s = 0;
	uint8_t iv[16] = { 0 }, in[64], out[64], ref[64];
	CK_MECHANISM cbc = { CKM_AES_CBC, iv, 16 };
	int bad = 0;

	(void)arg;
	if (P->C_OpenSession(SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
		return (void *)1;
	for (int i = 0; i < 200; i++) {
		CK_ULONG l = sizeof(out);

		RAND_bytes(in, sizeof(in));
		if (P->C_EncryptInit(s, &cbc, thr_key) != CKR_OK ||
		    P->C_Encrypt(s, in, 64, out, &l) != CKR_OK || l != 64)
			bad++;
		ref_cipher("CBC", thr_k, 16, iv, true, false, in, 64, ref);
		bad += memcmp(out, ref, 64) != 0;
	}
	P->C_CloseSession(s);
	return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
	pthread_t t[4];

	tp_case_begin("a session key used by 4 threads in their own sessions");
	RAND_bytes(thr_k, 16);
	thr_key = make_simple(CKK_AES, thr_k, 16);
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, thr_main, NULL) == 0);
	for (int i = 0; i < 4; i++) {
		void *r = NULL;

		pthread_join(t[i], &r);
		CHECKF(r == NULL, "thread %d: %ld failures", i, (long)(intptr_t)r);
	}
	tp_case_end();
}

int main(void)
{
	tp_server_key k;
	CK_SLOT_ID slot;

	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	slot = SLOT = tp_slot("tang");
	S = tp_open(slot);
	REQUIRE(tp_server_keys(&k, 1, false) == 1);
	tang_priv = tp_find_key(S, CKO_PRIVATE_KEY, k.id);
	tang_pub = tp_find_key(S, CKO_PUBLIC_KEY, k.id);
	REQUIRE(tang_priv != CK_INVALID_HANDLE && tang_pub != CK_INVALID_HANDLE);

	test_mechanism_list(slot);
	test_ciphers();
	test_op_rules();
	test_macs();
	test_digests();
	test_wrap();
	test_generated();
	test_threads();
	tp_server_key_free(&k);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	return tp_exit();
}
