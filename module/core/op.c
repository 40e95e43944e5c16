#include "core/op.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/object.h"
#include "core/session.h"
#include "mech/aes.h"
#include "mech/digest.h"
#include "mech/mac.h"
#include "mech/registry.h"
#include "util/log.h"

static const CK_FLAGS kind_flag[TP_OPK_N] = {
	CKF_ENCRYPT, CKF_DECRYPT, CKF_SIGN, CKF_VERIFY, CKF_DIGEST,
};
static const CK_ATTRIBUTE_TYPE kind_usage[TP_OPK_N] = {
	CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, 0,
};

static const char *const kind_name[TP_OPK_N] = {
	"encryption", "decryption", "signing", "verification", "digest",
};

void softop_free_ctx(tp_op_kind kind, void *ctx)
{
	switch (kind) {
	case TP_OPK_ENCRYPT:
	case TP_OPK_DECRYPT:
		aes_cipher_free(ctx);
		break;
	case TP_OPK_SIGN:
	case TP_OPK_VERIFY:
		mac_free(ctx);
		break;
	case TP_OPK_DIGEST:
		digest_free(ctx);
		break;
	default:
		break;
	}
}

void softop_clear(tp_soft_op *op, tp_op_kind kind)
{
	softop_free_ctx(kind, op->ctx);
	memset(op, 0, sizeof(*op));
}

/* An encryption or decryption is either soft or CKM_TANG_JWE. */
static bool slot_taken_locked(const tp_session *s, tp_op_kind kind)
{
	return s->sops[kind].active || (kind == TP_OPK_ENCRYPT && s->enc_op.active) ||
	       (kind == TP_OPK_DECRYPT && s->dec_op.active);
}

void softkey_wipe(tp_key_copy *k)
{
	if (k->value)
		OPENSSL_clear_free(k->value, k->len + 1);
	memset(k, 0, sizeof(*k));
}

CK_RV softkey_copy_locked(tp_lib *lib, tp_session *s, CK_OBJECT_HANDLE h,
			  CK_ATTRIBUTE_TYPE usage, tp_key_copy *out)
{
	const tp_object *obj = object_lookup_locked(lib, s->token, h);
	const CK_ATTRIBUTE *v, *kt;

	memset(out, 0, sizeof(*out));
	if (!obj)
		return CKR_KEY_HANDLE_INVALID;
	v = object_get(obj, CKA_VALUE);
	kt = object_get(obj, CKA_KEY_TYPE);
	if (obj->klass != CKO_SECRET_KEY || !v || !kt || kt->ulValueLen != sizeof(CK_KEY_TYPE))
		return CKR_KEY_TYPE_INCONSISTENT;
	if (usage && !object_bool(obj, usage))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	out->value = malloc(v->ulValueLen + 1);
	if (!out->value)
		return CKR_HOST_MEMORY;
	memcpy(out->value, v->pValue, v->ulValueLen);
	out->len = v->ulValueLen;
	memcpy(&out->key_type, kt->pValue, sizeof(out->key_type));
	return CKR_OK;
}

static CK_RV new_ctx(tp_op_kind kind, const CK_MECHANISM *mech, const tp_key_copy *key,
		     void **ctx)
{
	switch (kind) {
	case TP_OPK_ENCRYPT:
	case TP_OPK_DECRYPT:
		return aes_cipher_new(mech, key->value, key->len, kind == TP_OPK_ENCRYPT,
				      (tp_cipher **)ctx);
	case TP_OPK_SIGN:
	case TP_OPK_VERIFY:
		return mac_new(mech, key->value, key->len, (tp_mac **)ctx);
	case TP_OPK_DIGEST:
		return digest_new(mech, (tp_digest **)ctx);
	default:
		return CKR_GENERAL_ERROR;
	}
}

CK_RV softop_init(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind,
		  const CK_MECHANISM *mech, CK_OBJECT_HANDLE hkey)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const tp_mech *m;
	tp_session *s;
	tp_key_copy key;
	void *ctx = NULL;

	memset(&key, 0, sizeof(key));
	if (!mech)
		return CKR_ARGUMENTS_BAD;
	m = mech_find(mech->mechanism);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (slot_taken_locked(s, kind))
		rv = CKR_OPERATION_ACTIVE;
	else if (!m || !(m->flags & kind_flag[kind]) ||
		 (kind != TP_OPK_DIGEST && !m->key_types))
		rv = CKR_MECHANISM_INVALID;
	else if (kind == TP_OPK_DIGEST)
		rv = CKR_OK;
	else
		rv = softkey_copy_locked(lib, s, hkey, kind_usage[kind], &key);
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv == CKR_OK && kind != TP_OPK_DIGEST) {
		rv = mech_check_key(m, key.key_type, key.len);
		if (rv != CKR_OK)
			log_error("%s %s: key 0x%lx cannot be used (key type 0x%lx, %zu bytes)",
				  m->name, kind_name[kind], (unsigned long)hkey,
				  (unsigned long)key.key_type, key.len);
	} else if (rv == CKR_MECHANISM_INVALID) {
		log_error("%s: not offered for %s", mech_name(mech->mechanism), kind_name[kind]);
	} else if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_KEY_TYPE_INCONSISTENT ||
		   rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
		log_error("%s %s with key 0x%lx: %s", mech_name(mech->mechanism), kind_name[kind],
			  (unsigned long)hkey,
			  rv == CKR_KEY_HANDLE_INVALID ? "no such key"
			  : rv == CKR_KEY_TYPE_INCONSISTENT ? "not a secret key with a value"
							   : "the key's usage attribute forbids it");
	}
	if (rv == CKR_OK)
		rv = new_ctx(kind, mech, &key, &ctx);
	softkey_wipe(&key);
	if (rv != CKR_OK)
		return rv;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_CLOSED;
	} else if (slot_taken_locked(s, kind)) {
		rv = CKR_OPERATION_ACTIVE;   /* another thread won the race */
	} else {
		tp_soft_op *op = &s->sops[kind];

		op->active = true;
		op->busy = false;
		op->mode = TP_OP_FRESH;
		op->mech = mech->mechanism;
		op->ctx = ctx;
		ctx = NULL;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	softop_free_ctx(kind, ctx);
	return rv;
}

bool softop_active(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind)
{
	tp_session *s;
	bool active;

	lib_lock();
	s = session_lookup_locked(lib, hs);
	active = s && s->sops[kind].active;
	lib_unlock();
	return active;
}

CK_RV softop_take(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind, tp_op_mode mode,
		  void **ctx)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_soft_op *op;

	*ctx = NULL;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	op = s ? &s->sops[kind] : NULL;
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else if (op->busy || (op->mode != TP_OP_FRESH && op->mode != mode)) {
		rv = CKR_OPERATION_ACTIVE;
	} else {
		op->busy = true;
		op->mode = mode;
		*ctx = op->ctx;
		op->ctx = NULL;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

/* The failures that end an operation because of its input. */
static const char *input_error(CK_RV rv)
{
	switch (rv) {
	case CKR_DATA_LEN_RANGE: return "data length out of range";
	case CKR_ENCRYPTED_DATA_LEN_RANGE: return "ciphertext length out of range";
	case CKR_ENCRYPTED_DATA_INVALID: return "ciphertext invalid (padding, tag or integrity check)";
	case CKR_SIGNATURE_LEN_RANGE: return "signature of the wrong length";
	case CKR_SIGNATURE_INVALID: return "signature does not match";
	case CKR_KEY_INDIGESTIBLE: return "key cannot be digested";
	case CKR_FUNCTION_NOT_SUPPORTED: return "single-part mechanism used multi-part";
	case CKR_ARGUMENTS_BAD: return "bad arguments";
	default: return NULL;
	}
}

CK_RV softop_give(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind, void *ctx, bool keep,
		  CK_RV rv)
{
	tp_session *s;
	CK_MECHANISM_TYPE mech = 0;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_CLOSED;
	} else if (keep) {
		s->sops[kind].busy = false;
		s->sops[kind].ctx = ctx;
		ctx = NULL;
	} else {
		mech = s->sops[kind].mech;
		softop_clear(&s->sops[kind], kind);
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	softop_free_ctx(kind, ctx);
	if (!keep && input_error(rv))
		log_msg(rv == CKR_SIGNATURE_INVALID ? LOG_WARNING : LOG_ERR,
			"%s %s ended: %s (CK_RV 0x%lx)", mech_name(mech), kind_name[kind],
			input_error(rv), (unsigned long)rv);
	return rv;
}

bool softop_deliver(const uint8_t *res, size_t n, CK_BYTE *out, CK_ULONG *out_len,
		    CK_RV *rv, bool *keep)
{
	if (!out || *out_len < n) {
		*rv = out ? CKR_BUFFER_TOO_SMALL : CKR_OK;
		*out_len = n;
		*keep = true;
		return false;
	}
	if (n)
		memcpy(out, res, n);
	*out_len = n;
	*rv = CKR_OK;
	return true;
}
