/* Unit tests of mech/aes.c, mech/mac.c, mech/digest.c and the registry's
 * key rules, linked against module-testable.  Expected values are the
 * standards' published vectors (NIST SP 800-38A, the GCM specification's
 * test cases as used by SP 800-38D, RFC 3394, RFC 5649, RFC 4231, RFC
 * 2202, RFC 4493, FIPS 180-4 examples) and, for random sizes, plain
 * OpenSSL calls in the default library context, made here independently
 * of the module's code. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mech/aes.h"
#include "mech/digest.h"
#include "mech/mac.h"
#include "mech/registry.h"

static int failures, checks;

#define CHECK(cond)                                                               \
	do {                                                                      \
		checks++;                                                         \
		if (!(cond)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                               \
		}                                                                 \
	} while (0)

#define CHECK_RV(expr, want)                                                      \
	do {                                                                      \
		CK_RV got_ = (expr), want_ = (want);                              \
		checks++;                                                         \
		if (got_ != want_) {                                              \
			fprintf(stderr, "%s:%d: %s = 0x%lx, want 0x%lx (%s)\n", __FILE__, \
				__LINE__, #expr, (unsigned long)got_, (unsigned long)want_, #want); \
			failures++;                                               \
		}                                                                 \
	} while (0)

static bool mem_eq(const char *what, int line, const uint8_t *got, size_t got_len,
		   const uint8_t *want, size_t want_len)
{
	checks++;
	if (got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0))
		return true;
	fprintf(stderr, "test_mech.c:%d: %s differs (%zu bytes, want %zu)\n  got  ", line, what,
		got_len, want_len);
	for (size_t i = 0; i < got_len && i < 80; i++)
		fprintf(stderr, "%02x", got[i]);
	fprintf(stderr, "\n  want ");
	for (size_t i = 0; i < want_len && i < 80; i++)
		fprintf(stderr, "%02x", want[i]);
	fprintf(stderr, "\n");
	failures++;
	return false;
}
#define CHECK_MEM(what, got, gl, want, wl) mem_eq(what, __LINE__, got, gl, want, wl)

/* Hex into a static pool (enough for the tests). */
static uint8_t *hex(const char *s, size_t *len)
{
	static uint8_t pool[64 * 1024];
	static size_t used;
	size_t n = strlen(s) / 2;
	uint8_t *p;

	if (used + n + 1 > sizeof(pool))
		used = 0;
	p = pool + used;
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		sscanf(s + 2 * i, "%2x", &v);
		p[i] = (uint8_t)v;
	}
	used += n + 1;
	if (len)
		*len = n;
	return p;
}

static const char *NIST_KEY128 = "2b7e151628aed2a6abf7158809cf4f3c";
static const char *NIST_KEY256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
static const char *NIST_PT =
	"6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
	"30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

/* ---- cipher helpers ------------------------------------------------------- */

/* The whole operation single-part; returns the CK_RV, output in out. */
static CK_RV run1(const CK_MECHANISM *m, const uint8_t *key, size_t kl, bool enc,
		  const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
{
	tp_cipher *c = NULL;
	uint8_t *res = NULL;
	size_t rl = 0;
	CK_RV rv = aes_cipher_new(m, key, kl, enc, &c);

	*out_len = 0;
	if (rv == CKR_OK)
		rv = aes_cipher_oneshot(c, in, n, &res, &rl);
	if (rv == CKR_OK) {
		memcpy(out, res, rl);
		*out_len = rl;
		/* The context is unchanged: the same call gives the same. */
		free(res);
		res = NULL;
		CHECK_RV(aes_cipher_oneshot(c, in, n, &res, &rl), CKR_OK);
		CHECK(rl == *out_len && memcmp(res, out, rl) == 0);
	}
	free(res);
	aes_cipher_free(c);
	return rv;
}

/* Multi-part with parts of the given sizes (cycled); checks that each
 * update produces exactly the announced length. */
static CK_RV runm(const CK_MECHANISM *m, const uint8_t *key, size_t kl, bool enc,
		  const uint8_t *in, size_t n, const size_t *parts, size_t n_parts,
		  uint8_t *out, size_t *out_len)
{
	tp_cipher *c = NULL;
	uint8_t *res = NULL, *res2 = NULL;
	size_t rl = 0, rl2 = 0, off = 0, done = 0, i = 0;
	CK_RV rv = aes_cipher_new(m, key, kl, enc, &c);

	*out_len = 0;
	while (rv == CKR_OK && off < n) {
		size_t p = parts[i++ % n_parts], want = 0, got = 0;

		if (p > n - off)
			p = n - off;
		rv = aes_cipher_update_len(c, p, &want);
		if (rv == CKR_OK)
			rv = aes_cipher_update(c, in + off, p, out + done, &got);
		if (rv == CKR_OK)
			CHECK(got == want);
		off += p;
		done += got;
	}
	if (rv == CKR_OK)
		rv = aes_cipher_final(c, &res, &rl);
	if (rv == CKR_OK) {
		/* final does not change the context */
		CHECK_RV(aes_cipher_final(c, &res2, &rl2), CKR_OK);
		CHECK(rl2 == rl && memcmp(res, res2, rl) == 0);
		memcpy(out + done, res, rl);
		*out_len = done + rl;
	}
	free(res);
	free(res2);
	aes_cipher_free(c);
	return rv;
}

static const size_t split_1[] = { 1 };
static const size_t split_mix[] = { 7, 16, 1, 33, 0, 5 };
static const size_t split_big[] = { 1000 };

/* enc(pt) == ct single and multi-part in three splittings, and dec(ct) == pt. */
static void cipher_vector(const char *what, const CK_MECHANISM *m, const char *key_hex,
			  const char *pt_hex, const char *ct_hex)
{
	size_t kl, pl, cl, ol;
	uint8_t *key = hex(key_hex, &kl), *pt = hex(pt_hex, &pl), *ct = hex(ct_hex, &cl);
	uint8_t out[4096];
	const size_t *splits[] = { split_1, split_mix, split_big };
	const size_t nsplits[] = { 1, 6, 1 };

	CHECK_RV(run1(m, key, kl, true, pt, pl, out, &ol), CKR_OK);
	CHECK_MEM(what, out, ol, ct, cl);
	CHECK_RV(run1(m, key, kl, false, ct, cl, out, &ol), CKR_OK);
	CHECK_MEM(what, out, ol, pt, pl);
	if (!aes_is_cipher(m->mechanism) || m->mechanism == CKM_AES_KEY_WRAP ||
	    m->mechanism == CKM_AES_KEY_WRAP_PAD)
		return;
	for (int s = 0; s < 3; s++) {
		CHECK_RV(runm(m, key, kl, true, pt, pl, splits[s], nsplits[s], out, &ol), CKR_OK);
		CHECK_MEM(what, out, ol, ct, cl);
		CHECK_RV(runm(m, key, kl, false, ct, cl, splits[s], nsplits[s], out, &ol), CKR_OK);
		CHECK_MEM(what, out, ol, pt, pl);
	}
}

/* ---- AES modes ------------------------------------------------------------- */

static void test_ecb_cbc(void)
{
	CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
	CK_MECHANISM cbc = { CKM_AES_CBC, hex("000102030405060708090a0b0c0d0e0f", NULL), 16 };
	CK_MECHANISM pad = cbc;
	uint8_t out[256], *key = hex(NIST_KEY128, NULL);
	size_t ol;

	pad.mechanism = CKM_AES_CBC_PAD;
	/* SP 800-38A F.1.1, F.2.1, F.2.5 */
	cipher_vector("ECB-AES128", &ecb, NIST_KEY128, NIST_PT,
		      "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf"
		      "43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4");
	cipher_vector("CBC-AES128", &cbc, NIST_KEY128, NIST_PT,
		      "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
		      "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
	cipher_vector("CBC-AES256", &cbc, NIST_KEY256, NIST_PT,
		      "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
		      "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b");
	/* CBC_PAD of whole blocks = CBC || E(CBC last ^ 16 x 0x10). */
	CHECK_RV(run1(&pad, key, 16, true, hex(NIST_PT, NULL), 64, out, &ol), CKR_OK);
	CHECK(ol == 80);
	CHECK_MEM("CBC_PAD prefix", out, 64,
		  hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
		      "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7", NULL), 64);

	/* Lengths that are not whole blocks. */
	CHECK_RV(run1(&ecb, key, 16, true, out, 15, out, &ol), CKR_DATA_LEN_RANGE);
	CHECK_RV(run1(&cbc, key, 16, true, out, 17, out, &ol), CKR_DATA_LEN_RANGE);
	CHECK_RV(run1(&ecb, key, 16, false, out, 31, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK_RV(run1(&cbc, key, 16, false, out, 1, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK_RV(run1(&pad, key, 16, false, out, 0, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK_RV(run1(&pad, key, 16, false, out, 20, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
	/* Empty data: ECB/CBC give nothing, CBC_PAD one block of padding. */
	CHECK_RV(run1(&ecb, key, 16, true, out, 0, out, &ol), CKR_OK);
	CHECK(ol == 0);
	CHECK_RV(run1(&pad, key, 16, true, out, 0, out, &ol), CKR_OK);
	CHECK(ol == 16);
	{
		uint8_t pt[16];

		CHECK_RV(run1(&pad, key, 16, false, out, 16, pt, &ol), CKR_OK);
		CHECK(ol == 0);
	}
	/* Bad padding: a block that decrypts to ...00 and to ...11 and to
	 * 02 03 (inconsistent). */
	{
		uint8_t blk[16], ct[16], pt[32];
		const uint8_t tails[3][2] = { { 0x05, 0x00 }, { 0x00, 0x11 }, { 0x03, 0x02 } };

		for (int t = 0; t < 3; t++) {
			memset(blk, 0x41, 16);
			blk[14] = tails[t][0];
			blk[15] = tails[t][1];
			CHECK_RV(run1(&cbc, key, 16, true, blk, 16, ct, &ol), CKR_OK);
			CHECK_RV(run1(&pad, key, 16, false, ct, 16, pt, &ol),
				 CKR_ENCRYPTED_DATA_INVALID);
		}
		/* and a good one: 15 bytes + 01 */
		blk[15] = 0x01;
		CHECK_RV(run1(&cbc, key, 16, true, blk, 16, ct, &ol), CKR_OK);
		CHECK_RV(run1(&pad, key, 16, false, ct, 16, pt, &ol), CKR_OK);
		CHECK(ol == 15 && memcmp(pt, blk, 15) == 0);
	}
	/* Multi-part CBC_PAD decryption holds back the last block. */
	{
		tp_cipher *c = NULL;
		size_t n = 99;

		CHECK_RV(aes_cipher_new(&pad, key, 16, false, &c), CKR_OK);
		CHECK_RV(aes_cipher_update_len(c, 16, &n), CKR_OK);
		CHECK(n == 0);
		CHECK_RV(aes_cipher_update_len(c, 17, &n), CKR_OK);
		CHECK(n == 16);
		CHECK_RV(aes_cipher_update_len(c, 32, &n), CKR_OK);
		CHECK(n == 16);
		aes_cipher_free(c);
	}
}

static void test_ctr(void)
{
	CK_AES_CTR_PARAMS p;
	CK_MECHANISM m = { CKM_AES_CTR, &p, sizeof(p) };
	uint8_t out[256], ref[256], *key = hex(NIST_KEY128, NULL), zero[64] = { 0 };
	size_t ol;

	p.counter_bits = 128;
	memcpy(p.cb, hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", NULL), 16);
	/* SP 800-38A F.5.1, F.5.5 (the counter carries into the second byte
	 * from the end: fine with 16 and more counter bits) */
	cipher_vector("CTR-AES128", &m, NIST_KEY128, NIST_PT,
		      "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
		      "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
	p.counter_bits = 16;
	cipher_vector("CTR-AES256", &m, NIST_KEY256, NIST_PT,
		      "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
		      "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6");
	/* Partial last block */
	cipher_vector("CTR-AES128 partial", &m, NIST_KEY128, "6bc1bee22e409f96e93d7e117393172aae",
		      "874d6191b620e3261bef6864990db6ce98");

	/* 8 counter bits starting at 0xfe: two blocks (fe, ff), the byte
	 * above untouched (ECB of the counter blocks); a third block would
	 * make the counter repeat. */
	p.counter_bits = 8;
	memset(p.cb, 0x77, 16);
	p.cb[15] = 0xfe;
	CHECK_RV(run1(&m, key, 16, true, zero, 32, out, &ol), CKR_OK);
	{
		CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
		uint8_t blocks[32];

		memset(blocks, 0x77, 32);
		blocks[15] = 0xfe;
		blocks[31] = 0xff;
		CHECK_RV(run1(&ecb, key, 16, true, blocks, 32, ref, &ol), CKR_OK);
		CHECK_MEM("CTR 8-bit counter", out, 32, ref, 32);
	}
	CHECK_RV(run1(&m, key, 16, true, zero, 33, out, &ol), CKR_DATA_LEN_RANGE);
	/* 9 counter bits at 0x0ff: the carry goes into the second byte. */
	p.counter_bits = 9;
	p.cb[14] = 0x76;
	p.cb[15] = 0xff;
	CHECK_RV(run1(&m, key, 16, true, zero, 32, out, &ol), CKR_OK);
	{
		CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
		uint8_t blocks[32];

		memset(blocks, 0x77, 32);
		blocks[14] = 0x76;
		blocks[15] = 0xff;
		blocks[30] = 0x77;
		blocks[31] = 0x00;
		CHECK_RV(run1(&ecb, key, 16, true, blocks, 32, ref, &ol), CKR_OK);
		CHECK_MEM("CTR 9-bit carry", out, 32, ref, 32);
	}
	/* The spec's example: 2 counter bits starting at 1 allow 3 blocks. */
	p.counter_bits = 2;
	memset(p.cb, 0, 16);
	p.cb[15] = 1;
	CHECK_RV(run1(&m, key, 16, true, zero, 48, out, &ol), CKR_OK);
	CHECK_RV(run1(&m, key, 16, true, zero, 33, out, &ol), CKR_OK);
	CHECK_RV(run1(&m, key, 16, true, zero, 49, out, &ol), CKR_DATA_LEN_RANGE);
	CHECK_RV(run1(&m, key, 16, false, zero, 64, out, &ol), CKR_DATA_LEN_RANGE);
	{
		tp_cipher *c = NULL;
		size_t n;

		CHECK_RV(aes_cipher_new(&m, key, 16, true, &c), CKR_OK);
		CHECK_RV(aes_cipher_update(c, zero, 40, out, &n), CKR_OK);
		CHECK(n == 40);
		CHECK_RV(aes_cipher_update_len(c, 8, &n), CKR_OK);
		CHECK_RV(aes_cipher_update_len(c, 9, &n), CKR_DATA_LEN_RANGE);
		CHECK_RV(aes_cipher_update(c, zero, 8, out, &n), CKR_OK);
		CHECK_RV(aes_cipher_update(c, zero, 1, out, &n), CKR_DATA_LEN_RANGE);
		aes_cipher_free(c);
	}
	/* 64 counter bits at 2^64 - 1: one block. */
	p.counter_bits = 64;
	memset(p.cb + 8, 0xff, 8);
	CHECK_RV(run1(&m, key, 16, true, zero, 16, out, &ol), CKR_OK);
	CHECK_RV(run1(&m, key, 16, true, zero, 17, out, &ol), CKR_DATA_LEN_RANGE);
	/* 65 bits with the top counter bit clear: plenty. */
	p.counter_bits = 65;
	p.cb[7] = 0xfe;
	CHECK_RV(run1(&m, key, 16, true, zero, 64, out, &ol), CKR_OK);
	p.cb[7] = 0x01;   /* top counter bit set, low 64 all ones: one block */
	CHECK_RV(run1(&m, key, 16, true, zero, 17, out, &ol), CKR_DATA_LEN_RANGE);
}

/* GCM parameters in both layouts. */
typedef struct gcm240 {
	unsigned char *iv;
	unsigned long iv_len;
	unsigned char *aad;
	unsigned long aad_len;
	unsigned long tag_bits;
} gcm240;

static void gcm_case(const char *what, const char *key, const char *iv, const char *aad,
		     const char *pt, const char *ct_tag)
{
	size_t ivl, al;
	uint8_t *ivb = hex(iv, &ivl), *ab = hex(aad, &al);
	CK_GCM_PARAMS p30 = { ivb, ivl, ivl * 8, al ? ab : NULL, al, 128 };
	gcm240 p240 = { ivb, ivl, al ? ab : NULL, al, 128 };
	CK_MECHANISM m30 = { CKM_AES_GCM, &p30, sizeof(p30) };
	CK_MECHANISM m240 = { CKM_AES_GCM, &p240, sizeof(p240) };

	cipher_vector(what, &m30, key, pt, ct_tag);
	cipher_vector(what, &m240, key, pt, ct_tag);
	p30.iv_bits = 0;   /* "do not use ulIvBits": 0 is fine */
	cipher_vector(what, &m30, key, pt, ct_tag);
}

static void test_gcm(void)
{
	const char *K = "feffe9928665731c6d6a8f9467308308";
	const char *P = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
			"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
	const char *A = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
	uint8_t key[16] = { 0 }, out[256], pt[256], ct[256];
	size_t ol, cl;
	uint8_t iv[12] = { 0 };

	/* GCM specification test cases 2, 4, 5 (8-byte IV), 6 (60-byte IV) */
	gcm_case("GCM tc2", "00000000000000000000000000000000", "000000000000000000000000", "",
		 "00000000000000000000000000000000",
		 "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf");
	gcm_case("GCM tc4", K, "cafebabefacedbaddecaf888", A, P,
		 "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
		 "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
		 "5bc94fbc3221a5db94fae95ae7121a47");
	gcm_case("GCM tc5", K, "cafebabefacedbad", A, P,
		 "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423"
		 "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598"
		 "3612d2e79e3b0785561be14aaca2fccb");
	gcm_case("GCM tc6", K,
		 "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
		 "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b", A, P,
		 "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7"
		 "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5"
		 "619cc5aefffe0bfa462af43c1699d050");

	/* Tag lengths: a 96-bit tag is the 128-bit tag's first 12 bytes. */
	{
		CK_GCM_PARAMS p = { hex("cafebabefacedbaddecaf888", NULL), 12, 96,
				    hex(A, NULL), 20, 96 };
		CK_MECHANISM m = { CKM_AES_GCM, &p, sizeof(p) };
		uint8_t *k = hex(K, NULL);
		size_t pl;
		uint8_t *pp = hex(P, &pl);

		CHECK_RV(run1(&m, k, 16, true, pp, pl, ct, &cl), CKR_OK);
		CHECK(cl == pl + 12);
		CHECK_MEM("GCM 96-bit tag", ct + pl, 12,
			  hex("5bc94fbc3221a5db94fae95a", NULL), 12);
		CHECK_RV(run1(&m, k, 16, false, ct, cl, out, &ol), CKR_OK);
		CHECK_MEM("GCM 96-bit tag decrypt", out, ol, pp, pl);
		/* Tampered ciphertext, AAD and tag */
		ct[0] ^= 1;
		CHECK_RV(run1(&m, k, 16, false, ct, cl, out, &ol), CKR_ENCRYPTED_DATA_INVALID);
		ct[0] ^= 1;
		ct[cl - 1] ^= 0x80;
		CHECK_RV(run1(&m, k, 16, false, ct, cl, out, &ol), CKR_ENCRYPTED_DATA_INVALID);
		ct[cl - 1] ^= 0x80;
		p.aad_len = 19;
		CHECK_RV(run1(&m, k, 16, false, ct, cl, out, &ol), CKR_ENCRYPTED_DATA_INVALID);
		/* Shorter than the tag */
		CHECK_RV(run1(&m, k, 16, false, ct, 11, out, &ol), CKR_ENCRYPTED_DATA_LEN_RANGE);
		CHECK_RV(runm(&m, k, 16, false, ct, 11, split_1, 1, out, &ol),
			 CKR_ENCRYPTED_DATA_LEN_RANGE);
	}
	/* Empty plaintext: the tag alone. */
	{
		CK_GCM_PARAMS p = { iv, 12, 96, NULL, 0, 128 };
		CK_MECHANISM m = { CKM_AES_GCM, &p, sizeof(p) };

		CHECK_RV(run1(&m, key, 16, true, pt, 0, ct, &cl), CKR_OK);
		CHECK_MEM("GCM tc1", ct, cl, hex("58e2fccefa7e3061367f1d57a4e7455a", NULL), 16);
		CHECK_RV(run1(&m, key, 16, false, ct, cl, out, &ol), CKR_OK);
		CHECK(ol == 0);
	}
}

static void test_key_wrap(void)
{
	CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
	CK_MECHANISM kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	uint8_t out[256], ct[256], *k = hex("000102030405060708090A0B0C0D0E0F", NULL);
	size_t ol, cl;

	/* RFC 3394 4.1 and 4.6 */
	cipher_vector("RFC 3394 4.1", &kw, "000102030405060708090A0B0C0D0E0F",
		      "00112233445566778899AABBCCDDEEFF",
		      "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
	cipher_vector("RFC 3394 4.6", &kw,
		      "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
		      "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
		      "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43B"
		      "FB988B9B7A02DD21");
	/* The default IV given explicitly: the same. */
	kw.pParameter = hex("A6A6A6A6A6A6A6A6", NULL);
	kw.ulParameterLen = 8;
	cipher_vector("RFC 3394 4.1 explicit IV", &kw, "000102030405060708090A0B0C0D0E0F",
		      "00112233445566778899AABBCCDDEEFF",
		      "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
	/* Another IV: different output, and unwrapping needs the same IV. */
	kw.pParameter = hex("0102030405060708", NULL);
	CHECK_RV(run1(&kw, k, 16, true, hex("00112233445566778899AABBCCDDEEFF", NULL), 16, ct,
		      &cl), CKR_OK);
	CHECK(cl == 24 && memcmp(ct, hex("1FA68B0A8112B447", NULL), 8) != 0);
	CHECK_RV(run1(&kw, k, 16, false, ct, cl, out, &ol), CKR_OK);
	kw.pParameter = NULL;
	kw.ulParameterLen = 0;
	CHECK_RV(run1(&kw, k, 16, false, ct, cl, out, &ol), CKR_ENCRYPTED_DATA_INVALID);
	/* Lengths */
	CHECK_RV(run1(&kw, k, 16, true, out, 8, ct, &cl), CKR_DATA_LEN_RANGE);
	CHECK_RV(run1(&kw, k, 16, true, out, 20, ct, &cl), CKR_DATA_LEN_RANGE);
	CHECK_RV(run1(&kw, k, 16, false, out, 16, ct, &cl), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK_RV(run1(&kw, k, 16, false, out, 25, ct, &cl), CKR_ENCRYPTED_DATA_LEN_RANGE);
	/* RFC 5649 section 6 */
	cipher_vector("RFC 5649 20 bytes", &kwp, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
		      "c37b7e6492584340bed12207808941155068f738",
		      "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
	cipher_vector("RFC 5649 7 bytes", &kwp, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
		      "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f");
	kwp.pParameter = hex("A65959A6", NULL);
	kwp.ulParameterLen = 4;
	cipher_vector("RFC 5649 explicit AIV", &kwp,
		      "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "466f7250617369",
		      "afbeb0f07dfbf5419200f2ccb50bb24f");
	kwp.pParameter = NULL;
	kwp.ulParameterLen = 0;
	CHECK_RV(run1(&kwp, k, 16, true, out, 0, ct, &cl), CKR_DATA_LEN_RANGE);
	CHECK_RV(run1(&kwp, k, 16, false, out, 8, ct, &cl), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK_RV(run1(&kwp, k, 16, false, out, 17, ct, &cl), CKR_ENCRYPTED_DATA_LEN_RANGE);
	CHECK_RV(run1(&kwp, k, 16, true, hex("466f7250617369", NULL), 7, ct, &cl), CKR_OK);
	ct[3] ^= 4;
	CHECK_RV(run1(&kwp, k, 16, false, ct, cl, out, &ol), CKR_ENCRYPTED_DATA_INVALID);
	/* Single-part only */
	{
		tp_cipher *c = NULL;
		uint8_t *res = NULL;
		size_t n;

		CHECK_RV(aes_cipher_new(&kwp, k, 16, true, &c), CKR_OK);
		CHECK(!aes_cipher_multipart(c));
		CHECK_RV(aes_cipher_update_len(c, 8, &n), CKR_FUNCTION_NOT_SUPPORTED);
		CHECK_RV(aes_cipher_final(c, &res, &n), CKR_FUNCTION_NOT_SUPPORTED);
		aes_cipher_free(c);
	}
}

static void test_params(void)
{
	uint8_t iv[16] = { 0 }, key[32] = { 0 };
	CK_AES_CTR_PARAMS ctr = { 0, { 0 } };
	CK_GCM_PARAMS g = { iv, 12, 96, NULL, 0, 128 };
	CK_ULONG gen = 4;
	struct {
		CK_MECHANISM m;
		CK_RV want;
	} cases[] = {
		{ { CKM_AES_ECB, iv, 16 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_ECB, iv, 0 }, CKR_OK },
		{ { CKM_AES_CBC, NULL, 16 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_CBC, iv, 15 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_CBC, iv, 17 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_CBC_PAD, iv, 0 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_CBC_PAD, iv, 16 }, CKR_OK },
		{ { CKM_AES_CTR, &ctr, sizeof(ctr) }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_CTR, &ctr, sizeof(ctr) - 1 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_GCM, &g, sizeof(g) - 1 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_GCM, &g, 32 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_GCM, NULL, sizeof(g) }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_GCM, &g, sizeof(g) }, CKR_OK },
		{ { CKM_AES_KEY_WRAP, iv, 4 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_KEY_WRAP, NULL, 8 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_KEY_WRAP, iv, 8 }, CKR_OK },
		{ { CKM_AES_KEY_WRAP_PAD, iv, 8 }, CKR_MECHANISM_PARAM_INVALID },
		{ { CKM_AES_KEY_WRAP_PAD, iv, 4 }, CKR_OK },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_cipher *c = NULL;
		CK_RV rv = aes_cipher_new(&cases[i].m, key, 16, true, &c);

		if (rv != cases[i].want)
			fprintf(stderr, "param case %zu\n", i);
		CHECK_RV(rv, cases[i].want);
		CHECK((rv == CKR_OK) == (c != NULL));
		aes_cipher_free(c);
	}
	/* CTR counter bits 1..128 */
	{
		CK_MECHANISM m = { CKM_AES_CTR, &ctr, sizeof(ctr) };

		ctr.counter_bits = 129;
		CHECK_RV(aes_check_param(&m, NULL), CKR_MECHANISM_PARAM_INVALID);
		ctr.counter_bits = 1;
		CHECK_RV(aes_check_param(&m, NULL), CKR_OK);
		ctr.counter_bits = 128;
		CHECK_RV(aes_check_param(&m, NULL), CKR_OK);
	}
	/* GCM fields */
	{
		CK_MECHANISM m = { CKM_AES_GCM, &g, sizeof(g) };

		g.iv_bits = 95;
		CHECK_RV(aes_check_param(&m, NULL), CKR_MECHANISM_PARAM_INVALID);
		g.iv_bits = 96;
		g.iv_len = 0;
		CHECK_RV(aes_check_param(&m, NULL), CKR_MECHANISM_PARAM_INVALID);
		g.iv_len = 129;
		g.iv_bits = 0;
		CHECK_RV(aes_check_param(&m, NULL), CKR_MECHANISM_PARAM_INVALID);
		g.iv_len = 12;
		g.iv_ptr = NULL;
		CHECK_RV(aes_check_param(&m, NULL), CKR_MECHANISM_PARAM_INVALID);
		g.iv_ptr = iv;
		g.aad_len = 5;
		CHECK_RV(aes_check_param(&m, NULL), CKR_MECHANISM_PARAM_INVALID);
		g.aad_len = 0;
		for (unsigned long t = 0; t <= 136; t++) {
			g.tag_bits = t;
			CHECK_RV(aes_check_param(&m, NULL), (t && t <= 128 && t % 8 == 0)
							       ? CKR_OK
							       : CKR_MECHANISM_PARAM_INVALID);
		}
	}
	/* Key sizes */
	{
		CK_MECHANISM m = { CKM_AES_ECB, NULL, 0 };
		tp_cipher *c = NULL;

		for (size_t kl = 0; kl <= 33; kl++) {
			CK_RV rv = aes_cipher_new(&m, key, kl, true, &c);

			CHECK_RV(rv, (kl == 16 || kl == 24 || kl == 32) ? CKR_OK : CKR_KEY_SIZE_RANGE);
			aes_cipher_free(c);
			c = NULL;
		}
	}
	/* MAC parameters */
	{
		CK_MECHANISM m = { CKM_SHA256_HMAC_GENERAL, &gen, sizeof(gen) };

		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_OK);
		m.ulParameterLen = 4;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_MECHANISM_PARAM_INVALID);
		m.ulParameterLen = sizeof(gen);
		gen = 0;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_MECHANISM_PARAM_INVALID);
		gen = 33;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_MECHANISM_PARAM_INVALID);
		gen = 32;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_OK);
		m.mechanism = CKM_AES_CMAC_GENERAL;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_MECHANISM_PARAM_INVALID);
		gen = 16;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_OK);
		m.mechanism = CKM_SHA256_HMAC;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_MECHANISM_PARAM_INVALID);
		m.ulParameterLen = 0;
		CHECK_RV(mac_check_param(&m, &(const char *){ NULL }), CKR_OK);
	}
	/* Digests take no parameter */
	{
		CK_MECHANISM m = { CKM_SHA256, iv, 1 };
		tp_digest *d = NULL;

		CHECK_RV(digest_new(&m, &d), CKR_MECHANISM_PARAM_INVALID);
		CHECK(d == NULL);
	}
}

/* ---- MACs and digests ------------------------------------------------------ */

static void mac_vector(const char *what, CK_MECHANISM_TYPE type, CK_ULONG general,
		       const uint8_t *key, size_t kl, const uint8_t *msg, size_t ml,
		       const char *want_hex)
{
	CK_MECHANISM m = { type, general ? &general : NULL, general ? sizeof(general) : 0 };
	size_t wl;
	uint8_t *want = hex(want_hex, &wl), out[64];
	tp_mac *mc = NULL;

	CHECK_RV(mac_new(&m, key, kl, &mc), CKR_OK);
	if (!mc)
		return;
	CHECK(mac_len(mc) == wl);
	CHECK_RV(mac_update(mc, msg, ml), CKR_OK);
	CHECK_RV(mac_final(mc, out), CKR_OK);
	CHECK_MEM(what, out, mac_len(mc), want, wl);
	mac_free(mc);
	/* byte by byte, with empty updates between */
	mc = NULL;
	CHECK_RV(mac_new(&m, key, kl, &mc), CKR_OK);
	for (size_t i = 0; i < ml; i++) {
		CHECK_RV(mac_update(mc, msg + i, 1), CKR_OK);
		CHECK_RV(mac_update(mc, msg, 0), CKR_OK);
	}
	CHECK_RV(mac_final(mc, out), CKR_OK);
	CHECK_MEM(what, out, wl, want, wl);
	mac_free(mc);
}

static void test_macs(void)
{
	uint8_t k0b[20], k0c[20], *nk = hex(NIST_KEY128, NULL), *pt = hex(NIST_PT, NULL);
	const uint8_t *hi = (const uint8_t *)"Hi There";

	memset(k0b, 0x0b, 20);
	memset(k0c, 0x0c, 20);
	/* RFC 4231 test cases 1, 2, 5; RFC 2202 test case 1 */
	mac_vector("HMAC-SHA1", CKM_SHA_1_HMAC, 0, k0b, 20, hi, 8,
		   "b617318655057264e28bc0b6fb378c8ef146be00");
	mac_vector("HMAC-SHA224", CKM_SHA224_HMAC, 0, k0b, 20, hi, 8,
		   "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22");
	mac_vector("HMAC-SHA256", CKM_SHA256_HMAC, 0, k0b, 20, hi, 8,
		   "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	mac_vector("HMAC-SHA384", CKM_SHA384_HMAC, 0, k0b, 20, hi, 8,
		   "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
		   "faea9ea9076ede7f4af152e8b2fa9cb6");
	mac_vector("HMAC-SHA512", CKM_SHA512_HMAC, 0, k0b, 20, hi, 8,
		   "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
		   "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
	mac_vector("HMAC-SHA256 Jefe", CKM_SHA256_HMAC, 0, (const uint8_t *)"Jefe", 4,
		   (const uint8_t *)"what do ya want for nothing?", 28,
		   "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	mac_vector("HMAC-SHA256-GENERAL 16", CKM_SHA256_HMAC_GENERAL, 16, k0c, 20,
		   (const uint8_t *)"Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
	mac_vector("HMAC-SHA1-GENERAL 10", CKM_SHA_1_HMAC_GENERAL, 10, k0b, 20, hi, 8,
		   "b617318655057264e28b");
	mac_vector("HMAC-SHA512-GENERAL 64", CKM_SHA512_HMAC_GENERAL, 64, k0b, 20, hi, 8,
		   "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
		   "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
	/* RFC 4493 section 4 */
	mac_vector("CMAC empty", CKM_AES_CMAC, 0, nk, 16, pt, 0, "bb1d6929e95937287fa37d129b756746");
	mac_vector("CMAC 16", CKM_AES_CMAC, 0, nk, 16, pt, 16, "070a16b46b4d4144f79bdd9dd04a287c");
	mac_vector("CMAC 40", CKM_AES_CMAC, 0, nk, 16, pt, 40, "dfa66747de9ae63030ca32611497c827");
	mac_vector("CMAC 64", CKM_AES_CMAC, 0, nk, 16, pt, 64, "51f0bebf7e3b9d92fc49741779363cfe");
	mac_vector("CMAC-GENERAL 4", CKM_AES_CMAC_GENERAL, 4, nk, 16, pt, 64, "51f0bebf");
	/* CBC-MAC of one block is its ECB encryption (SP 800-38A F.1.1);
	 * CKM_AES_MAC returns the first half. */
	mac_vector("AES-MAC 1 block", CKM_AES_MAC, 0, nk, 16, pt, 16, "3ad77bb40d7a3660");
	mac_vector("AES-MAC-GENERAL 16", CKM_AES_MAC_GENERAL, 16, nk, 16, pt, 16,
		   "3ad77bb40d7a3660a89ecaf32466ef97");
	/* Several blocks: the last block of CBC with a zero IV (computed
	 * with OpenSSL directly); a partial block is zero padded; empty data
	 * is one zero block. */
	{
		uint8_t data[80] = { 0 }, ref[80];
		char want[33];
		int l1 = 0, l2 = 0;
		EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
		static const uint8_t zero[16];

		memcpy(data, pt, 64);
		data[64] = 0x99;   /* 65 bytes of data, then zero padding */
		EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, nk, zero);
		EVP_CIPHER_CTX_set_padding(c, 0);
		EVP_EncryptUpdate(c, ref, &l1, data, 80);
		EVP_EncryptFinal_ex(c, ref + l1, &l2);
		for (int i = 0; i < 16; i++)
			sprintf(want + 2 * i, "%02x", ref[64 + i]);
		mac_vector("AES-MAC-GENERAL 65 bytes", CKM_AES_MAC_GENERAL, 16, nk, 16, data, 65,
			   want);
		EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, nk, zero);
		EVP_CIPHER_CTX_set_padding(c, 0);
		EVP_EncryptUpdate(c, ref, &l1, zero, 16);
		for (int i = 0; i < 8; i++)
			sprintf(want + 2 * i, "%02x", ref[i]);
		mac_vector("AES-MAC empty", CKM_AES_MAC, 0, nk, 16, data, 0, want);
		EVP_CIPHER_CTX_free(c);
	}
	/* AES MACs need AES key sizes */
	{
		CK_MECHANISM m = { CKM_AES_CMAC, NULL, 0 };
		tp_mac *mc = NULL;

		CHECK_RV(mac_new(&m, nk, 20, &mc), CKR_KEY_SIZE_RANGE);
		m.mechanism = CKM_AES_MAC;
		CHECK_RV(mac_new(&m, nk, 15, &mc), CKR_KEY_SIZE_RANGE);
		CHECK(mc == NULL);
	}
}

static void digest_vector(CK_MECHANISM_TYPE type, const char *msg, const char *want_hex)
{
	CK_MECHANISM m = { type, NULL, 0 };
	tp_digest *d = NULL;
	size_t wl;
	uint8_t *want = hex(want_hex, &wl), out[64];

	CHECK_RV(digest_new(&m, &d), CKR_OK);
	if (!d)
		return;
	CHECK(digest_len(d) == wl);
	for (const char *p = msg; *p; p++)
		CHECK_RV(digest_update(d, (const uint8_t *)p, 1), CKR_OK);
	CHECK_RV(digest_final(d, out), CKR_OK);
	CHECK_MEM(mech_name(type), out, wl, want, wl);
	digest_free(d);
}

static void test_digests(void)
{
	/* FIPS 180-4 examples ("abc", and the two-block message) */
	digest_vector(CKM_SHA_1, "abc", "a9993e364706816aba3e25717850c26c9cd0d89d");
	digest_vector(CKM_SHA224, "abc", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7");
	digest_vector(CKM_SHA256, "abc",
		      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	digest_vector(CKM_SHA384, "abc",
		      "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
		      "8086072ba1e7cc2358baeca134c825a7");
	digest_vector(CKM_SHA512, "abc",
		      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
		      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
	digest_vector(CKM_SHA256, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	digest_vector(CKM_SHA256, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* ---- the registry's key rules --------------------------------------------- */

static void test_registry(void)
{
	const tp_mech *hm = mech_find(CKM_SHA256_HMAC), *cbc = mech_find(CKM_AES_CBC_PAD);

	CHECK(hm && cbc);
	if (!hm || !cbc)
		return;
	CHECK_RV(mech_check_key(hm, CKK_GENERIC_SECRET, 32), CKR_OK);
	CHECK_RV(mech_check_key(hm, CKK_AES, 32), CKR_OK);
	CHECK_RV(mech_check_key(hm, CKK_SHA256_HMAC, 5), CKR_OK);
	CHECK_RV(mech_check_key(hm, CKK_SHA_1_HMAC, 20), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(mech_check_key(hm, CKK_EC, 32), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(mech_check_key(hm, CKK_GENERIC_SECRET, 0), CKR_KEY_SIZE_RANGE);
	CHECK_RV(mech_check_key(hm, CKK_GENERIC_SECRET, 8193), CKR_KEY_SIZE_RANGE);
	CHECK_RV(mech_check_key(cbc, CKK_AES, 24), CKR_OK);
	CHECK_RV(mech_check_key(cbc, CKK_AES, 20), CKR_KEY_SIZE_RANGE);
	CHECK_RV(mech_check_key(cbc, CKK_GENERIC_SECRET, 16), CKR_KEY_TYPE_INCONSISTENT);
	CHECK(strcmp(mech_name(CKM_AES_GCM), "CKM_AES_GCM") == 0);
	CHECK(strcmp(mech_name(0x12345), "mechanism 0x12345") == 0);
	/* Every registered soft mechanism is implemented by one of the files. */
	for (size_t i = 0; i < mech_count(); i++) {
		const tp_mech *m = mech_at(i);

		if (m->flags & (CKF_ENCRYPT | CKF_DECRYPT) && m->key_types)
			CHECK(aes_is_cipher(m->type));
		if (m->flags & (CKF_SIGN | CKF_VERIFY))
			CHECK(mac_is_mac(m->type));
		if (m->flags & CKF_DIGEST)
			CHECK(digest_is_digest(m->type));
		CHECK(m->flags & CKF_HW);
	}
}

/* ---- OpenSSL cross-checks of random sizes ---------------------------------- */

/* The reference: EVP in the default context, padding as the mode wants. */
static size_t ref_encrypt(const char *mode, const uint8_t *key, size_t kl, const uint8_t *iv,
			  const uint8_t *in, size_t n, bool pad, uint8_t *out)
{
	char name[32];
	EVP_CIPHER *c;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0;

	snprintf(name, sizeof(name), "AES-%zu-%s", kl * 8, mode);
	c = EVP_CIPHER_fetch(NULL, name, NULL);
	EVP_EncryptInit_ex2(ctx, c, key, iv, NULL);
	EVP_CIPHER_CTX_set_padding(ctx, pad);
	EVP_EncryptUpdate(ctx, out, &l1, in, (int)n);
	EVP_EncryptFinal_ex(ctx, out + l1, &l2);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return (size_t)(l1 + l2);
}

static size_t rnd(size_t max)
{
	uint32_t r;

	RAND_bytes((uint8_t *)&r, sizeof(r));
	return max ? r % max : 0;
}

static void test_cross(void)
{
	static uint8_t in[5000], out[5200], ref[5200], back[5200];
	static const size_t kls[3] = { 16, 24, 32 };

	for (int round = 0; round < 60; round++) {
		size_t kl = kls[round % 3], n = rnd(4000), ol, rl, bl;
		size_t blocks = n / 16 * 16;
		uint8_t key[32], iv[16];
		size_t parts[3] = { rnd(100) + 1, rnd(20) + 1, rnd(700) + 1 };
		CK_AES_CTR_PARAMS cp;
		CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 }, cbc = { CKM_AES_CBC, iv, 16 };
		CK_MECHANISM pad = { CKM_AES_CBC_PAD, iv, 16 }, ctr = { CKM_AES_CTR, &cp, sizeof(cp) };

		RAND_bytes(key, sizeof(key));
		RAND_bytes(iv, sizeof(iv));
		RAND_bytes(in, n);
		cp.counter_bits = 128;
		memcpy(cp.cb, iv, 16);

		rl = ref_encrypt("ECB", key, kl, NULL, in, blocks, false, ref);
		CHECK_RV(runm(&ecb, key, kl, true, in, blocks, parts, 3, out, &ol), CKR_OK);
		CHECK_MEM("ECB cross", out, ol, ref, rl);
		rl = ref_encrypt("CBC", key, kl, iv, in, blocks, false, ref);
		CHECK_RV(run1(&cbc, key, kl, true, in, blocks, out, &ol), CKR_OK);
		CHECK_MEM("CBC cross", out, ol, ref, rl);
		rl = ref_encrypt("CBC", key, kl, iv, in, n, true, ref);
		CHECK_RV(runm(&pad, key, kl, true, in, n, parts, 3, out, &ol), CKR_OK);
		CHECK_MEM("CBC_PAD cross", out, ol, ref, rl);
		CHECK_RV(runm(&pad, key, kl, false, out, ol, parts + 1, 2, back, &bl), CKR_OK);
		CHECK_MEM("CBC_PAD back", back, bl, in, n);
		rl = ref_encrypt("CTR", key, kl, iv, in, n, false, ref);
		CHECK_RV(runm(&ctr, key, kl, true, in, n, parts, 3, out, &ol), CKR_OK);
		CHECK_MEM("CTR cross", out, ol, ref, rl);

		/* GCM: EVP reference with AAD and a random tag length */
		{
			uint8_t aad[64];
			size_t al = rnd(64), tl = 4 + rnd(13);
			CK_GCM_PARAMS gp = { iv, 12, 96, aad, al, tl * 8 };
			CK_MECHANISM gcm = { CKM_AES_GCM, &gp, sizeof(gp) };
			EVP_CIPHER *c;
			EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
			char name[32];
			int l = 0;

			RAND_bytes(aad, sizeof(aad));
			snprintf(name, sizeof(name), "AES-%zu-GCM", kl * 8);
			c = EVP_CIPHER_fetch(NULL, name, NULL);
			EVP_EncryptInit_ex2(ctx, c, key, iv, NULL);
			EVP_EncryptUpdate(ctx, NULL, &l, aad, (int)al);
			EVP_EncryptUpdate(ctx, ref, &l, in, (int)n);
			EVP_EncryptFinal_ex(ctx, ref + n, &l);
			EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)tl, ref + n);
			EVP_CIPHER_CTX_free(ctx);
			EVP_CIPHER_free(c);
			CHECK_RV(runm(&gcm, key, kl, true, in, n, parts, 3, out, &ol), CKR_OK);
			CHECK_MEM("GCM cross", out, ol, ref, n + tl);
			CHECK_RV(runm(&gcm, key, kl, false, out, ol, parts, 3, back, &bl), CKR_OK);
			CHECK_MEM("GCM back", back, bl, in, n);
		}
		/* Key wraps: OpenSSL's wrap ciphers directly */
		{
			CK_MECHANISM kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
			size_t wn = 1 + rnd(500);
			EVP_CIPHER *c;
			EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
			char name[32];
			int l = 0;

			snprintf(name, sizeof(name), "AES-%zu-WRAP-PAD", kl * 8);
			c = EVP_CIPHER_fetch(NULL, name, NULL);
			EVP_EncryptInit_ex2(ctx, c, key, NULL, NULL);
			EVP_EncryptUpdate(ctx, ref, &l, in, (int)wn);
			EVP_CIPHER_CTX_free(ctx);
			EVP_CIPHER_free(c);
			CHECK_RV(run1(&kwp, key, kl, true, in, wn, out, &ol), CKR_OK);
			CHECK_MEM("KWP cross", out, ol, ref, (size_t)l);
			CHECK_RV(run1(&kwp, key, kl, false, out, ol, back, &bl), CKR_OK);
			CHECK_MEM("KWP back", back, bl, in, wn);
		}
		/* HMAC-SHA256 with a random key length against EVP_Q_mac */
		{
			CK_MECHANISM hm = { CKM_SHA256_HMAC, NULL, 0 };
			tp_mac *mc = NULL;
			size_t hl = 0, kn = 1 + rnd(200);
			uint8_t hk[200], want[32];

			RAND_bytes(hk, sizeof(hk));
			EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hk, kn, in, n, want,
				  sizeof(want), &hl);
			CHECK_RV(mac_new(&hm, hk, kn, &mc), CKR_OK);
			CHECK_RV(mac_update(mc, in, n / 2), CKR_OK);
			CHECK_RV(mac_update(mc, in + n / 2, n - n / 2), CKR_OK);
			CHECK_RV(mac_final(mc, out), CKR_OK);
			CHECK_MEM("HMAC cross", out, 32, want, hl);
			mac_free(mc);
		}
	}
}

int main(void)
{
	test_ecb_cbc();
	test_ctr();
	test_gcm();
	test_key_wrap();
	test_params();
	test_macs();
	test_digests();
	test_registry();
	test_cross();
	fprintf(stderr, "test_mech: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
