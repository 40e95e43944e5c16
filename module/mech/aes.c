#include "mech/aes.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mech/registry.h"
#include "util/ec.h"
#include "util/log.h"

typedef enum aes_mode {
	M_ECB, M_CBC, M_CBC_PAD, M_CTR, M_GCM, M_KW, M_KWP, M_NONE,
} aes_mode;

/* The GCM parameter as PKCS#11 2.40 defines it (no ulIvBits); p11-kit's
 * CK_GCM_PARAMS is the 3.0 layout.  Told apart by ulParameterLen. */
typedef struct gcm_params_240 {
	unsigned char *iv_ptr;
	unsigned long iv_len;
	unsigned char *aad_ptr;
	unsigned long aad_len;
	unsigned long tag_bits;
} gcm_params_240;

/* OpenSSL's GCM takes IVs of 1 to 128 bytes. */
#define GCM_MAX_IV 128
/* Counter blocks encrypted per EVP call in CTR mode. */
#define CTR_BATCH 32
/* EVP lengths are ints: work in chunks (a multiple of the block size). */
#define EVP_CHUNK ((size_t)1 << 30)

struct tp_cipher {
	aes_mode mode;
	CK_MECHANISM_TYPE type;
	bool enc;
	uint8_t key[32];
	size_t key_len;
	/* ECB/CBC/CBC_PAD: the block cipher without padding; CTR: AES-ECB
	 * making the key stream; GCM encryption: the AEAD context. */
	EVP_CIPHER_CTX *ctx;
	/* Block modes: input not yet processed (CBC_PAD decryption keeps the
	 * last whole block until the end: up to 16 bytes). */
	uint8_t part[16];
	size_t part_len;
	/* CTR: the next counter block, its counter width, how many more
	 * blocks the counter allows (saturating), the unused key stream. */
	uint8_t ctr[16];
	unsigned ctr_bits;
	uint64_t blocks_left;
	uint8_t ks[16 * CTR_BATCH];
	size_t ks_pos, ks_len;
	/* GCM */
	uint8_t iv[GCM_MAX_IV];
	size_t iv_len;
	uint8_t *aad;
	size_t aad_len;
	size_t tag_len;
	/* KW/KWP: the explicit initial value, if any (8 or 4 bytes). */
	uint8_t kw_iv[8];
	size_t kw_iv_len;
	/* GCM decryption: ciphertext || tag, until the end. */
	uint8_t *buf;
	size_t buf_len, buf_cap;
};

static aes_mode mode_of(CK_MECHANISM_TYPE type)
{
	switch (type) {
	case CKM_AES_ECB: return M_ECB;
	case CKM_AES_CBC: return M_CBC;
	case CKM_AES_CBC_PAD: return M_CBC_PAD;
	case CKM_AES_CTR: return M_CTR;
	case CKM_AES_GCM: return M_GCM;
	case CKM_AES_KEY_WRAP: return M_KW;
	case CKM_AES_KEY_WRAP_PAD: return M_KWP;
	default: return M_NONE;
	}
}

bool aes_is_cipher(CK_MECHANISM_TYPE type)
{
	return mode_of(type) != M_NONE;
}

/* ---- parameters ------------------------------------------------------ */

typedef struct gcm_view {
	const unsigned char *iv, *aad;
	unsigned long iv_len, iv_bits, aad_len, tag_bits;
	bool has_iv_bits;
} gcm_view;

static bool gcm_view_of(const CK_MECHANISM *m, gcm_view *g)
{
	memset(g, 0, sizeof(*g));
	if (!m->pParameter)
		return false;
	if (m->ulParameterLen == sizeof(CK_GCM_PARAMS)) {
		CK_GCM_PARAMS p;

		memcpy(&p, m->pParameter, sizeof(p));
		g->iv = p.iv_ptr;
		g->iv_len = p.iv_len;
		g->iv_bits = p.iv_bits;
		g->has_iv_bits = true;
		g->aad = p.aad_ptr;
		g->aad_len = p.aad_len;
		g->tag_bits = p.tag_bits;
		return true;
	}
	if (m->ulParameterLen == sizeof(gcm_params_240)) {
		gcm_params_240 p;

		memcpy(&p, m->pParameter, sizeof(p));
		g->iv = p.iv_ptr;
		g->iv_len = p.iv_len;
		g->aad = p.aad_ptr;
		g->aad_len = p.aad_len;
		g->tag_bits = p.tag_bits;
		return true;
	}
	return false;
}

CK_RV aes_check_param(const CK_MECHANISM *m, const char **why)
{
	const char *w = NULL;

	switch (mode_of(m->mechanism)) {
	case M_ECB:
		if (m->ulParameterLen != 0)
			w = "the mechanism takes no parameter";
		break;
	case M_CBC:
	case M_CBC_PAD:
		if (m->ulParameterLen != 16 || !m->pParameter)
			w = "the parameter must be a 16-byte IV";
		break;
	case M_CTR: {
		CK_AES_CTR_PARAMS p;

		if (m->ulParameterLen != sizeof(p) || !m->pParameter) {
			w = "the parameter must be a CK_AES_CTR_PARAMS";
			break;
		}
		memcpy(&p, m->pParameter, sizeof(p));
		if (p.counter_bits == 0 || p.counter_bits > 128)
			w = "ulCounterBits must be 1 to 128";
		break;
	}
	case M_GCM: {
		gcm_view g;

		if (!gcm_view_of(m, &g))
			w = "the parameter must be a CK_GCM_PARAMS (2.40 or 3.0 layout)";
		else if (g.iv_len == 0 || g.iv_len > GCM_MAX_IV || !g.iv)
			w = "the IV must be 1 to 128 bytes";
		else if (g.has_iv_bits && g.iv_bits != 0 && g.iv_bits != 8 * g.iv_len)
			w = "ulIvBits must be 0 or 8 * ulIvLen";
		else if (g.aad_len > TP_AES_MAX_BUFFER || (g.aad_len && !g.aad))
			w = "pAAD/ulAADLen invalid";
		else if (g.tag_bits == 0 || g.tag_bits > 128 || g.tag_bits % 8)
			w = "ulTagBits must be a multiple of 8 from 8 to 128";
		break;
	}
	case M_KW:
		if (m->ulParameterLen != 0 && (m->ulParameterLen != 8 || !m->pParameter))
			w = "the parameter must be absent or an 8-byte initial value";
		break;
	case M_KWP:
		if (m->ulParameterLen != 0 && (m->ulParameterLen != 4 || !m->pParameter))
			w = "the parameter must be absent or a 4-byte alternative initial value";
		break;
	case M_NONE:
		w = "not an AES encryption mechanism";
		break;
	}
	if (why)
		*why = w;
	return w ? CKR_MECHANISM_PARAM_INVALID : CKR_OK;
}

/* ---- set-up ---------------------------------------------------------- */

static EVP_CIPHER *fetch(const char *what, size_t key_len)
{
	char name[32];

	snprintf(name, sizeof(name), "AES-%zu-%s", key_len * 8, what);
	return EVP_CIPHER_fetch(ossl_ctx(), name, NULL);
}

/* A context of cipher `what` with key and iv (no padding). */
static EVP_CIPHER_CTX *evp_new(const char *what, const uint8_t *key, size_t key_len,
			       const uint8_t *iv, bool enc)
{
	EVP_CIPHER *cipher = fetch(what, key_len);
	EVP_CIPHER_CTX *ctx = cipher ? EVP_CIPHER_CTX_new() : NULL;

	if (ctx && (EVP_CipherInit_ex2(ctx, cipher, key, iv, enc ? 1 : 0, NULL) != 1 ||
		    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)) {
		EVP_CIPHER_CTX_free(ctx);
		ctx = NULL;
	}
	EVP_CIPHER_free(cipher);
	return ctx;
}

/* The number of blocks a CTR counter of `bits` bits starting at cb allows
 * before it would repeat: 2^bits - counter, saturated at UINT64_MAX. */
static uint64_t ctr_capacity(const uint8_t cb[16], unsigned bits)
{
	uint64_t low = 0;
	bool high_ones = true;

	for (int i = 8; i < 16; i++)
		low = (low << 8) | cb[i];
	if (bits < 64)
		return ((uint64_t)1 << bits) - (low & (((uint64_t)1 << bits) - 1));
	for (unsigned p = 64; p < bits; p++)
		if (!(cb[15 - p / 8] & (1u << (p % 8))))
			high_ones = false;
	if (!high_ones || low == 0)
		return UINT64_MAX;
	return (uint64_t)0 - low;
}

/* Adds one to the low `bits` bits of cb (big-endian), modulo 2^bits. */
static void ctr_inc(uint8_t cb[16], unsigned bits)
{
	for (int i = 15; i >= 0 && bits > 0; i--) {
		unsigned nb = bits >= 8 ? 8 : bits;
		unsigned mask = (1u << nb) - 1;
		unsigned v = ((cb[i] & mask) + 1) & mask;

		cb[i] = (uint8_t)((cb[i] & ~mask) | v);
		if (v != 0)
			return;
		bits -= nb;
	}
}

static bool gcm_setup(tp_cipher *c, const gcm_view *g)
{
	c->iv_len = g->iv_len;
	memcpy(c->iv, g->iv, g->iv_len);
	c->tag_len = g->tag_bits / 8;
	c->aad_len = g->aad_len;
	c->aad = malloc(g->aad_len ? g->aad_len : 1);
	if (!c->aad)
		return false;
	if (g->aad_len)
		memcpy(c->aad, g->aad, g->aad_len);
	return true;
}

/* A GCM context with key, IV and AAD given: ready for the data. */
static EVP_CIPHER_CTX *gcm_ctx(const tp_cipher *c, bool enc)
{
	EVP_CIPHER *cipher = fetch("GCM", c->key_len);
	EVP_CIPHER_CTX *ctx = cipher ? EVP_CIPHER_CTX_new() : NULL;
	bool ok = ctx != NULL;
	int outl = 0;

	ok = ok && EVP_CipherInit_ex2(ctx, cipher, NULL, NULL, enc ? 1 : 0, NULL) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)c->iv_len, NULL) == 1;
	ok = ok && EVP_CipherInit_ex2(ctx, NULL, c->key, c->iv, enc ? 1 : 0, NULL) == 1;
	for (size_t off = 0; ok && off < c->aad_len; off += EVP_CHUNK) {
		size_t n = c->aad_len - off < EVP_CHUNK ? c->aad_len - off : EVP_CHUNK;

		ok = EVP_CipherUpdate(ctx, NULL, &outl, c->aad + off, (int)n) == 1;
	}
	EVP_CIPHER_free(cipher);
	if (!ok) {
		EVP_CIPHER_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

CK_RV aes_cipher_new(const CK_MECHANISM *mech, const uint8_t *key, size_t key_len, bool enc,
		     tp_cipher **out)
{
	const char *why = NULL;
	CK_RV rv = aes_check_param(mech, &why);
	tp_cipher *c = NULL;
	bool ok = false;

	*out = NULL;
	if (rv != CKR_OK) {
		log_error("%s: invalid mechanism parameter (%lu bytes): %s",
			  mech_name(mech->mechanism), (unsigned long)mech->ulParameterLen, why);
		return rv;
	}
	if (key_len != 16 && key_len != 24 && key_len != 32)
		return CKR_KEY_SIZE_RANGE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CKR_HOST_MEMORY;
	c->mode = mode_of(mech->mechanism);
	c->type = mech->mechanism;
	c->enc = enc;
	memcpy(c->key, key, key_len);
	c->key_len = key_len;
	switch (c->mode) {
	case M_ECB:
		ok = (c->ctx = evp_new("ECB", key, key_len, NULL, enc)) != NULL;
		break;
	case M_CBC:
	case M_CBC_PAD:
		ok = (c->ctx = evp_new("CBC", key, key_len, mech->pParameter, enc)) != NULL;
		break;
	case M_CTR: {
		CK_AES_CTR_PARAMS p;

		memcpy(&p, mech->pParameter, sizeof(p));
		memcpy(c->ctr, p.cb, 16);
		c->ctr_bits = (unsigned)p.counter_bits;
		c->blocks_left = ctr_capacity(c->ctr, c->ctr_bits);
		OPENSSL_cleanse(&p, sizeof(p));
		/* The key stream is AES-ECB encryption of the counter blocks. */
		ok = (c->ctx = evp_new("ECB", key, key_len, NULL, true)) != NULL;
		break;
	}
	case M_GCM: {
		gcm_view g;

		gcm_view_of(mech, &g);
		ok = gcm_setup(c, &g);
		if (ok && enc)
			ok = (c->ctx = gcm_ctx(c, true)) != NULL;
		break;
	}
	case M_KW:
	case M_KWP:
		c->kw_iv_len = mech->ulParameterLen;
		if (c->kw_iv_len)
			memcpy(c->kw_iv, mech->pParameter, c->kw_iv_len);
		ok = true;
		break;
	case M_NONE:
		break;
	}
	if (!ok) {
		aes_cipher_free(c);
		return CKR_GENERAL_ERROR;
	}
	*out = c;
	return CKR_OK;
}

void aes_cipher_free(tp_cipher *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->ctx);
	free(c->aad);
	if (c->buf)
		OPENSSL_clear_free(c->buf, c->buf_cap);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

bool aes_cipher_multipart(const tp_cipher *c)
{
	return c->mode != M_KW && c->mode != M_KWP;
}

/* A deep copy (the EVP state included). */
static tp_cipher *dup_cipher(const tp_cipher *c)
{
	tp_cipher *d = malloc(sizeof(*d));

	if (!d)
		return NULL;
	memcpy(d, c, sizeof(*d));
	d->ctx = NULL;
	d->aad = NULL;
	d->buf = NULL;
	d->buf_len = d->buf_cap = 0;
	if (c->ctx) {
		d->ctx = EVP_CIPHER_CTX_new();
		if (!d->ctx || EVP_CIPHER_CTX_copy(d->ctx, c->ctx) != 1)
			goto fail;
	}
	if (c->aad) {
		d->aad = malloc(c->aad_len ? c->aad_len : 1);
		if (!d->aad)
			goto fail;
		if (c->aad_len)
			memcpy(d->aad, c->aad, c->aad_len);
	}
	if (c->buf_len) {
		d->buf = malloc(c->buf_len);
		if (!d->buf)
			goto fail;
		memcpy(d->buf, c->buf, c->buf_len);
		d->buf_len = d->buf_cap = c->buf_len;
	}
	return d;
fail:
	aes_cipher_free(d);
	return NULL;
}

/* ---- updates --------------------------------------------------------- */

static bool is_block(aes_mode m)
{
	return m == M_ECB || m == M_CBC || m == M_CBC_PAD;
}

CK_RV aes_cipher_update_len(const tp_cipher *c, size_t in_len, size_t *out_len)
{
	*out_len = 0;
	if (is_block(c->mode)) {
		size_t total;

		if (in_len > SIZE_MAX - 32)
			return c->enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
		total = c->part_len + in_len;
		if (c->mode == M_CBC_PAD && !c->enc)
			*out_len = total ? (total - 1) / 16 * 16 : 0;  /* keep the last block */
		else
			*out_len = total / 16 * 16;
		return CKR_OK;
	}
	switch (c->mode) {
	case M_CTR: {
		size_t avail = c->ks_len - c->ks_pos;

		if (in_len > avail) {
			size_t more = in_len - avail;
			uint64_t need = more / 16 + (more % 16 != 0);

			if (c->blocks_left != UINT64_MAX && need > c->blocks_left)
				return CKR_DATA_LEN_RANGE;
		}
		*out_len = in_len;
		return CKR_OK;
	}
	case M_GCM:
		if (c->enc) {
			*out_len = in_len;
			return CKR_OK;
		}
		/* Decryption releases nothing before the tag is verified. */
		if (in_len > TP_AES_MAX_BUFFER - c->buf_len)
			return CKR_ENCRYPTED_DATA_LEN_RANGE;
		return CKR_OK;
	default:
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
}

/* EVP update of len bytes (a multiple of 16 for the block modes). */
static bool evp_run(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
	for (size_t off = 0; off < len; off += EVP_CHUNK) {
		size_t n = len - off < EVP_CHUNK ? len - off : EVP_CHUNK;
		int outl = 0;

		if (EVP_CipherUpdate(ctx, out + off, &outl, in + off, (int)n) != 1 ||
		    (size_t)outl != n)
			return false;
	}
	return true;
}

static CK_RV block_update(tp_cipher *c, const uint8_t *in, size_t in_len, uint8_t *out,
			  size_t n)
{
	size_t done = 0, used = 0;

	if (n > 0 && c->part_len > 0) {
		size_t fill = 16 - c->part_len;

		memcpy(c->part + c->part_len, in, fill);
		used = fill;
		if (!evp_run(c->ctx, out, c->part, 16))
			return CKR_GENERAL_ERROR;
		done = 16;
		c->part_len = 0;
	}
	if (n > done) {
		if (!evp_run(c->ctx, out + done, in + used, n - done))
			return CKR_GENERAL_ERROR;
		used += n - done;
	}
	memcpy(c->part + c->part_len, in + used, in_len - used);
	c->part_len += in_len - used;
	return CKR_OK;
}

static CK_RV ctr_update(tp_cipher *c, const uint8_t *in, size_t in_len, uint8_t *out)
{
	for (size_t i = 0; i < in_len; i++) {
		if (c->ks_pos == c->ks_len) {
			uint8_t blocks[16 * CTR_BATCH];
			size_t left = (in_len - i + 15) / 16;
			size_t nb = left < CTR_BATCH ? left : CTR_BATCH;

			for (size_t b = 0; b < nb; b++) {
				memcpy(blocks + 16 * b, c->ctr, 16);
				ctr_inc(c->ctr, c->ctr_bits);
			}
			if (c->blocks_left != UINT64_MAX)
				c->blocks_left -= nb;
			if (!evp_run(c->ctx, c->ks, blocks, 16 * nb))
				return CKR_GENERAL_ERROR;
			OPENSSL_cleanse(blocks, sizeof(blocks));
			c->ks_pos = 0;
			c->ks_len = 16 * nb;
		}
		out[i] = in[i] ^ c->ks[c->ks_pos++];
	}
	return CKR_OK;
}

/* Appends to the decryption buffer; the old one is wiped, not realloc'd. */
static CK_RV buffer_append(tp_cipher *c, const uint8_t *in, size_t in_len)
{
	if (c->buf_len + in_len > c->buf_cap) {
		size_t cap = c->buf_cap ? c->buf_cap : 256;
		uint8_t *p;

		while (cap < c->buf_len + in_len)
			cap *= 2;
		p = malloc(cap);
		if (!p)
			return CKR_HOST_MEMORY;
		if (c->buf_len)
			memcpy(p, c->buf, c->buf_len);
		if (c->buf)
			OPENSSL_clear_free(c->buf, c->buf_cap);
		c->buf = p;
		c->buf_cap = cap;
	}
	if (in_len)
		memcpy(c->buf + c->buf_len, in, in_len);
	c->buf_len += in_len;
	return CKR_OK;
}

CK_RV aes_cipher_update(tp_cipher *c, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t *out_len)
{
	size_t n = 0;
	CK_RV rv = aes_cipher_update_len(c, in_len, &n);

	*out_len = 0;
	if (rv != CKR_OK)
		return rv;
	if (is_block(c->mode))
		rv = block_update(c, in, in_len, out, n);
	else if (c->mode == M_CTR)
		rv = ctr_update(c, in, in_len, out);
	else if (c->enc)
		rv = evp_run(c->ctx, out, in, in_len) ? CKR_OK : CKR_GENERAL_ERROR;
	else
		rv = buffer_append(c, in, in_len);
	if (rv == CKR_OK)
		*out_len = n;
	return rv;
}

/* ---- the end ----------------------------------------------------------- */

static uint8_t *out_new(size_t n)
{
	return malloc(n ? n : 1);
}

/* Decrypts and verifies ct||tag (GCM) into a new buffer. */
static CK_RV gcm_decrypt(const tp_cipher *c, const uint8_t *in, size_t in_len,
			 uint8_t **out, size_t *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *pt = NULL, tag[16];
	size_t n;
	int outl = 0;

	if (in_len < c->tag_len)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	if (in_len > TP_AES_MAX_BUFFER)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	n = in_len - c->tag_len;
	memcpy(tag, in + n, c->tag_len);
	pt = out_new(n);
	ctx = gcm_ctx(c, false);
	if (!pt || !ctx)
		goto out;
	if (!evp_run(ctx, pt, in, n))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)c->tag_len, tag) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, pt + n, &outl) != 1) {
		rv = CKR_ENCRYPTED_DATA_INVALID;
		goto out;
	}
	*out = pt;
	*out_len = n;
	pt = NULL;
	rv = CKR_OK;
out:
	if (pt)
		OPENSSL_clear_free(pt, n ? n : 1);
	EVP_CIPHER_CTX_free(ctx);
	return rv;
}

CK_RV aes_cipher_final(const tp_cipher *c, uint8_t **out, size_t *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t block[16], *res = NULL;
	size_t n = 0;
	int outl = 0;

	*out = NULL;
	*out_len = 0;
	if (c->mode == M_GCM && !c->enc)
		return gcm_decrypt(c, c->buf, c->buf_len, out, out_len);
	if (!aes_cipher_multipart(c))
		return CKR_FUNCTION_NOT_SUPPORTED;
	res = out_new(16);
	if (!res)
		return CKR_HOST_MEMORY;
	if (c->ctx) {
		/* Work on a copy: c stays as it is for a retry. */
		ctx = EVP_CIPHER_CTX_new();
		if (!ctx || EVP_CIPHER_CTX_copy(ctx, c->ctx) != 1)
			goto out;
	}
	switch (c->mode) {
	case M_ECB:
	case M_CBC:
		if (c->part_len)
			rv = c->enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
		else
			rv = CKR_OK;
		break;
	case M_CBC_PAD:
		if (c->enc) {
			uint8_t pad = (uint8_t)(16 - c->part_len);

			memcpy(block, c->part, c->part_len);
			memset(block + c->part_len, pad, pad);
			if (!evp_run(ctx, res, block, 16))
				goto out;
			n = 16;
			rv = CKR_OK;
		} else if (c->part_len != 16) {
			rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
		} else {
			unsigned pad, bad;

			if (!evp_run(ctx, block, c->part, 16))
				goto out;
			/* PKCS#7: 1..16 bytes, each the pad length. */
			pad = block[15];
			bad = (pad == 0) | (pad > 16);
			for (unsigned i = 0; i < 16; i++)
				bad |= (i >= 16 - pad) & (block[i] != pad);
			if (bad) {
				rv = CKR_ENCRYPTED_DATA_INVALID;
			} else {
				n = 16 - pad;
				memcpy(res, block, n);
				rv = CKR_OK;
			}
		}
		break;
	case M_CTR:
		rv = CKR_OK;
		break;
	case M_GCM:
		if (EVP_EncryptFinal_ex(ctx, block, &outl) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)c->tag_len, res) != 1)
			goto out;
		n = c->tag_len;
		rv = CKR_OK;
		break;
	default:
		break;
	}
out:
	OPENSSL_cleanse(block, sizeof(block));
	EVP_CIPHER_CTX_free(ctx);
	if (rv == CKR_OK) {
		*out = res;
		*out_len = n;
	} else {
		OPENSSL_clear_free(res, 16);
	}
	return rv;
}

/* RFC 3394 / RFC 5649 through OpenSSL's wrap ciphers, single-part. */
static CK_RV key_wrap(const tp_cipher *c, const uint8_t *in, size_t in_len,
		      uint8_t **out, size_t *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	bool pad = c->mode == M_KWP;
	EVP_CIPHER *cipher = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *res = NULL;
	size_t cap = 0;
	int outl = 0, finl = 0;

	if (c->enc) {
		if (pad ? in_len == 0 : (in_len % 8 || in_len < 16))
			return CKR_DATA_LEN_RANGE;
		if (in_len > TP_AES_MAX_BUFFER)
			return CKR_DATA_LEN_RANGE;
		cap = (in_len + 7) / 8 * 8 + 8;
	} else {
		if (in_len % 8 || in_len < (pad ? 16u : 24u) || in_len > TP_AES_MAX_BUFFER)
			return CKR_ENCRYPTED_DATA_LEN_RANGE;
		cap = in_len;
	}
	res = out_new(cap + 16);
	cipher = fetch(pad ? "WRAP-PAD" : "WRAP", c->key_len);
	ctx = EVP_CIPHER_CTX_new();
	if (!res || !cipher || !ctx)
		goto out;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex2(ctx, cipher, c->key, c->kw_iv_len ? c->kw_iv : NULL,
			       c->enc ? 1 : 0, NULL) != 1)
		goto out;
	if (EVP_CipherUpdate(ctx, res, &outl, in, (int)in_len) != 1 || outl < 0 ||
	    EVP_CipherFinal_ex(ctx, res + outl, &finl) != 1) {
		rv = c->enc ? CKR_GENERAL_ERROR : CKR_ENCRYPTED_DATA_INVALID;
		goto out;
	}
	*out = res;
	*out_len = (size_t)outl + (size_t)finl;
	res = NULL;
	rv = CKR_OK;
out:
	if (res)
		OPENSSL_clear_free(res, cap + 16);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	return rv;
}

CK_RV aes_cipher_oneshot(const tp_cipher *c, const uint8_t *in, size_t in_len,
			 uint8_t **out, size_t *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_cipher *d = NULL;
	uint8_t *res = NULL, *tail = NULL;
	size_t n = 0, cap = 0, tail_len = 0;

	*out = NULL;
	*out_len = 0;
	if (!aes_cipher_multipart(c))
		return key_wrap(c, in, in_len, out, out_len);
	if (c->mode == M_GCM && !c->enc)
		return gcm_decrypt(c, in, in_len, out, out_len);
	rv = aes_cipher_update_len(c, in_len, &n);
	if (rv != CKR_OK)
		return rv;
	d = dup_cipher(c);
	cap = n + 16;
	res = out_new(cap);
	if (!d || !res) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	rv = aes_cipher_update(d, in, in_len, res, &n);
	if (rv == CKR_OK)
		rv = aes_cipher_final(d, &tail, &tail_len);
	if (rv != CKR_OK)
		goto out;
	memcpy(res + n, tail, tail_len);
	*out = res;
	*out_len = n + tail_len;
	res = NULL;
out:
	if (tail)
		OPENSSL_clear_free(tail, 16);
	if (res)
		OPENSSL_clear_free(res, cap);
	aes_cipher_free(d);
	return rv;
}
