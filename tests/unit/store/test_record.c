/* The record codec: round trips of every record type and attribute kind,
 * exact rejection of truncations, trailing bytes and newer versions, and a
 * mutation loop over store_record_parse (the fuzz target's entry point). */
#include "store_test.h"

#include "store/record.h"

static CK_ULONG mechs[3] = { CKM_AES_CBC, CKM_AES_GCM, CKM_SHA256_HMAC };

/* An attribute list with every kind: ULONG, bytes, empty, ULONG array,
 * template (with a ULONG and a bool inside). */
static void sample_attrs(CK_ATTRIBUTE *a, size_t *n, CK_ATTRIBUTE *tmpl)
{
	static CK_OBJECT_CLASS klass = CKO_SECRET_KEY;
	static CK_KEY_TYPE kt = CKK_AES;
	static CK_ULONG vlen = 32;
	static CK_BBOOL yes = CK_TRUE;
	static char label[] = "round-trip label";
	static uint8_t value[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

	tmpl[0] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &kt, sizeof(kt) };
	tmpl[1] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &yes, sizeof(yes) };
	a[0] = (CK_ATTRIBUTE){ CKA_CLASS, &klass, sizeof(klass) };
	a[1] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &kt, sizeof(kt) };
	a[2] = (CK_ATTRIBUTE){ CKA_VALUE_LEN, &vlen, sizeof(vlen) };
	a[3] = (CK_ATTRIBUTE){ CKA_LABEL, label, sizeof(label) - 1 };
	a[4] = (CK_ATTRIBUTE){ CKA_ID, NULL, 0 };
	a[5] = (CK_ATTRIBUTE){ CKA_VALUE, value, sizeof(value) };
	a[6] = (CK_ATTRIBUTE){ CKA_ALLOWED_MECHANISMS, mechs, sizeof(mechs) };
	a[7] = (CK_ATTRIBUTE){ CKA_UNWRAP_TEMPLATE, tmpl, 2 * sizeof(CK_ATTRIBUTE) };
	a[8] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &yes, sizeof(yes) };
	*n = 9;
}

static bool attrs_equal(const CK_ATTRIBUTE *a, const CK_ATTRIBUTE *b, size_t n, bool nested)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i].type != b[i].type || a[i].ulValueLen != b[i].ulValueLen)
			return false;
		if (!nested && (a[i].type & CKF_ARRAY_ATTRIBUTE) && a[i].type != CKA_ALLOWED_MECHANISMS) {
			if (!attrs_equal(a[i].pValue, b[i].pValue,
					 a[i].ulValueLen / sizeof(CK_ATTRIBUTE), true))
				return false;
			continue;
		}
		if (a[i].ulValueLen && memcmp(a[i].pValue, b[i].pValue, a[i].ulValueLen))
			return false;
	}
	return true;
}

static void test_attrs_round_trip(void)
{
	CK_ATTRIBUTE a[9], tmpl[2], *dup = NULL;
	size_t n;
	wbuf b;
	store_record rec;

	sample_attrs(a, &n, tmpl);
	wbuf_init(&b, true);
	CHECK_ST(record_attrs_build(&b, a, n), STORE_OK);
	CHECK(!b.failed);
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_OK);
	CHECK(rec.type == STORE_REC_ATTRS && rec.version == STORE_FORMAT_VERSION);
	CHECK(rec.u.attrs.n_attrs == n);
	CHECK(rec.u.attrs.n_attrs == n && attrs_equal(a, rec.u.attrs.attrs, n, false));
	store_record_clear(&rec);

	/* Fixed endianness: CKA_CLASS (0) value CKO_SECRET_KEY (4) is the
	 * 8 bytes 04 00 .. 00 right after type (8 bytes), kind, length. */
	CHECK(b.len > 8 + 4 + 13 + 8);
	CHECK(b.data[12] == 0 && b.data[20] == 1 && b.data[21] == 8 && b.data[25] == 4 &&
	      b.data[26] == 0 && b.data[32] == 0);

	/* Every truncation is refused; so is a trailing byte. */
	for (size_t cut = 0; cut < b.len; cut++) {
		store_status s = store_record_parse(b.data, cut, &rec);

		CHECK(s == STORE_DAMAGED);
		if (s == STORE_OK)
			store_record_clear(&rec);
	}
	wbuf_u8(&b, 0);
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_DAMAGED);
	wbuf_free(&b);

	/* Deep copy. */
	CHECK_ST(store_attrs_dup(a, n, &dup), STORE_OK);
	CHECK(dup && attrs_equal(a, dup, n, false));
	CHECK(dup && dup[7].pValue != tmpl);
	store_attrs_free(dup, n);

	/* Unencodable: wrong CK_ULONG size, template in a template. */
	{
		uint8_t one = 1;
		CK_ATTRIBUTE bad = { CKA_CLASS, &one, 1 };
		CK_ATTRIBUTE inner[1] = { { CKA_WRAP_TEMPLATE, tmpl, sizeof(CK_ATTRIBUTE) } };
		CK_ATTRIBUTE nest = { CKA_UNWRAP_TEMPLATE, inner, sizeof(inner) };

		wbuf_init(&b, true);
		CHECK_ST(record_attrs_build(&b, &bad, 1), STORE_INVALID);
		wbuf_free(&b);
		wbuf_init(&b, true);
		CHECK_ST(record_attrs_build(&b, &nest, 1), STORE_INVALID);
		wbuf_free(&b);
		CHECK_ST(store_attrs_dup(&bad, 1, &dup), STORE_INVALID);
		CHECK_ST(store_attrs_dup(&nest, 1, &dup), STORE_INVALID);
	}
}

static void sample_meta(store_meta *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < STORE_ID_LEN; i++)
		m->store_id[i] = (uint8_t)(0x40 + i);
	m->flags = STORE_META_PIN_MODEL | STORE_META_USER_PIN_SET;
	m->user_fails = 3;
	m->so_fails = 1;
	m->kdf_log2n = 15;
	m->kdf_r = 8;
	m->kdf_p = 1;
	m->n_wraps = 2;
	m->wraps[0].kind = STORE_WRAP_USER;
	memset(m->wraps[0].ct, 0x11, sizeof(m->wraps[0].ct));
	m->wraps[1].kind = STORE_WRAP_SO;
	memset(m->wraps[1].salt, 0x22, sizeof(m->wraps[1].salt));
	m->sealed_root = (char *)TEST_SEALED;
	m->sealed_len = strlen(TEST_SEALED);
}

static void test_meta_round_trip(void)
{
	store_meta m;
	wbuf b;
	store_record rec;
	uint8_t mac[STORE_MAC_LEN];

	sample_meta(&m);
	memset(mac, 0x5a, sizeof(mac));
	wbuf_init(&b, false);
	record_meta_build(&b, &m);
	wbuf_add(&b, mac, sizeof(mac));
	CHECK(!b.failed);
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_OK);
	CHECK(rec.type == STORE_REC_META);
	CHECK(!memcmp(rec.u.meta.store_id, m.store_id, STORE_ID_LEN));
	CHECK(rec.u.meta.flags == m.flags && rec.u.meta.user_fails == 3 && rec.u.meta.so_fails == 1);
	CHECK(rec.u.meta.n_wraps == 2 && rec.u.meta.wraps[0].kind == STORE_WRAP_USER &&
	      rec.u.meta.wraps[1].salt[5] == 0x22 && rec.u.meta.wraps[0].ct[31] == 0x11);
	CHECK(rec.u.meta.sealed_root && !strcmp(rec.u.meta.sealed_root, TEST_SEALED));
	CHECK(rec.u.meta.mac_off == b.len - STORE_MAC_LEN && !memcmp(rec.u.meta.mac, mac, sizeof(mac)));
	store_record_clear(&rec);

	/* A newer version is told apart from damage. */
	b.data[4] = STORE_FORMAT_VERSION + 1;
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_NEWER_FORMAT);
	b.data[4] = 0;
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_DAMAGED);
	b.data[4] = STORE_FORMAT_VERSION;
	b.data[0] = 'X';
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_DAMAGED);
	b.data[0] = 'T';
	/* Hostile scrypt cost and unknown flags are damage. */
	b.data[36] = 30;
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_DAMAGED);
	b.data[36] = 15;
	b.data[24] |= 0x80;
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_DAMAGED);
	b.data[24] &= 0x7f;
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_OK);
	store_record_clear(&rec);
	for (size_t cut = 0; cut < b.len; cut++)
		CHECK(store_record_parse(b.data, cut, &rec) == STORE_DAMAGED);
	wbuf_free(&b);
}

static void test_obj_round_trip(void)
{
	uint8_t id[STORE_ID_LEN], nonce[STORE_NONCE_LEN], tag[STORE_TAG_LEN], ct[100];
	uint8_t head[STORE_OBJ_AAD_LEN];
	wbuf b;
	store_record rec;

	memset(id, 0xab, sizeof(id));
	memset(nonce, 0xcd, sizeof(nonce));
	memset(tag, 0xef, sizeof(tag));
	memset(ct, 0x77, sizeof(ct));
	record_obj_head(head, STORE_OBJ_PRIVATE, id, nonce);
	wbuf_init(&b, false);
	record_obj_build(&b, head, ct, sizeof(ct), tag);
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_OK);
	CHECK(rec.type == STORE_REC_OBJECT && rec.u.obj.flags == STORE_OBJ_PRIVATE);
	CHECK(!memcmp(rec.u.obj.id, id, sizeof(id)) && !memcmp(rec.u.obj.nonce, nonce, sizeof(nonce)));
	CHECK(rec.u.obj.ct_len == sizeof(ct) && !memcmp(rec.u.obj.ct, ct, sizeof(ct)));
	CHECK(!memcmp(rec.u.obj.tag, tag, sizeof(tag)) && !memcmp(rec.u.obj.aad_head, head, sizeof(head)));
	store_record_clear(&rec);
	/* A length claiming more than is there. */
	b.data[40] = 0xff;
	b.data[41] = 0xff;
	CHECK_ST(store_record_parse(b.data, b.len, &rec), STORE_DAMAGED);
	wbuf_free(&b);
}

/* xorshift: deterministic mutations. */
static uint32_t rnd_state = 0x12345678;
static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static void mutate_and_parse(const uint8_t *seed, size_t len, int rounds)
{
	uint8_t *buf = malloc(len + 64);

	for (int r = 0; r < rounds; r++) {
		size_t n = len;
		store_record rec;

		memcpy(buf, seed, len);
		for (int k = (int)(rnd() % 4) + 1; k > 0; k--) {
			switch (rnd() % 4) {
			case 0: buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;
			case 1: buf[rnd() % n] = (uint8_t)rnd(); break;
			case 2: n = n > 1 ? n - 1 - rnd() % (n - 1) : n; break;
			default: buf[rnd() % n] = (rnd() & 1) ? 0xff : 0x00; break;
			}
		}
		if (store_record_parse(buf, n, &rec) == STORE_OK)
			store_record_clear(&rec);
	}
	free(buf);
}

static void test_mutations(void)
{
	CK_ATTRIBUTE a[9], tmpl[2];
	size_t n;
	wbuf b;
	store_meta m;

	sample_attrs(a, &n, tmpl);
	wbuf_init(&b, true);
	record_attrs_build(&b, a, n);
	mutate_and_parse(b.data, b.len, 20000);
	wbuf_free(&b);
	sample_meta(&m);
	wbuf_init(&b, false);
	record_meta_build(&b, &m);
	wbuf_add(&b, m.store_id, STORE_ID_LEN);
	wbuf_add(&b, m.store_id, STORE_ID_LEN);
	mutate_and_parse(b.data, b.len, 20000);
	wbuf_free(&b);
	/* Garbage of every small length. */
	for (size_t len = 0; len < 64; len++) {
		uint8_t g[64];
		store_record rec;

		for (size_t i = 0; i < len; i++)
			g[i] = (uint8_t)rnd();
		if (len >= 4)
			memcpy(g, STORE_MAGIC, 4);
		if (store_record_parse(g, len, &rec) == STORE_OK)
			store_record_clear(&rec);
	}
}

int main(void)
{
	test_attrs_round_trip();
	test_meta_round_trip();
	test_obj_round_trip();
	test_mutations();
	return test_exit("store-record");
}
