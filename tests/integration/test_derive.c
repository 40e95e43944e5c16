/* tp-derive: C_DeriveKey(CKM_ECDH1_DERIVE) on the Tang private key is the
 * McCallum-Relyea recovery exchange and returns exactly what a local ECDH
 * with the server's key would.
 *
 *   tp-derive kdf          every KDF, raw and DER peers, random peers,
 *                          lengths 66/32/16, AES 16/24/32, one POST each
 *   tp-derive bad-peer     malformed, off-curve, wrong-curve peers and bad
 *                          parameters: CKR_MECHANISM_PARAM_INVALID, no POST
 *   tp-derive rotate       tangd-rotate-keys: the old key still derives
 *   tp-derive unknown-kid  key file deleted: CKR_DEVICE_ERROR, log says 404
 *   tp-derive two-keys     a server with two exchange keys: two key pairs,
 *                          each derives with its own key
 *   tp-derive contract     C_DeriveKey argument and template rules, the
 *                          derived key as a session object, and parallel
 *                          derives from 4 threads (C_Initialize(NULL))
 *
 * Every expected value is computed here with OpenSSL from the key file in
 * $TANG_DB, both as ECDH(peer, server public) and ECDH(server d, peer
 * public), and the X9.63 KDF both by our own code and OpenSSL's X963KDF. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

#define RAW_LEN (1 + 2 * TP_P521_LEN)

typedef struct {
	EVP_PKEY *pkey;
	uint8_t raw[RAW_LEN];
	uint8_t der[3 + RAW_LEN];
	uint8_t z[TP_P521_LEN]; /* x(s·C) */
} peer_t;

static const struct {
	ck_ec_kdf_t kdf;
	const char *name;
	const char *digest;
} KDFS[] = {
	{ CKD_SHA1_KDF, "CKD_SHA1_KDF", "SHA1" },
	{ CKD_SHA224_KDF, "CKD_SHA224_KDF", "SHA224" },
	{ CKD_SHA256_KDF, "CKD_SHA256_KDF", "SHA256" },
	{ CKD_SHA384_KDF, "CKD_SHA384_KDF", "SHA384" },
	{ CKD_SHA512_KDF, "CKD_SHA512_KDF", "SHA512" },
};

static int derives_ok; /* successful C_DeriveKey calls: one POST each */

/* A fresh peer and the expected x(s·C), computed two ways. */
static void new_peer(peer_t *p, tp_server_key *k)
{
	uint8_t z2[TP_P521_LEN + 8];
	p->pkey = tp_ec_gen("P-521");
	REQUIRE(tp_ec_point(p->pkey, p->raw, sizeof p->raw) == RAW_LEN);
	p->der[0] = 0x04;
	p->der[1] = 0x81;
	p->der[2] = RAW_LEN;
	memcpy(p->der + 3, p->raw, RAW_LEN);
	REQUIRE(tp_ecdh(p->pkey, k->pkey, p->z) == TP_P521_LEN); /* ECDH(c, S) */
	REQUIRE(tp_ecdh(k->pkey, p->pkey, z2) == TP_P521_LEN);   /* ECDH(s, C) */
	CHECK_MEM(z2, TP_P521_LEN, p->z, TP_P521_LEN, "local ECDH(s, C) vs ECDH(c, S)");
}

/* Expected key material: the KDF output, or the trailing bytes of Z for
 * CKD_NULL (SoftHSM2's truncation: it removes bytes from the leading end). */
static size_t expected(ck_ec_kdf_t kdf, const char *digest, const uint8_t *z,
		       const uint8_t *sh, size_t shl, size_t len, uint8_t *out)
{
	if (kdf == CKD_NULL) {
		REQUIRE(len <= TP_P521_LEN);
		memcpy(out, z + TP_P521_LEN - len, len);
		return len;
	}
	uint8_t other[256];
	const EVP_MD *md = EVP_get_digestbyname(digest);
	REQUIRE(md != NULL && len <= sizeof other);
	tp_x963(md, z, TP_P521_LEN, sh, shl, out, len);
	REQUIRE(tp_x963_ossl(digest, z, TP_P521_LEN, sh, shl, other, len));
	CHECK_MEM(out, len, other, len, "own X9.63 KDF vs OpenSSL X963KDF");
	return len;
}

static void derive_and_compare(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, peer_t *p,
			       bool der, ck_ec_kdf_t kdf, const char *digest,
			       const uint8_t *sh, size_t shl, CK_KEY_TYPE kt,
			       CK_ULONG value_len, size_t expect_len, const char *what)
{
	uint8_t got[256], want[256];
	size_t got_len = 0;
	CK_RV rv = tp_derive(s, key, kdf, sh, shl, der ? p->der : p->raw,
			     der ? sizeof p->der : sizeof p->raw, kt, value_len, got, &got_len);
	if (rv != CKR_OK) {
		tp_fail(__FILE__, __LINE__, "%s: C_DeriveKey: %s", what, tp_rv_name(rv));
		return;
	}
	derives_ok++;
	expected(kdf, digest, p->z, sh, shl, expect_len, want);
	CHECK_MEM(got, got_len, want, expect_len, what);
}

static CK_OBJECT_HANDLE the_private_key(CK_SESSION_HANDLE s, tp_server_key *k)
{
	CK_OBJECT_HANDLE h = tp_find_key(s, CKO_PRIVATE_KEY, k->id);
	if (h == CK_INVALID_HANDLE) {
		tp_fail(__FILE__, __LINE__, "no private key with CKA_ID %s", k->kid);
		exit(tp_exit());
	}
	return h;
}

static void setup(tp_server_key *k, CK_SESSION_HANDLE *s, CK_OBJECT_HANDLE *priv)
{
	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	REQUIRE(tp_server_keys(k, 1, false) == 1);
	*s = tp_open(tp_slot("tang"));
	*priv = the_private_key(*s, k);
}

/* ---- kdf ---------------------------------------------------------------- */

static int mode_kdf(void)
{
	tp_server_key k;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv;
	setup(&k, &s, &priv);
	int posts0 = tp_server_posts();
	char what[160];

	for (int i = 0; i < 3; i++) {
		peer_t p;
		new_peer(&p, &k);
		for (int der = 0; der < 2; der++) {
			const char *enc = der ? "DER" : "raw";
			snprintf(what, sizeof what, "peer %d %s: CKD_NULL, generic secret, no VALUE_LEN (66)", i, enc);
			tp_case_begin(what);
			derive_and_compare(s, priv, &p, der, CKD_NULL, NULL, NULL, 0,
					   CKK_GENERIC_SECRET, 0, TP_P521_LEN, what);
			tp_case_end();
			for (size_t j = 0; j < sizeof KDFS / sizeof KDFS[0]; j++) {
				uint8_t shared[17];
				RAND_bytes(shared, sizeof shared);
				snprintf(what, sizeof what, "peer %d %s: %s, no shared data, 32 bytes", i, enc, KDFS[j].name);
				tp_case_begin(what);
				derive_and_compare(s, priv, &p, der, KDFS[j].kdf, KDFS[j].digest,
						   NULL, 0, CKK_GENERIC_SECRET, 32, 32, what);
				tp_case_end();
				snprintf(what, sizeof what, "peer %d %s: %s, 17 bytes shared data, 32 bytes", i, enc, KDFS[j].name);
				tp_case_begin(what);
				derive_and_compare(s, priv, &p, der, KDFS[j].kdf, KDFS[j].digest,
						   shared, sizeof shared, CKK_GENERIC_SECRET, 32, 32, what);
				tp_case_end();
			}
		}

		/* Lengths and key types (raw peer). */
		static const uint8_t sh[] = "tang-pkcs11 shared info";
		struct {
			ck_ec_kdf_t kdf;
			const char *digest;
			bool shared;
			CK_KEY_TYPE kt;
			CK_ULONG vl;
			size_t expect;
			const char *name;
		} cases[] = {
			{ CKD_NULL, NULL, false, CKK_GENERIC_SECRET, 66, 66, "CKD_NULL generic VALUE_LEN 66 (systemd's template)" },
			{ CKD_NULL, NULL, false, CKK_GENERIC_SECRET, 32, 32, "CKD_NULL generic VALUE_LEN 32: trailing 32 bytes of Z" },
			{ CKD_NULL, NULL, false, CKK_GENERIC_SECRET, 16, 16, "CKD_NULL generic VALUE_LEN 16: trailing 16 bytes of Z" },
			{ CKD_NULL, NULL, false, CKK_AES, 16, 16, "CKD_NULL AES 16" },
			{ CKD_NULL, NULL, false, CKK_AES, 24, 24, "CKD_NULL AES 24" },
			{ CKD_NULL, NULL, false, CKK_AES, 32, 32, "CKD_NULL AES 32" },
			{ CKD_SHA256_KDF, "SHA256", true, CKK_AES, 16, 16, "SHA256 KDF AES 16" },
			{ CKD_SHA256_KDF, "SHA256", true, CKK_AES, 24, 24, "SHA256 KDF AES 24" },
			{ CKD_SHA384_KDF, "SHA384", false, CKK_AES, 32, 32, "SHA384 KDF AES 32" },
			{ CKD_SHA1_KDF, "SHA1", true, CKK_GENERIC_SECRET, 16, 16, "SHA1 KDF generic 16" },
			{ CKD_SHA512_KDF, "SHA512", true, CKK_GENERIC_SECRET, 0, 66, "SHA512 KDF generic, no VALUE_LEN (66)" },
			{ CKD_SHA224_KDF, "SHA224", false, CKK_GENERIC_SECRET, 66, 66, "SHA224 KDF generic 66 (3 blocks)" },
			{ CKD_SHA256_KDF, "SHA256", true, CKK_GENERIC_SECRET, 100, 100, "SHA256 KDF generic 100 (longer than Z)" },
		};
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
			snprintf(what, sizeof what, "peer %d raw: %s", i, cases[c].name);
			tp_case_begin(what);
			derive_and_compare(s, priv, &p, false, cases[c].kdf, cases[c].digest,
					   cases[c].shared ? sh : NULL, cases[c].shared ? sizeof sh - 1 : 0,
					   cases[c].kt, cases[c].vl, cases[c].expect, what);
			tp_case_end();
		}
		EVP_PKEY_free(p.pkey);
	}

	tp_case_begin("a sensitive derived key does not reveal CKA_VALUE");
	{
		peer_t p;
		new_peer(&p, &k);
		CK_ECDH1_DERIVE_PARAMS prm = { CKD_NULL, 0, NULL, sizeof p.raw, p.raw };
		CK_MECHANISM m = { CKM_ECDH1_DERIVE, &prm, sizeof prm };
		CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
		CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
		CK_BBOOL t = CK_TRUE, f = CK_FALSE;
		CK_ATTRIBUTE tmpl[] = {
			{ CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
			{ CKA_SENSITIVE, &t, sizeof t }, { CKA_EXTRACTABLE, &f, sizeof f },
		};
		CK_OBJECT_HANDLE h = 0;
		CHECK_RV(P->C_DeriveKey(s, &m, priv, tmpl, 4, &h), CKR_OK);
		if (h) {
			derives_ok++;
			uint8_t buf[128];
			CK_ATTRIBUTE a = { CKA_VALUE, buf, sizeof buf };
			CHECK_RV(P->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
			CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
			CHECK(tp_attr_ulong(s, h, CKA_VALUE_LEN) == TP_P521_LEN);
			CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
			CHECK_RV(P->C_GetAttributeValue(s, h, &a, 1), CKR_OBJECT_HANDLE_INVALID);
		}
		EVP_PKEY_free(p.pkey);
	}
	tp_case_end();

	tp_case_begin("impossible lengths are refused before any request");
	{
		peer_t p;
		new_peer(&p, &k);
		int before = tp_server_posts();
		uint8_t out[256];
		size_t ol;
		CK_RV rv = tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw,
				     CKK_GENERIC_SECRET, 67, out, &ol);
		CHECKF(rv != CKR_OK, "CKD_NULL with VALUE_LEN 67 > field size: CKR_OK");
		tp_note("CKD_NULL VALUE_LEN 67 -> %s", tp_rv_name(rv));
		rv = tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw, CKK_AES, 20, out, &ol);
		CHECKF(rv != CKR_OK, "AES key with VALUE_LEN 20: CKR_OK");
		tp_note("AES VALUE_LEN 20 -> %s", tp_rv_name(rv));
		rv = tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw, CKK_AES, 0, out, &ol);
		CHECKF(rv != CKR_OK || ol == 16 || ol == 24 || ol == 32,
		       "AES key without VALUE_LEN: %zu bytes", ol);
		tp_note("AES without VALUE_LEN -> %s", tp_rv_name(rv));
		if (rv == CKR_OK)
			derives_ok++;
		else
			CHECKF(tp_server_posts() == before,
			       "a refused length still sent %d recovery request(s)",
			       tp_server_posts() - before);
		EVP_PKEY_free(p.pkey);
	}
	tp_case_end();

	tp_case_begin("one recovery request (POST /rec) per derive");
	int posts = tp_server_posts() - posts0;
	CHECKF(posts == derives_ok, "%d POSTs in the tangd log for %d derives", posts, derives_ok);
	tp_case_end();

	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
	return tp_exit();
}

/* ---- bad-peer ----------------------------------------------------------- */

static CK_RV derive_raw(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_MECHANISM *m)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL f = CK_FALSE, t = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_SENSITIVE, &f, sizeof f }, { CKA_EXTRACTABLE, &t, sizeof t },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = P->C_DeriveKey(s, m, key, tmpl, 4, &h);
	if (rv == CKR_OK)
		P->C_DestroyObject(s, h);
	return rv;
}

static void bad(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const char *name,
		ck_ec_kdf_t kdf, const uint8_t *sh, size_t shl, const uint8_t *pt, size_t ptl)
{
	tp_case_begin(name);
	int before = tp_server_posts();
	CK_ECDH1_DERIVE_PARAMS prm = { kdf, shl, (CK_BYTE_PTR)sh, ptl, (CK_BYTE_PTR)pt };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &prm, sizeof prm };
	CK_RV rv = derive_raw(s, key, &m);
	CHECKF(rv == CKR_MECHANISM_PARAM_INVALID, "%s: expected CKR_MECHANISM_PARAM_INVALID, got %s",
	       name, tp_rv_name(rv));
	int sent = tp_server_posts() - before;
	CHECKF(sent == 0, "%s: %d recovery request(s) sent for a refused peer", name, sent);
	tp_case_end();
}

static int mode_bad_peer(void)
{
	tp_server_key k;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv;
	setup(&k, &s, &priv);

	peer_t p;
	new_peer(&p, &k);
	uint8_t out[128];
	size_t ol;
	tp_case_begin("a good peer derives (baseline)");
	CHECK_RV(tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw, CKK_GENERIC_SECRET, 0, out, &ol), CKR_OK);
	tp_case_end();
	int posts0 = tp_server_posts();

	uint8_t buf[512];
	/* off curve: flip the last bit of y */
	memcpy(buf, p.raw, RAW_LEN);
	buf[RAW_LEN - 1] ^= 1;
	bad(s, priv, "off-curve point, raw", CKD_NULL, NULL, 0, buf, RAW_LEN);
	uint8_t der[3 + RAW_LEN] = { 0x04, 0x81, RAW_LEN };
	memcpy(der + 3, buf, RAW_LEN);
	bad(s, priv, "off-curve point, DER", CKD_NULL, NULL, 0, der, sizeof der);
	bad(s, priv, "off-curve point with a KDF", CKD_SHA256_KDF, NULL, 0, buf, RAW_LEN);

	/* (0,0) and x = p */
	memset(buf, 0, RAW_LEN);
	buf[0] = 4;
	bad(s, priv, "point (0,0)", CKD_NULL, NULL, 0, buf, RAW_LEN);
	memcpy(buf, p.raw, RAW_LEN);
	buf[1] = 0x01;
	memset(buf + 2, 0xff, TP_P521_LEN - 1);
	bad(s, priv, "x = p = 2^521-1 (not a field element)", CKD_NULL, NULL, 0, buf, RAW_LEN);

	/* other curves */
	const char *curves[] = { "P-256", "P-384" };
	for (int c = 0; c < 2; c++) {
		EVP_PKEY *o = tp_ec_gen(curves[c]);
		uint8_t pt[200], d2[210];
		size_t n = tp_ec_point(o, pt, sizeof pt);
		char name[64];
		snprintf(name, sizeof name, "%s point, raw", curves[c]);
		bad(s, priv, name, CKD_NULL, NULL, 0, pt, n);
		d2[0] = 0x04;
		d2[1] = (uint8_t)n;
		memcpy(d2 + 2, pt, n);
		snprintf(name, sizeof name, "%s point, DER", curves[c]);
		bad(s, priv, name, CKD_NULL, NULL, 0, d2, n + 2);
		/* a P-521-length buffer holding the short point, zero padded */
		memset(buf, 0, RAW_LEN);
		memcpy(buf, pt, n);
		snprintf(name, sizeof name, "%s point zero-padded to 133 bytes", curves[c]);
		bad(s, priv, name, CKD_NULL, NULL, 0, buf, RAW_LEN);
		EVP_PKEY_free(o);
	}

	/* malformed encodings */
	bad(s, priv, "truncated point (132 bytes)", CKD_NULL, NULL, 0, p.raw, RAW_LEN - 1);
	memcpy(buf, p.raw, RAW_LEN);
	buf[RAW_LEN] = 0;
	bad(s, priv, "point with a trailing byte (134 bytes)", CKD_NULL, NULL, 0, buf, RAW_LEN + 1);
	buf[0] = 0x05;
	bad(s, priv, "bad point prefix 0x05", CKD_NULL, NULL, 0, buf, RAW_LEN);
	buf[0] = 0x00;
	bad(s, priv, "point at infinity (0x00)", CKD_NULL, NULL, 0, buf, 1);
	bad(s, priv, "empty peer point", CKD_NULL, NULL, 0, NULL, 0);
	memcpy(buf, p.der, sizeof p.der);
	buf[2] = RAW_LEN + 1;
	bad(s, priv, "DER length larger than the content", CKD_NULL, NULL, 0, buf, sizeof p.der);
	memcpy(buf, p.der, sizeof p.der);
	buf[sizeof p.der] = 0x00;
	bad(s, priv, "DER with a trailing byte", CKD_NULL, NULL, 0, buf, sizeof p.der + 1);
	memcpy(buf, p.der, sizeof p.der);
	buf[0] = 0x03; /* BIT STRING instead of OCTET STRING */
	bad(s, priv, "DER BIT STRING instead of OCTET STRING", CKD_NULL, NULL, 0, buf, sizeof p.der);

	/* bad parameters around a good point */
	static const uint8_t sh[8] = "shared!";
	bad(s, priv, "CKD_NULL with shared data", CKD_NULL, sh, sizeof sh, p.raw, RAW_LEN);
	bad(s, priv, "unknown KDF 0x1234", 0x1234, NULL, 0, p.raw, RAW_LEN);
	bad(s, priv, "CKD_SHA1_KDF_ASN1 (not offered)", CKD_SHA1_KDF_ASN1, NULL, 0, p.raw, RAW_LEN);

	tp_case_begin("mechanism parameter missing or of the wrong size");
	{
		int before = tp_server_posts();
		CK_ECDH1_DERIVE_PARAMS prm = { CKD_NULL, 0, NULL, RAW_LEN, p.raw };
		CK_MECHANISM m = { CKM_ECDH1_DERIVE, NULL, 0 };
		CHECK_RV(derive_raw(s, priv, &m), CKR_MECHANISM_PARAM_INVALID);
		m.pParameter = &prm;
		m.ulParameterLen = sizeof prm - 1;
		CHECK_RV(derive_raw(s, priv, &m), CKR_MECHANISM_PARAM_INVALID);
		CHECK(tp_server_posts() == before);
	}
	tp_case_end();

	tp_case_begin("ECDH cofactor mechanism is not offered");
	{
		int before = tp_server_posts();
		CK_ECDH1_DERIVE_PARAMS prm = { CKD_NULL, 0, NULL, RAW_LEN, p.raw };
		CK_MECHANISM m = { CKM_ECDH1_COFACTOR_DERIVE, &prm, sizeof prm };
		CHECK_RV(derive_raw(s, priv, &m), CKR_MECHANISM_INVALID);
		CHECK(tp_server_posts() == before);
	}
	tp_case_end();

	tp_case_begin("no POST reached tangd for any refused peer; a good one still works");
	CHECKF(tp_server_posts() == posts0, "%d POSTs sent for refused peers",
	       tp_server_posts() - posts0);
	uint8_t want[TP_P521_LEN];
	memcpy(want, p.z, TP_P521_LEN);
	CHECK_RV(tp_derive(s, priv, CKD_NULL, NULL, 0, p.der, sizeof p.der, CKK_GENERIC_SECRET, 0, out, &ol), CKR_OK);
	CHECK_MEM(out, ol, want, TP_P521_LEN, "derive after refusals");
	CHECK(tp_server_posts() == posts0 + 1);
	tp_case_end();

	EVP_PKEY_free(p.pkey);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
	return tp_exit();
}

/* ---- rotate ------------------------------------------------------------- */

static void derive_check(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, tp_server_key *k,
			 const char *what)
{
	peer_t p;
	new_peer(&p, k);
	derive_and_compare(s, priv, &p, false, CKD_NULL, NULL, NULL, 0, CKK_GENERIC_SECRET, 0,
			   TP_P521_LEN, what);
	derive_and_compare(s, priv, &p, true, CKD_SHA256_KDF, "SHA256", (const uint8_t *)"x", 1,
			   CKK_AES, 32, 32, what);
	EVP_PKEY_free(p.pkey);
}

static int mode_rotate(void)
{
	tp_server_key old, keys[4];
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv;
	setup(&old, &s, &priv);

	tp_case_begin("before rotation");
	derive_check(s, priv, &old, "old key before rotation");
	tp_case_end();

	char cmd[4200];
	snprintf(cmd, sizeof cmd, "/usr/libexec/tangd-rotate-keys -d \"%s\" >/dev/null",
		 tp_env("TANG_DB"));
	REQUIRE(system(cmd) == 0);
	int nk = tp_server_keys(keys, 4, true);
	REQUIRE(nk == 2);
	tp_server_key *hidden = keys[0].hidden ? &keys[0] : &keys[1];
	tp_server_key *fresh = keys[0].hidden ? &keys[1] : &keys[0];
	REQUIRE(hidden->hidden && !fresh->hidden);
	CHECK(memcmp(hidden->id, old.id, 32) == 0);
	CHECK(memcmp(fresh->id, old.id, 32) != 0);

	tp_case_begin("after tangd-rotate-keys: the old key still derives, same handle");
	CHECK(tp_find_key(s, CKO_PRIVATE_KEY, old.id) == priv);
	derive_check(s, priv, hidden, "old (rotated) key after rotation");
	CK_SESSION_HANDLE s2 = tp_open(tp_slot("tang"));
	derive_check(s2, priv, hidden, "old key, second session");
	CHECK_RV(P->C_CloseSession(s2), CKR_OK);
	tp_case_end();

	tp_case_begin("re-initialized with the old thp: the rotated advertisement is not trusted");
	/* /adv/{old thp} is signed by the old key too, but the old key is no
	 * longer in the payload: the pin cannot be satisfied (clevis rejects it). */
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	s = tp_open(tp_slot("tang"));
	CK_OBJECT_HANDLE objs[8];
	size_t nobj = tp_find(s, NULL, 0, objs, 8);
	CHECKF(nobj == 0, "%zu objects offered under a pin the advertisement no longer satisfies", nobj);
	tp_case_end();

	tp_case_begin("re-initialized with the new thp: the new key is offered and derives");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	char thp[64], conf[1024];
	REQUIRE(tp_signing_thp(thp));
	CHECKF(strcmp(thp, tp_env("TANG_THP")) != 0, "the signing key did not change");
	snprintf(conf, sizeof conf,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", "
		 "\"thp\": \"%s\" }, \"timeout\": 5 } ] }\n", tp_env("TANG_URL"), thp);
	tp_write_file(tp_env("TANG_PKCS11_CONF"), conf);
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	s = tp_open(tp_slot("tang"));
	CK_OBJECT_HANDLE np = tp_find_key(s, CKO_PRIVATE_KEY, fresh->id);
	CK_OBJECT_HANDLE npub = tp_find_key(s, CKO_PUBLIC_KEY, fresh->id);
	CHECKF(np != CK_INVALID_HANDLE && npub != CK_INVALID_HANDLE,
	       "the rotated-in key %s is not on the token", fresh->kid);
	if (np)
		derive_check(s, np, fresh, "new key after rotation");
	CHECK(tp_find_key(s, CKO_PRIVATE_KEY, old.id) == CK_INVALID_HANDLE);
	tp_case_end();

	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&old);
	for (int i = 0; i < nk; i++)
		tp_server_key_free(&keys[i]);
	return tp_exit();
}

/* ---- unknown-kid -------------------------------------------------------- */

static int mode_unknown_kid(void)
{
	tp_server_key k;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv;
	setup(&k, &s, &priv);
	const char *log = tp_env("TANG_PKCS11_LOG");

	tp_case_begin("baseline derive");
	derive_check(s, priv, &k, "before the key file is removed");
	tp_case_end();

	tp_case_begin("key file removed on the server: CKR_DEVICE_ERROR, log says unknown key (404)");
	REQUIRE(unlink(k.path) == 0);
	size_t off = tp_file_size(log);
	int posts = tp_server_posts();
	peer_t p;
	new_peer(&p, &k);
	uint8_t out[128];
	size_t ol;
	double t0 = tp_now();
	CHECK_RV(tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw, CKK_GENERIC_SECRET, 0, out, &ol),
		 CKR_DEVICE_ERROR);
	double dt = tp_now() - t0;
	CHECKF(dt < 10.0, "took %.1f s (timeout 5 s + margin)", dt);
	CHECKF(tp_server_posts() > posts, "no POST reached tangd");
	char *server_log = tp_read_file(tp_env("TANG_SERVER_LOG"), 0);
	char needle[128];
	snprintf(needle, sizeof needle, "POST /rec/%s => 404", k.kid);
	CHECKF(server_log && strstr(server_log, needle), "tangd log lacks \"%s\"", needle);
	free(server_log);

	CK_SESSION_INFO si;
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECKF(si.ulDeviceError == TANG_PKCS11_DEVERR_UNKNOWN_KEY,
	       "ulDeviceError %lu, expected TANG_PKCS11_DEVERR_UNKNOWN_KEY (%lu)",
	       (unsigned long)si.ulDeviceError, (unsigned long)TANG_PKCS11_DEVERR_UNKNOWN_KEY);

	char *text = tp_read_file(log, off);
	tp_note("module log: %s", text ? text : "(none)");
	CHECKF(tp_contains_ci(text, "unknown key"), "module log does not say \"unknown key\"");
	CHECKF(tp_contains_ci(text, "404"), "module log does not say 404");
	CHECKF(tp_contains_ci(text, k.kid), "module log does not name the kid %s", k.kid);
	CHECKF(tp_contains_ci(text, tp_env("TANG_URL")), "module log does not name the server URL");
	free(text);
	tp_case_end();

	EVP_PKEY_free(p.pkey);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
	return tp_exit();
}

/* ---- two-keys ------------------------------------------------------------ */

static int mode_two_keys(void)
{
	/* A second exchange key, made the way tangd-keygen makes them. */
	char cmd[8400];
	const char *db = tp_env("TANG_DB");
	snprintf(cmd, sizeof cmd,
		 "set -e; cd '%s'; jose jwk gen -i '{\"alg\":\"ECMR\"}' -o new.tmp; "
		 "mv -- new.tmp \"$(jose jwk thp -i new.tmp -a S256).jwk\"", db);
	REQUIRE(system(cmd) == 0);
	tp_server_key keys[4];
	int nk = tp_server_keys(keys, 4, false);
	REQUIRE(nk == 2);

	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(tp_slot("tang"));
	tp_case_begin("two exchange keys: two key pairs, each derives with its own key");
	CK_OBJECT_HANDLE all[8];
	size_t n = tp_find(s, NULL, 0, all, 8);
	CHECKF(n == 4, "%zu objects, expected 2 key pairs", n);
	CK_OBJECT_HANDLE privs[2] = { 0, 0 };
	for (int i = 0; i < nk; i++) {
		privs[i] = tp_find_key(s, CKO_PRIVATE_KEY, keys[i].id);
		CHECKF(privs[i] != CK_INVALID_HANDLE, "no private key for %s", keys[i].kid);
		CHECKF(tp_find_key(s, CKO_PUBLIC_KEY, keys[i].id) != CK_INVALID_HANDLE,
		       "no public key for %s", keys[i].kid);
		if (privs[i])
			derive_check(s, privs[i], &keys[i], keys[i].kid);
	}
	CHECK(privs[0] != privs[1]);
	tp_case_end();
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	for (int i = 0; i < nk; i++)
		tp_server_key_free(&keys[i]);
	return tp_exit();
}

/* ---- contract -------------------------------------------------------------- */

typedef struct {
	CK_OBJECT_HANDLE priv;
	tp_server_key *k;
	int ok;
} worker_t;

static void *derive_worker(void *arg)
{
	worker_t *w = arg;
	CK_SESSION_HANDLE s;
	if (P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
		tp_fail(__FILE__, __LINE__, "worker: C_OpenSession");
		return NULL;
	}
	for (int i = 0; i < 6; i++) {
		peer_t p;
		uint8_t out[128], want[64];
		size_t ol = 0;
		new_peer(&p, w->k);
		CK_RV rv = tp_derive(s, w->priv, CKD_SHA384_KDF, NULL, 0, p.raw, sizeof p.raw,
				     CKK_AES, 32, out, &ol);
		if (rv != CKR_OK) {
			tp_fail(__FILE__, __LINE__, "worker: C_DeriveKey: %s", tp_rv_name(rv));
		} else {
			tp_x963(EVP_sha384(), p.z, TP_P521_LEN, NULL, 0, want, 32);
			if (CHECK_MEM(out, ol, want, 32, "parallel derive"))
				w->ok++;
		}
		EVP_PKEY_free(p.pkey);
	}
	P->C_CloseSession(s);
	return NULL;
}

static int mode_contract(void)
{
	tp_server_key k;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv;
	setup(&k, &s, &priv);
	CK_OBJECT_HANDLE pub = tp_find_key(s, CKO_PUBLIC_KEY, k.id);
	peer_t p;
	new_peer(&p, &k);
	CK_ECDH1_DERIVE_PARAMS prm = { CKD_NULL, 0, NULL, sizeof p.raw, p.raw };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &prm, sizeof prm };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_SENSITIVE, &f, sizeof f }, { CKA_EXTRACTABLE, &t, sizeof t },
		{ CKA_TOKEN, &t, sizeof t },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	int posts;

	tp_case_begin("C_DeriveKey argument errors, before any request");
	posts = tp_server_posts();
	CHECK_RV(P->C_DeriveKey(s, &m, priv, tmpl, 4, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(P->C_DeriveKey(s, NULL, priv, tmpl, 4, &h), CKR_ARGUMENTS_BAD);
	CHECK_RV(P->C_DeriveKey(s, &m, 0x7fff0000UL, tmpl, 4, &h), CKR_KEY_HANDLE_INVALID);
	CHECK_RV(P->C_DeriveKey(0x7fff0000UL, &m, priv, tmpl, 4, &h), CKR_SESSION_HANDLE_INVALID);
	CK_RV rv = P->C_DeriveKey(s, &m, pub, tmpl, 4, &h);
	CHECKF(rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT,
	       "derive with the public key: %s", tp_rv_name(rv));
	CHECK(tp_server_posts() == posts);
	tp_case_end();

	tp_case_begin("templates the token cannot honour are refused before any request");
	posts = tp_server_posts();
	rv = P->C_DeriveKey(s, &m, priv, tmpl, 5, &h); /* CKA_TOKEN true: no store */
	CHECKF(rv != CKR_OK, "a token object was derived on a token without a store");
	tp_note("CKA_TOKEN=TRUE -> %s", tp_rv_name(rv));
	if (rv == CKR_OK)
		P->C_DestroyObject(s, h);
	uint8_t val[66] = { 0 };
	CK_ATTRIBUTE with_value[] = {
		{ CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_VALUE, val, sizeof val },
	};
	rv = P->C_DeriveKey(s, &m, priv, with_value, 3, &h);
	CHECKF(rv != CKR_OK, "a template with CKA_VALUE was accepted");
	tp_note("CKA_VALUE in the template -> %s", tp_rv_name(rv));
	if (rv == CKR_OK)
		P->C_DestroyObject(s, h);
	CK_OBJECT_CLASS wrong = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE wrong_class[] = { { CKA_CLASS, &wrong, sizeof wrong } };
	rv = P->C_DeriveKey(s, &m, priv, wrong_class, 1, &h);
	CHECKF(rv != CKR_OK, "a public key class was accepted for a derived key");
	tp_note("CKA_CLASS=CKO_PUBLIC_KEY -> %s", tp_rv_name(rv));
	if (rv == CKR_OK)
		P->C_DestroyObject(s, h);
	CHECKF(tp_server_posts() == posts, "%d requests sent for refused templates",
	       tp_server_posts() - posts);
	tp_case_end();

	tp_case_begin("the derived key: a session object of its application, gone with its session");
	CK_SESSION_HANDLE s2 = tp_open(1), s3 = tp_open(1);
	h = CK_INVALID_HANDLE;
	CHECK_RV(P->C_DeriveKey(s2, &m, priv, tmpl, 4, &h), CKR_OK);
	if (h) {
		CHECK(tp_attr_bool(s2, h, CKA_TOKEN) == 0);
		CHECK(tp_attr_bool(s2, h, CKA_LOCAL) == 0);
		CHECK(tp_attr_bool(s2, h, CKA_ALWAYS_SENSITIVE) == 0);
		CHECK(tp_attr_bool(s2, h, CKA_NEVER_EXTRACTABLE) == 0);
		CHECK(tp_attr_bool(s2, h, CKA_SENSITIVE) == 0);
		CHECK(tp_attr_bool(s2, h, CKA_EXTRACTABLE) == 1);
		uint8_t *v = NULL;
		CK_ULONG vl = 0;
		CHECK_RV(tp_attr(s3, h, CKA_VALUE, &v, &vl), CKR_OK); /* from another session */
		if (v)
			CHECK_MEM(v, vl, p.z, TP_P521_LEN, "CKA_VALUE read from another session");
		free(v);
		CK_OBJECT_HANDLE found[8];
		CK_ATTRIBUTE secret[] = { { CKA_CLASS, &cls, sizeof cls } };
		CHECK(tp_find(s3, secret, 1, found, 8) == 1 && found[0] == h);
		CHECK_RV(P->C_CloseSession(s2), CKR_OK);
		CK_ATTRIBUTE a = { CKA_VALUE_LEN, NULL, 0 };
		CHECK_RV(P->C_GetAttributeValue(s3, h, &a, 1), CKR_OBJECT_HANDLE_INVALID);
		CHECK(tp_find(s3, secret, 1, found, 8) == 0);
	}
	CHECK_RV(P->C_CloseSession(s3), CKR_OK);
	tp_case_end();

	tp_case_begin("4 threads derive in parallel (C_Initialize(NULL)), every value right");
	pthread_t th[4];
	worker_t w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (worker_t){ priv, &k, 0 };
		pthread_create(&th[i], NULL, derive_worker, &w[i]);
	}
	int good = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		good += w[i].ok;
	}
	CHECKF(good == 24, "%d of 24 parallel derives right", good);
	tp_case_end();

	EVP_PKEY_free(p.pkey);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
	return tp_exit();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "kdf") == 0)
		return mode_kdf();
	if (strcmp(mode, "bad-peer") == 0)
		return mode_bad_peer();
	if (strcmp(mode, "rotate") == 0)
		return mode_rotate();
	if (strcmp(mode, "unknown-kid") == 0)
		return mode_unknown_kid();
	if (strcmp(mode, "two-keys") == 0)
		return mode_two_keys();
	if (strcmp(mode, "contract") == 0)
		return mode_contract();
	fprintf(stderr, "usage: %s kdf|bad-peer|rotate|unknown-kid|two-keys|contract\n", argv[0]);
	return 2;
}
