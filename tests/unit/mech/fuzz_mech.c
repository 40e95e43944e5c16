/* libFuzzer target for the soft-key mechanisms' parameter parsing and
 * data paths (mech/aes.c, mech/mac.c).  The input chooses a mechanism, a
 * parameter (length, content: IV and AAD lengths, counter bits, tag bits,
 * MAC lengths, both CK_GCM_PARAMS layouts), a key size, a direction and how
 * to split the data.  Properties checked (abort on violation):
 *   - a parameter is accepted or refused with CKR_MECHANISM_PARAM_INVALID,
 *     never anything else, never a crash;
 *   - single-part and multi-part give the same result and CK_RV;
 *   - an accepted encryption decrypts back to the input;
 *   - a MAC computed in one part equals the MAC computed in pieces.
 * Build: meson with CC=clang (tests/unit/mech/meson.build). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mech/aes.h"
#include "mech/mac.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

static const CK_MECHANISM_TYPE ciphers[] = {
	CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_CTR,
	CKM_AES_GCM, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD,
};
static const CK_MECHANISM_TYPE macs[] = {
	CKM_AES_MAC, CKM_AES_MAC_GENERAL, CKM_AES_CMAC, CKM_AES_CMAC_GENERAL,
	CKM_SHA_1_HMAC_GENERAL, CKM_SHA256_HMAC, CKM_SHA512_HMAC_GENERAL,
};

typedef struct gcm240 {
	unsigned char *iv;
	unsigned long iv_len;
	unsigned char *aad;
	unsigned long aad_len;
	unsigned long tag_bits;
} gcm240;

/* Everything a parameter may point into: always 512 valid bytes. */
static uint8_t pool[512];

static CK_RV crypt_all(const CK_MECHANISM *m, const uint8_t *key, size_t kl, bool enc,
		       const uint8_t *in, size_t n, size_t split, uint8_t **out, size_t *out_len,
		       CK_RV *multi_rv)
{
	tp_cipher *c = NULL;
	CK_RV rv = aes_cipher_new(m, key, kl, enc, &c);

	*out = NULL;
	*out_len = 0;
	*multi_rv = rv;
	if (rv != CKR_OK)
		return rv;
	rv = aes_cipher_oneshot(c, in, n, out, out_len);
	if (aes_cipher_multipart(c)) {
		uint8_t *buf = malloc(n + 64), *tail = NULL;
		size_t done = 0, off = 0, tl = 0;
		CK_RV mrv = CKR_OK;

		REQUIRE(buf);
		while (mrv == CKR_OK && off < n) {
			size_t p = n - off < split ? n - off : split, want = 0, got = 0;

			mrv = aes_cipher_update_len(c, p, &want);
			if (mrv == CKR_OK) {
				REQUIRE(done + want <= n + 64);
				mrv = aes_cipher_update(c, in + off, p, buf + done, &got);
				if (mrv == CKR_OK)
					REQUIRE(got == want);
			}
			done += got;
			off += p;
		}
		if (mrv == CKR_OK)
			mrv = aes_cipher_final(c, &tail, &tl);
		*multi_rv = mrv;
		if (mrv == CKR_OK && rv == CKR_OK)
			REQUIRE(done + tl == *out_len && memcmp(buf, *out, done) == 0 &&
				(tl == 0 || memcmp(tail, *out + done, tl) == 0));
		free(tail);
		free(buf);
	} else {
		*multi_rv = rv;
	}
	aes_cipher_free(c);
	return rv;
}

static void fuzz_cipher(const uint8_t *d, size_t size)
{
	CK_MECHANISM m = { ciphers[d[0] % 7], NULL, 0 };
	static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	size_t kl = 16 + 8 * (d[1] % 3), split = 1 + d[2] % 40;
	bool enc = d[3] & 1;
	CK_AES_CTR_PARAMS ctr;
	CK_GCM_PARAMS g30;
	gcm240 g240;
	/* The parameter lives in a buffer at least as long as any
	 * ulParameterLen chosen below (a caller lying about the length of
	 * its own buffer is beyond any module's defence). */
	_Alignas(16) uint8_t pbuf[64] = { 0 };
	uint8_t *out = NULL, *back = NULL;
	size_t ol = 0, bl = 0;
	CK_RV rv, mrv, brv, bmrv;

	switch (m.mechanism) {
	case CKM_AES_CTR:
		ctr.counter_bits = d[4];
		memcpy(ctr.cb, pool, 16);
		ctr.cb[15] = d[5];
		memcpy(pbuf, &ctr, sizeof(ctr));
		m.pParameter = pbuf;
		m.ulParameterLen = d[6] & 1 ? sizeof(ctr) : d[6] % 32;
		break;
	case CKM_AES_GCM:
		if (d[6] & 1) {
			g30 = (CK_GCM_PARAMS){ d[7] & 1 ? NULL : pool, d[4] % 140, d[5],
					       d[7] & 2 ? NULL : pool + 128, d[8] % 300, d[9] };
			if (d[7] & 4)
				g30.iv_bits = 8 * g30.iv_len;
			memcpy(pbuf, &g30, sizeof(g30));
			m.pParameter = pbuf;
			m.ulParameterLen = d[7] & 8 ? sizeof(g30) : d[10] % 64;
		} else {
			g240 = (gcm240){ d[7] & 1 ? NULL : pool, d[4] % 140,
					 d[7] & 2 ? NULL : pool + 128, d[8] % 300, d[9] };
			memcpy(pbuf, &g240, sizeof(g240));
			m.pParameter = pbuf;
			m.ulParameterLen = d[7] & 8 ? sizeof(g240) : d[10] % 64;
		}
		break;
	default:
		m.pParameter = d[7] & 1 ? NULL : pool;
		m.ulParameterLen = d[4] & 0x80 ? d[4] & 0x1f : (d[4] & 1 ? 16 : d[4] % 9);
		break;
	}
	d += 11;
	size -= 11;
	rv = crypt_all(&m, key, kl, enc, d, size, split, &out, &ol, &mrv);
	REQUIRE(rv == mrv);
	if (rv == CKR_MECHANISM_PARAM_INVALID) {
		REQUIRE(aes_check_param(&m, NULL) == CKR_MECHANISM_PARAM_INVALID);
		return;
	}
	REQUIRE(aes_check_param(&m, NULL) == CKR_OK);
	REQUIRE(rv == CKR_OK || rv == CKR_DATA_LEN_RANGE || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
		rv == CKR_ENCRYPTED_DATA_INVALID);
	if (rv == CKR_OK && enc) {
		brv = crypt_all(&m, key, kl, false, out, ol, split + 3, &back, &bl, &bmrv);
		REQUIRE(brv == CKR_OK && bmrv == CKR_OK && bl == size &&
			(size == 0 || memcmp(back, d, size) == 0));
	}
	free(out);
	free(back);
}

static void fuzz_mac(const uint8_t *d, size_t size)
{
	CK_MECHANISM m = { macs[d[0] % 7], NULL, 0 };
	static const uint8_t key[64] = { 9, 8, 7 };
	CK_ULONG want = d[1];
	size_t kl = d[2] & 1 ? 16 + 8 * (d[2] % 3) : 1 + d[2] % 64;
	tp_mac *a = NULL, *b = NULL;
	uint8_t ma[64], mb[64];
	size_t half;
	CK_RV ra, rb;

	if (d[3] & 1) {
		m.pParameter = &want;
		m.ulParameterLen = d[3] & 2 ? sizeof(want) : d[4] % 16;
	}
	d += 5;
	size -= 5;
	ra = mac_new(&m, key, kl, &a);
	rb = mac_new(&m, key, kl, &b);
	REQUIRE(ra == rb);
	REQUIRE(ra == CKR_OK || ra == CKR_MECHANISM_PARAM_INVALID || ra == CKR_KEY_SIZE_RANGE);
	if (ra != CKR_OK)
		return;
	REQUIRE(mac_len(a) >= 1 && mac_len(a) <= 64);
	half = size / 2;
	REQUIRE(mac_update(a, d, size) == CKR_OK);
	REQUIRE(mac_update(b, d, half) == CKR_OK);
	REQUIRE(mac_update(b, d + half, 0) == CKR_OK);
	REQUIRE(mac_update(b, d + half, size - half) == CKR_OK);
	REQUIRE(mac_final(a, ma) == CKR_OK && mac_final(b, mb) == CKR_OK);
	REQUIRE(memcmp(ma, mb, mac_len(a)) == 0);
	mac_free(a);
	mac_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 12)
		return 0;
	for (size_t i = 0; i < sizeof(pool); i++)
		pool[i] = (uint8_t)(i * 7 + 3);
	if (data[0] & 0x80)
		fuzz_mac(data + 1, size - 1);
	else
		fuzz_cipher(data + 1, size - 1);
	return 0;
}
