#include "core/crypt.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/cipher.h"
#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "mech/jwe.h"
#include "mech/registry.h"
#include "util/ec.h"
#include "util/log.h"
#include "tang-pkcs11.h"

/* Update input bounds: a JWE (plus some trailing whitespace, which the
 * parse tolerates) and the largest plaintext the module encrypts. */
#define DECRYPT_MAX_IN (TP_JWE_MAX_TEXT + 1024)
#define ENCRYPT_MAX_IN TP_JWE_MAX_PLAINTEXT

static void wipe_free(void *p, size_t len)
{
	if (p)
		OPENSSL_clear_free(p, len);
}

void crypt_op_clear(tp_crypt_op *op)
{
	/* The Update buffer may hold plaintext; the JWE is not secret. */
	wipe_free(op->in, op->in_cap);
	free(op->out);
	memset(op, 0, sizeof(*op));
}

static tp_crypt_op *op_of(tp_session *s, bool enc)
{
	return enc ? &s->enc_op : &s->dec_op;
}

/* ---- Init ----------------------------------------------------------- */

static CK_RV check_key_locked(const tp_object *obj, bool enc)
{
	if (!obj)
		return CKR_KEY_HANDLE_INVALID;
	/* Encrypt with the Tang public key, decrypt with a Tang private key. */
	if (!obj->is_tang || obj->klass != (enc ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY) ||
	    !obj->token->srv)
		return CKR_KEY_TYPE_INCONSISTENT;
	if (!object_bool(obj, enc ? CKA_ENCRYPT : CKA_DECRYPT))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	return CKR_OK;
}

static CK_RV op_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		     CK_OBJECT_HANDLE hkey, bool enc)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const tp_mech *m;
	tp_session *s;
	tp_crypt_op *op = NULL;

	if (!mech)
		return CKR_ARGUMENTS_BAD;
	m = mech_find(mech->mechanism);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (s)
		op = op_of(s, enc);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (op->active || s->sops[enc ? TP_OPK_ENCRYPT : TP_OPK_DECRYPT].active)
		rv = CKR_OPERATION_ACTIVE;
	else if (!m || !(m->flags & (enc ? CKF_ENCRYPT : CKF_DECRYPT)))
		rv = CKR_MECHANISM_INVALID;
	else if (mech_jwe_check_param(mech) != CKR_OK)
		rv = CKR_MECHANISM_PARAM_INVALID;
	else
		rv = check_key_locked(object_lookup_locked(lib, s->token, hkey), enc);
	if (rv == CKR_OK) {
		const tp_object *obj = object_lookup_locked(lib, s->token, hkey);

		op->active = true;
		op->mode = TP_OP_FRESH;
		op->mech = mech->mechanism;
		op->token = obj->token;
		op->key = obj->key;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv == CKR_MECHANISM_PARAM_INVALID)
		log_error("C_%sInit(CKM_TANG_JWE): the mechanism takes no parameter (%lu bytes given)",
			  enc ? "Encrypt" : "Decrypt", (unsigned long)mech->ulParameterLen);
	return rv;
}

/* CKM_TANG_JWE here, every other mechanism on a soft key (core/op.c). */
CK_RV crypt_encrypt_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
			 CK_OBJECT_HANDLE key)
{
	if (mech && mech->mechanism != CKM_TANG_JWE)
		return softop_init(lib, hs, TP_OPK_ENCRYPT, mech, key);
	return op_init(lib, hs, mech, key, true);
}

CK_RV crypt_decrypt_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
			 CK_OBJECT_HANDLE key)
{
	if (mech && mech->mechanism != CKM_TANG_JWE)
		return softop_init(lib, hs, TP_OPK_DECRYPT, mech, key);
	return op_init(lib, hs, mech, key, false);
}

/* ---- Update: buffer the input -------------------------------------- */

/* Grows op->in to hold need bytes; the old buffer is wiped, never left
 * behind by realloc (it may hold plaintext). */
static bool grow_locked(tp_crypt_op *op, size_t need)
{
	size_t cap = op->in_cap ? op->in_cap : 4096;
	uint8_t *p;

	if (need <= op->in_cap)
		return true;
	while (cap < need)
		cap *= 2;
	p = malloc(cap);
	if (!p)
		return false;
	if (op->in_len)
		memcpy(p, op->in, op->in_len);
	wipe_free(op->in, op->in_cap);
	op->in = p;
	op->in_cap = cap;
	return true;
}

static CK_RV append_locked(tp_crypt_op *op, bool enc, const CK_BYTE *in, CK_ULONG in_len)
{
	size_t max = enc ? ENCRYPT_MAX_IN : DECRYPT_MAX_IN;

	if (in_len > max - op->in_len)
		return enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_INVALID;
	if (!grow_locked(op, op->in_len + in_len))
		return CKR_HOST_MEMORY;
	if (in_len)
		memcpy(op->in + op->in_len, in, in_len);
	op->in_len += in_len;
	op->mode = TP_OP_MULTI;
	/* A JWE computed by an earlier EncryptFinal length query is stale. */
	free(op->out);
	op->out = NULL;
	op->out_len = 0;
	return CKR_OK;
}

static CK_RV op_update(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, const CK_BYTE *in,
		       CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_crypt_op *op = NULL;
	size_t had = 0;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (s)
		op = op_of(s, enc);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!op->active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else if (op->busy || op->mode == TP_OP_SINGLE)
		rv = CKR_OPERATION_ACTIVE;
	else if (!out_len || (!in && in_len))
		rv = CKR_ARGUMENTS_BAD;
	else if (!out)
		rv = CKR_OK;   /* length query: nothing consumed */
	else
		rv = append_locked(op, enc, in, in_len);
	if (rv == CKR_OK) {
		*out_len = 0;
	} else if (rv != CKR_SESSION_HANDLE_INVALID && rv != CKR_OPERATION_NOT_INITIALIZED &&
		   rv != CKR_OPERATION_ACTIVE) {
		had = op->in_len;
		crypt_op_clear(op);
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv == CKR_DATA_LEN_RANGE || rv == CKR_ENCRYPTED_DATA_INVALID)
		log_error("C_%sUpdate(CKM_TANG_JWE): input larger than %zu bytes (%zu buffered)",
			  enc ? "Encrypt" : "Decrypt", (size_t)(enc ? ENCRYPT_MAX_IN : DECRYPT_MAX_IN),
			  had);
	return rv;
}

CK_RV crypt_encrypt_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			   CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	if (softop_active(lib, hs, TP_OPK_ENCRYPT))
		return softcipher_update(lib, hs, true, in, in_len, out, out_len);
	return op_update(lib, hs, true, in, in_len, out, out_len);
}

CK_RV crypt_decrypt_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			   CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	if (softop_active(lib, hs, TP_OPK_DECRYPT))
		return softcipher_update(lib, hs, false, in, in_len, out, out_len);
	return op_update(lib, hs, false, in, in_len, out, out_len);
}

/* ---- single-part and Final steps: run unlocked --------------------- */

/* What a step took from its operation while the lock is dropped. */
typedef struct step {
	bool enc;
	bool keep;                   /* the operation survives this step */
	tp_token *tok;
	tp_exchange_key key;
	uint8_t *in;                 /* the op's Update buffer */
	size_t in_len, in_cap;
	char *out;                   /* encrypt: the JWE not yet delivered */
	size_t out_len;
	uint8_t digest[32];
	tp_err dev_err;
} step;

static CK_RV step_begin(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, tp_op_mode mode, step *st)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_crypt_op *op = NULL;

	memset(st, 0, sizeof(*st));
	st->enc = enc;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (s)
		op = op_of(s, enc);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else if (op->busy || (op->mode != TP_OP_FRESH && op->mode != mode)) {
		rv = CKR_OPERATION_ACTIVE;
	} else {
		op->busy = true;
		op->mode = mode;
		st->tok = op->token;     /* lives as long as the lib we hold */
		st->key = op->key;
		st->in = op->in;
		st->in_len = op->in_len;
		st->in_cap = op->in_cap;
		st->out = op->out;
		st->out_len = op->out_len;
		memcpy(st->digest, op->out_digest, sizeof(st->digest));
		op->in = NULL;
		op->in_len = op->in_cap = 0;
		op->out = NULL;
		op->out_len = 0;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

/* Gives the buffers back if the operation goes on, ends it otherwise. */
static CK_RV step_end(tp_lib *lib, CK_SESSION_HANDLE hs, step *st, CK_RV rv)
{
	tp_session *s;
	tp_crypt_op *op;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		/* Closed by another thread (or C_Finalize) meanwhile. */
		rv = CKR_SESSION_CLOSED;
	} else {
		op = op_of(s, st->enc);
		op->busy = false;
		/* A failure at Tang, or the end of the operation (0: it worked). */
		if (st->dev_err != TP_OK || !st->keep)
			s->device_error = st->dev_err;
		if (st->keep) {
			op->in = st->in;
			op->in_len = st->in_len;
			op->in_cap = st->in_cap;
			op->out = st->out;
			op->out_len = st->out_len;
			memcpy(op->out_digest, st->digest, sizeof(st->digest));
			st->in = NULL;
			st->out = NULL;
		} else {
			crypt_op_clear(op);
		}
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	wipe_free(st->in, st->in_cap);
	free(st->out);
	return rv;
}

/* The two-call convention: a NULL buffer asks for the length, a short one
 * gets CKR_BUFFER_TOO_SMALL; both keep the operation. */
static bool needs_room(step *st, CK_BYTE *out, CK_ULONG *out_len, size_t n, CK_RV *rv)
{
	if (out && *out_len >= n)
		return false;
	*rv = out ? CKR_BUFFER_TOO_SMALL : CKR_OK;
	*out_len = n;
	st->keep = true;
	return true;
}

/* Everything local first; the exchange only when the plaintext can be
 * delivered (its length is the ciphertext's). */
static CK_RV decrypt_jwe(step *st, const CK_BYTE *in, size_t in_len,
			 CK_BYTE *out, CK_ULONG *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_clevis_jwe cj;
	uint8_t *pt = NULL;
	size_t n = 0;

	rv = mech_jwe_parse(st->tok->srv, in, in_len, CKR_ENCRYPTED_DATA_INVALID, &cj);
	if (rv != CKR_OK)
		goto out;
	n = cj.jwe.ciphertext_len;
	if (needs_room(st, out, out_len, n, &rv))
		goto out;
	/* Network, no lock held. */
	rv = mech_jwe_decrypt(st->tok->srv, &cj, CKR_ENCRYPTED_DATA_INVALID, &pt, &st->dev_err);
	if (rv != CKR_OK)
		goto out;
	if (n)
		memcpy(out, pt, n);
	*out_len = n;
out:
	wipe_free(pt, n + 1);
	clevis_jwe_clear(&cj);
	return rv;
}

CK_RV crypt_decrypt(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		    CK_BYTE *out, CK_ULONG *out_len)
{
	step st;
	CK_RV rv;

	if (softop_active(lib, hs, TP_OPK_DECRYPT))
		return softcipher_single(lib, hs, false, in, in_len, out, out_len);
	rv = step_begin(lib, hs, false, TP_OP_SINGLE, &st);
	if (rv != CKR_OK)
		return rv;
	if (!out_len || (!in && in_len))
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = decrypt_jwe(&st, in, in_len, out, out_len);
	return step_end(lib, hs, &st, rv);
}

CK_RV crypt_decrypt_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG *out_len)
{
	step st;
	CK_RV rv;

	if (softop_active(lib, hs, TP_OPK_DECRYPT))
		return softcipher_final(lib, hs, false, out, out_len);
	rv = step_begin(lib, hs, false, TP_OP_MULTI, &st);
	if (rv != CKR_OK)
		return rv;
	if (!out_len)
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = decrypt_jwe(&st, st.in, st.in_len, out, out_len);
	return step_end(lib, hs, &st, rv);
}

static bool sha256(const CK_BYTE *in, size_t len, uint8_t *md)
{
	EVP_MD *alg = EVP_MD_fetch(ossl_ctx(), "SHA256", NULL);
	unsigned int md_len = 0;
	bool ok = alg && EVP_Digest(in, len, md, &md_len, alg, NULL) == 1;

	EVP_MD_free(alg);
	return ok;
}

/* The JWE is computed once (no network: from the cached advertisement)
 * and kept until delivered, so a length query and the delivery agree. */
static CK_RV encrypt_deliver(step *st, const CK_BYTE *pt, size_t len,
			     CK_BYTE *out, CK_ULONG *out_len)
{
	CK_RV rv = CKR_OK;

	if (!st->out) {
		rv = mech_jwe_encrypt(st->tok->srv, &st->key, pt, len, &st->out,
				      &st->out_len, &st->dev_err);
		if (rv != CKR_OK)
			return rv;
	}
	if (needs_room(st, out, out_len, st->out_len, &rv))
		return rv;
	memcpy(out, st->out, st->out_len);
	*out_len = st->out_len;
	return CKR_OK;
}

CK_RV crypt_encrypt(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		    CK_BYTE *out, CK_ULONG *out_len)
{
	uint8_t md[32];
	step st;
	CK_RV rv;

	if (softop_active(lib, hs, TP_OPK_ENCRYPT))
		return softcipher_single(lib, hs, true, in, in_len, out, out_len);
	rv = step_begin(lib, hs, true, TP_OP_SINGLE, &st);
	if (rv != CKR_OK)
		return rv;
	if (!out_len || (!in && in_len)) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (!sha256(in, in_len, md)) {
		rv = CKR_GENERAL_ERROR;
	} else {
		/* A kept JWE serves the call only if it was made of this data. */
		if (st.out && memcmp(md, st.digest, sizeof(md)) != 0) {
			free(st.out);
			st.out = NULL;
		}
		memcpy(st.digest, md, sizeof(md));
		rv = encrypt_deliver(&st, in, in_len, out, out_len);
	}
	return step_end(lib, hs, &st, rv);
}

CK_RV crypt_encrypt_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG *out_len)
{
	step st;
	CK_RV rv;

	if (softop_active(lib, hs, TP_OPK_ENCRYPT))
		return softcipher_final(lib, hs, true, out, out_len);
	rv = step_begin(lib, hs, true, TP_OP_MULTI, &st);
	if (rv != CKR_OK)
		return rv;
	if (!out_len)
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = encrypt_deliver(&st, st.in, st.in_len, out, out_len);
	return step_end(lib, hs, &st, rv);
}
