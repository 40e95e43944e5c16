#include "store/record.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Attribute value encodings (the kind byte of each entry). */
enum {
	KIND_BYTES = 0,          /* raw bytes, as in memory */
	KIND_ULONG = 1,          /* one CK_ULONG, on disk u64 */
	KIND_ULONG_ARRAY = 2,    /* CK_ULONG[], on disk u64[] (CKA_ALLOWED_MECHANISMS) */
	KIND_TEMPLATE = 3,       /* CK_ATTRIBUTE[] (CKA_*_TEMPLATE), one level deep */
};

/* ---- write buffers ---------------------------------------------------- */

void wbuf_init(wbuf *b, bool secret)
{
	memset(b, 0, sizeof(*b));
	b->secret = secret;
}

void wbuf_free(wbuf *b)
{
	if (b->secret)
		OPENSSL_clear_free(b->data, b->cap);
	else
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Grows by copying rather than realloc, so that a secret buffer never
 * leaves an unwiped copy behind in freed memory. */
static bool grow(wbuf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (b->failed)
		return false;
	if (need > STORE_MAX_FILE) {
		b->failed = b->too_big = true;
		return false;
	}
	if (need <= b->cap)
		return true;
	while (cap < need)
		cap *= 2;
	p = malloc(cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	if (b->len)
		memcpy(p, b->data, b->len);
	if (b->secret)
		OPENSSL_clear_free(b->data, b->cap);
	else
		free(b->data);
	b->data = p;
	b->cap = cap;
	return true;
}

void wbuf_add(wbuf *b, const void *p, size_t n)
{
	if (n > STORE_MAX_FILE) {
		b->failed = b->too_big = true;
		return;
	}
	if (!grow(b, b->len + n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void wbuf_u8(wbuf *b, uint8_t v)
{
	wbuf_add(b, &v, 1);
}

void wbuf_u16(wbuf *b, uint16_t v)
{
	uint8_t le[2] = { v, v >> 8 };

	wbuf_add(b, le, sizeof(le));
}

void wbuf_u32(wbuf *b, uint32_t v)
{
	uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };

	wbuf_add(b, le, sizeof(le));
}

void wbuf_u64(wbuf *b, uint64_t v)
{
	wbuf_u32(b, (uint32_t)v);
	wbuf_u32(b, (uint32_t)(v >> 32));
}

void wbuf_header(wbuf *b, uint16_t type)
{
	wbuf_add(b, STORE_MAGIC, 4);
	wbuf_u16(b, STORE_FORMAT_VERSION);
	wbuf_u16(b, type);
}

/* ---- read buffers ----------------------------------------------------- */

typedef struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool failed;
} rbuf;

static const uint8_t *take(rbuf *r, size_t n)
{
	const uint8_t *p;

	if (r->failed || n > r->len - r->off) {
		r->failed = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static void take_into(rbuf *r, void *dst, size_t n)
{
	const uint8_t *p = take(r, n);

	if (p)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

static uint8_t take_u8(rbuf *r)
{
	const uint8_t *p = take(r, 1);

	return p ? p[0] : 0;
}

static uint16_t take_u16(rbuf *r)
{
	const uint8_t *p = take(r, 2);

	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t take_u32(rbuf *r)
{
	const uint8_t *p = take(r, 4);

	return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		   (uint32_t)p[3] << 24 : 0;
}

static uint64_t take_u64(rbuf *r)
{
	uint64_t lo = take_u32(r);

	return lo | (uint64_t)take_u32(r) << 32;
}

/* ---- attributes ------------------------------------------------------- */

static int attr_kind(CK_ATTRIBUTE_TYPE type)
{
	switch (type) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
	case CKA_CERTIFICATE_TYPE:
	case CKA_CERTIFICATE_CATEGORY:
	case CKA_JAVA_MIDP_SECURITY_DOMAIN:
	case CKA_NAME_HASH_ALGORITHM:
	case CKA_MODULUS_BITS:
	case CKA_PRIME_BITS:
	case CKA_SUB_PRIME_BITS:
	case CKA_VALUE_BITS:
	case CKA_VALUE_LEN:
	case CKA_KEY_GEN_MECHANISM:
	case CKA_OTP_FORMAT:
	case CKA_OTP_LENGTH:
	case CKA_OTP_TIME_INTERVAL:
	case CKA_OTP_CHALLENGE_REQUIREMENT:
	case CKA_OTP_TIME_REQUIREMENT:
	case CKA_OTP_COUNTER_REQUIREMENT:
	case CKA_OTP_PIN_REQUIREMENT:
	case CKA_HW_FEATURE_TYPE:
	case CKA_PIXEL_X:
	case CKA_PIXEL_Y:
	case CKA_RESOLUTION:
	case CKA_CHAR_ROWS:
	case CKA_CHAR_COLUMNS:
	case CKA_BITS_PER_PIXEL:
	case CKA_MECHANISM_TYPE:
		return KIND_ULONG;
	case CKA_ALLOWED_MECHANISMS:
		return KIND_ULONG_ARRAY;
	default:
		return (type & CKF_ARRAY_ATTRIBUTE) ? KIND_TEMPLATE : KIND_BYTES;
	}
}

static void free_values(CK_ATTRIBUTE *attrs, size_t n, bool nested);

static void free_value(CK_ATTRIBUTE *a, bool nested)
{
	if (!a->pValue)
		return;
	if (!nested && attr_kind(a->type) == KIND_TEMPLATE)
		free_values(a->pValue, a->ulValueLen / sizeof(CK_ATTRIBUTE), true);
	OPENSSL_clear_free(a->pValue, a->ulValueLen);
	a->pValue = NULL;
}

static void free_values(CK_ATTRIBUTE *attrs, size_t n, bool nested)
{
	for (size_t i = 0; i < n; i++)
		free_value(&attrs[i], nested);
}

void store_attrs_free(CK_ATTRIBUTE *attrs, size_t n)
{
	if (!attrs)
		return;
	free_values(attrs, n, false);
	OPENSSL_clear_free(attrs, n * sizeof(*attrs));
}

static store_status build_list(wbuf *b, const CK_ATTRIBUTE *attrs, size_t n, bool nested);

static store_status build_value(wbuf *b, const CK_ATTRIBUTE *a, bool nested)
{
	int kind = attr_kind(a->type);
	size_t len = a->ulValueLen;
	size_t at;

	if (len && !a->pValue)
		return STORE_INVALID;
	if (len > STORE_MAX_FILE)
		return STORE_INVALID;
	wbuf_u64(b, a->type);
	wbuf_u8(b, kind);
	switch (kind) {
	case KIND_ULONG:
		if (len != sizeof(CK_ULONG))
			return STORE_INVALID;
		wbuf_u32(b, 8);
		{
			/* an application's template may be unaligned */
			CK_ULONG v;

			memcpy(&v, a->pValue, sizeof(v));
			wbuf_u64(b, v);
		}
		return STORE_OK;
	case KIND_ULONG_ARRAY:
		if (len % sizeof(CK_ULONG))
			return STORE_INVALID;
		wbuf_u32(b, (uint32_t)(len / sizeof(CK_ULONG) * 8));
		for (size_t i = 0; i < len / sizeof(CK_ULONG); i++) {
			CK_ULONG v;

			memcpy(&v, (const uint8_t *)a->pValue + i * sizeof(v), sizeof(v));
			wbuf_u64(b, v);
		}
		return STORE_OK;
	case KIND_TEMPLATE:
		if (nested || len % sizeof(CK_ATTRIBUTE))
			return STORE_INVALID;
		/* Length placeholder, patched once the nested list is built. */
		at = b->len;
		wbuf_u32(b, 0);
		if (build_list(b, a->pValue, len / sizeof(CK_ATTRIBUTE), true) != STORE_OK)
			return STORE_INVALID;
		if (!b->failed) {
			size_t inner = b->len - at - 4;

			b->data[at] = inner;
			b->data[at + 1] = inner >> 8;
			b->data[at + 2] = inner >> 16;
			b->data[at + 3] = inner >> 24;
		}
		return STORE_OK;
	default:
		wbuf_u32(b, (uint32_t)len);
		wbuf_add(b, a->pValue, len);
		return STORE_OK;
	}
}

static store_status build_list(wbuf *b, const CK_ATTRIBUTE *attrs, size_t n, bool nested)
{
	store_status s;

	if (n > STORE_MAX_ATTRS || (n && !attrs))
		return STORE_INVALID;
	wbuf_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		s = build_value(b, &attrs[i], nested);
		if (s != STORE_OK)
			return s;
	}
	return STORE_OK;
}

store_status record_attrs_build(wbuf *b, const CK_ATTRIBUTE *attrs, size_t n)
{
	store_status s;

	wbuf_header(b, STORE_REC_ATTRS);
	s = build_list(b, attrs, n, false);
	if (s == STORE_OK && b->failed)
		s = b->too_big ? STORE_INVALID : STORE_NOMEM;
	return s;
}

static store_status parse_list(rbuf *r, bool nested, CK_ATTRIBUTE **out, size_t *n_out);

/* One entry into *a (memory form).  DAMAGED or NOMEM; *a holds what was
 * allocated so far for the caller to free. */
static store_status parse_value(rbuf *r, bool nested, CK_ATTRIBUTE *a)
{
	uint8_t kind;
	uint32_t len;
	const uint8_t *p;
	rbuf sub;
	size_t n;

	a->type = take_u64(r);
	kind = take_u8(r);
	len = take_u32(r);
	p = take(r, len);
	/* The memory form follows the type (attr_kind), and so must the
	 * encoding: a kind other than the type's is damage, not a variant. */
	if (r->failed || (sizeof(CK_ULONG) < 8 && a->type > (CK_ULONG)-1) ||
	    kind != attr_kind(a->type))
		return STORE_DAMAGED;
	switch (kind) {
	case KIND_BYTES:
		if (!len)
			return STORE_OK;
		a->pValue = malloc(len);
		if (!a->pValue)
			return STORE_NOMEM;
		memcpy(a->pValue, p, len);
		a->ulValueLen = len;
		return STORE_OK;
	case KIND_ULONG:
	case KIND_ULONG_ARRAY:
		if (len % 8 || (kind == KIND_ULONG && len != 8))
			return STORE_DAMAGED;
		n = len / 8;
		if (!n)
			return STORE_OK;
		a->pValue = calloc(n, sizeof(CK_ULONG));
		if (!a->pValue)
			return STORE_NOMEM;
		a->ulValueLen = n * sizeof(CK_ULONG);
		sub = (rbuf){ .p = p, .len = len };
		for (size_t i = 0; i < n; i++) {
			uint64_t v = take_u64(&sub);

			if (sizeof(CK_ULONG) < 8 && v > (CK_ULONG)-1)
				return STORE_DAMAGED;
			((CK_ULONG *)a->pValue)[i] = (CK_ULONG)v;
		}
		return STORE_OK;
	case KIND_TEMPLATE: {
		CK_ATTRIBUTE *inner = NULL;
		store_status s;

		if (nested)
			return STORE_DAMAGED;
		sub = (rbuf){ .p = p, .len = len };
		s = parse_list(&sub, true, &inner, &n);
		if (s == STORE_OK && sub.off != sub.len) {
			free_values(inner, n, true);
			free(inner);
			s = STORE_DAMAGED;
		}
		if (s != STORE_OK)
			return s;
		a->pValue = inner;
		a->ulValueLen = n * sizeof(CK_ATTRIBUTE);
		return STORE_OK;
	}
	default:
		return STORE_DAMAGED;
	}
}

static store_status parse_list(rbuf *r, bool nested, CK_ATTRIBUTE **out, size_t *n_out)
{
	store_status s = STORE_DAMAGED;
	uint32_t n = take_u32(r);
	CK_ATTRIBUTE *attrs = NULL;
	size_t done = 0;

	*out = NULL;
	*n_out = 0;
	/* 13 bytes is the smallest entry: a count the input cannot hold is
	 * refused before allocating for it. */
	if (r->failed || n > STORE_MAX_ATTRS || n > (r->len - r->off) / 13)
		goto out;
	if (n) {
		attrs = calloc(n, sizeof(*attrs));
		if (!attrs) {
			s = STORE_NOMEM;
			goto out;
		}
	}
	for (done = 0; done < n; done++) {
		s = parse_value(r, nested, &attrs[done]);
		if (s != STORE_OK) {
			done++;
			goto out;
		}
	}
	s = STORE_OK;
out:
	if (s != STORE_OK && attrs) {
		free_values(attrs, done, nested);
		free(attrs);
		attrs = NULL;
	}
	if (s == STORE_OK) {
		*out = attrs;
		*n_out = n;
	}
	return s;
}

static store_status dup_list(const CK_ATTRIBUTE *attrs, size_t n, bool nested,
			     CK_ATTRIBUTE **out)
{
	CK_ATTRIBUTE *copy = NULL;
	size_t i = 0;
	store_status s = STORE_NOMEM;

	*out = NULL;
	if (!n)
		return STORE_OK;
	copy = calloc(n, sizeof(*copy));
	if (!copy)
		goto out;
	for (i = 0; i < n; i++) {
		int kind = attr_kind(attrs[i].type);

		copy[i].type = attrs[i].type;
		/* Only what record_attrs_build can encode: the memory form. */
		if ((kind == KIND_ULONG && attrs[i].ulValueLen != sizeof(CK_ULONG)) ||
		    (kind == KIND_ULONG_ARRAY && attrs[i].ulValueLen % sizeof(CK_ULONG)) ||
		    (kind == KIND_TEMPLATE && nested)) {
			s = STORE_INVALID;
			goto out;
		}
		if (!attrs[i].ulValueLen)
			continue;
		if (!attrs[i].pValue) {
			s = STORE_INVALID;
			goto out;
		}
		if (kind == KIND_TEMPLATE) {
			CK_ATTRIBUTE *inner;

			if (attrs[i].ulValueLen % sizeof(CK_ATTRIBUTE)) {
				s = STORE_INVALID;
				goto out;
			}
			s = dup_list(attrs[i].pValue, attrs[i].ulValueLen / sizeof(CK_ATTRIBUTE),
				     true, &inner);
			if (s != STORE_OK)
				goto out;
			copy[i].pValue = inner;
		} else {
			copy[i].pValue = malloc(attrs[i].ulValueLen);
			if (!copy[i].pValue) {
				s = STORE_NOMEM;
				goto out;
			}
			memcpy(copy[i].pValue, attrs[i].pValue, attrs[i].ulValueLen);
		}
		copy[i].ulValueLen = attrs[i].ulValueLen;
	}
	s = STORE_OK;
out:
	if (s != STORE_OK && copy) {
		free_values(copy, i + 1 < n ? i + 1 : n, nested);
		OPENSSL_clear_free(copy, n * sizeof(*copy));
		copy = NULL;
	}
	*out = copy;
	return s;
}

store_status store_attrs_dup(const CK_ATTRIBUTE *attrs, size_t n, CK_ATTRIBUTE **out)
{
	if (n > STORE_MAX_ATTRS || (n && !attrs))
		return STORE_INVALID;
	return dup_list(attrs, n, false, out);
}

/* ---- metadata and object records ------------------------------------- */

void record_meta_build(wbuf *b, const store_meta *m)
{
	wbuf_header(b, STORE_REC_META);
	wbuf_add(b, m->store_id, STORE_ID_LEN);
	wbuf_u32(b, m->flags);
	wbuf_u32(b, m->user_fails);
	wbuf_u32(b, m->so_fails);
	wbuf_u8(b, m->kdf_log2n);
	wbuf_u8(b, m->kdf_r);
	wbuf_u8(b, m->kdf_p);
	wbuf_u8(b, m->n_wraps);
	for (size_t i = 0; i < m->n_wraps; i++) {
		const store_wrap *w = &m->wraps[i];

		wbuf_u8(b, w->kind);
		wbuf_add(b, w->salt, sizeof(w->salt));
		wbuf_add(b, w->nonce, sizeof(w->nonce));
		wbuf_add(b, w->ct, sizeof(w->ct));
		wbuf_add(b, w->tag, sizeof(w->tag));
	}
	wbuf_u32(b, (uint32_t)m->sealed_len);
	wbuf_add(b, m->sealed_root, m->sealed_len);
}

/* scrypt costs a parser accepts: an attacker who edits the metadata must
 * not make a login allocate gigabytes or run for minutes before the MAC
 * check can even happen (cf. jose's p2c cap, CVE-2023-50967). */
static bool kdf_params_ok(uint8_t log2n, uint8_t r, uint8_t p)
{
	if (log2n < 4 || log2n > 20 || r < 1 || r > 32 || p < 1 || p > 16)
		return false;
	return ((uint64_t)128 * r << log2n) <= ((uint64_t)1 << 28);
}

static bool sealed_ok(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return len > 0;
}

static store_status parse_meta(rbuf *r, store_meta *m)
{
	const uint8_t *sealed;
	unsigned seen = 0;

	take_into(r, m->store_id, STORE_ID_LEN);
	m->flags = take_u32(r);
	m->user_fails = take_u32(r);
	m->so_fails = take_u32(r);
	m->kdf_log2n = take_u8(r);
	m->kdf_r = take_u8(r);
	m->kdf_p = take_u8(r);
	m->n_wraps = take_u8(r);
	if (r->failed || (m->flags & ~STORE_META_KNOWN_FLAGS) ||
	    !kdf_params_ok(m->kdf_log2n, m->kdf_r, m->kdf_p) || m->n_wraps > STORE_MAX_WRAPS)
		return STORE_DAMAGED;
	for (size_t i = 0; i < m->n_wraps; i++) {
		store_wrap *w = &m->wraps[i];

		w->kind = take_u8(r);
		take_into(r, w->salt, sizeof(w->salt));
		take_into(r, w->nonce, sizeof(w->nonce));
		take_into(r, w->ct, sizeof(w->ct));
		take_into(r, w->tag, sizeof(w->tag));
		if (w->kind < STORE_WRAP_USER || w->kind > STORE_WRAP_NOPIN ||
		    (seen & (1u << w->kind)))
			return STORE_DAMAGED;
		seen |= 1u << w->kind;
	}
	m->sealed_len = take_u32(r);
	if (r->failed || m->sealed_len > STORE_MAX_SEALED)
		return STORE_DAMAGED;
	sealed = take(r, m->sealed_len);
	if (!sealed || !sealed_ok(sealed, m->sealed_len))
		return STORE_DAMAGED;
	m->mac_off = r->off;
	take_into(r, m->mac, STORE_MAC_LEN);
	if (r->failed || r->off != r->len)
		return STORE_DAMAGED;
	m->sealed_root = malloc(m->sealed_len + 1);
	if (!m->sealed_root)
		return STORE_NOMEM;
	memcpy(m->sealed_root, sealed, m->sealed_len);
	m->sealed_root[m->sealed_len] = '\0';
	return STORE_OK;
}

void record_obj_head(uint8_t head[STORE_OBJ_AAD_LEN], uint32_t flags,
		     const uint8_t id[STORE_ID_LEN], const uint8_t nonce[STORE_NONCE_LEN])
{
	wbuf b;

	wbuf_init(&b, false);
	wbuf_header(&b, STORE_REC_OBJECT);
	wbuf_u32(&b, flags);
	wbuf_add(&b, id, STORE_ID_LEN);
	wbuf_add(&b, nonce, STORE_NONCE_LEN);
	/* 40 fixed bytes: cannot fail but for memory, then head is zero and
	 * the seal will not open (never silently a different header). */
	memset(head, 0, STORE_OBJ_AAD_LEN);
	if (!b.failed && b.len == STORE_OBJ_AAD_LEN)
		memcpy(head, b.data, STORE_OBJ_AAD_LEN);
	wbuf_free(&b);
}

void record_obj_build(wbuf *b, const uint8_t head[STORE_OBJ_AAD_LEN],
		      const uint8_t *ct, size_t ct_len, const uint8_t tag[STORE_TAG_LEN])
{
	wbuf_add(b, head, STORE_OBJ_AAD_LEN);
	wbuf_u32(b, (uint32_t)ct_len);
	wbuf_add(b, ct, ct_len);
	wbuf_add(b, tag, STORE_TAG_LEN);
}

static store_status parse_obj(rbuf *r, store_obj_rec *o)
{
	const uint8_t *ct;
	uint32_t ct_len;

	o->flags = take_u32(r);
	take_into(r, o->id, STORE_ID_LEN);
	take_into(r, o->nonce, STORE_NONCE_LEN);
	if (r->failed || (o->flags & ~STORE_OBJ_PRIVATE))
		return STORE_DAMAGED;
	memcpy(o->aad_head, r->p, STORE_OBJ_AAD_LEN);
	ct_len = take_u32(r);
	ct = take(r, ct_len);
	take_into(r, o->tag, STORE_TAG_LEN);
	if (r->failed || r->off != r->len || ct_len > STORE_MAX_FILE)
		return STORE_DAMAGED;
	o->ct = malloc(ct_len ? ct_len : 1);
	if (!o->ct)
		return STORE_NOMEM;
	if (ct_len)
		memcpy(o->ct, ct, ct_len);
	o->ct_len = ct_len;
	return STORE_OK;
}

store_status store_record_parse(const uint8_t *buf, size_t len, store_record *out)
{
	rbuf r = { .p = buf, .len = len };
	store_status s;
	const uint8_t *magic;

	memset(out, 0, sizeof(*out));
	if (!buf || len > STORE_MAX_FILE)
		return STORE_DAMAGED;
	magic = take(&r, 4);
	out->version = take_u16(&r);
	out->type = take_u16(&r);
	if (r.failed || memcmp(magic, STORE_MAGIC, 4) != 0 || out->version == 0)
		return STORE_DAMAGED;
	if (out->version > STORE_FORMAT_VERSION)
		return STORE_NEWER_FORMAT;
	switch (out->type) {
	case STORE_REC_META:
		s = parse_meta(&r, &out->u.meta);
		break;
	case STORE_REC_OBJECT:
		s = parse_obj(&r, &out->u.obj);
		break;
	case STORE_REC_ATTRS:
		s = parse_list(&r, false, &out->u.attrs.attrs, &out->u.attrs.n_attrs);
		if (s == STORE_OK && r.off != r.len) {
			store_attrs_free(out->u.attrs.attrs, out->u.attrs.n_attrs);
			s = STORE_DAMAGED;
		}
		break;
	default:
		s = STORE_DAMAGED;
		break;
	}
	if (s != STORE_OK) {
		/* Release whatever a failed parse allocated. */
		if (out->type == STORE_REC_META)
			free(out->u.meta.sealed_root);
		else if (out->type == STORE_REC_OBJECT)
			free(out->u.obj.ct);
		memset(out, 0, sizeof(*out));
	}
	return s;
}

void store_record_clear(store_record *rec)
{
	switch (rec->type) {
	case STORE_REC_META:
		free(rec->u.meta.sealed_root);
		break;
	case STORE_REC_OBJECT:
		free(rec->u.obj.ct);
		break;
	case STORE_REC_ATTRS:
		store_attrs_free(rec->u.attrs.attrs, rec->u.attrs.n_attrs);
		break;
	default:
		break;
	}
	OPENSSL_cleanse(rec, sizeof(*rec));
}
