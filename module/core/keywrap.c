#include "core/keywrap.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/keytmpl.h"
#include "core/object.h"
#include "core/op.h"
#include "core/session.h"
#include "mech/aes.h"
#include "mech/registry.h"
#include "util/log.h"

static const uint8_t empty[1];

/* The AES key that wraps or unwraps: a copy of its value. */
static CK_RV wrapping_key_locked(tp_lib *lib, tp_session *s, CK_OBJECT_HANDLE h, bool wrap,
				 tp_key_copy *k)
{
	CK_RV rv = softkey_copy_locked(lib, s, h, wrap ? CKA_WRAP : CKA_UNWRAP, k);

	if (rv == CKR_KEY_HANDLE_INVALID)
		return wrap ? CKR_WRAPPING_KEY_HANDLE_INVALID : CKR_UNWRAPPING_KEY_HANDLE_INVALID;
	if (rv == CKR_OK && k->key_type != CKK_AES)
		rv = CKR_KEY_TYPE_INCONSISTENT;
	if (rv == CKR_OK && k->len != 16 && k->len != 24 && k->len != 32)
		rv = wrap ? CKR_WRAPPING_KEY_SIZE_RANGE : CKR_UNWRAPPING_KEY_SIZE_RANGE;
	if (rv == CKR_KEY_TYPE_INCONSISTENT)
		rv = wrap ? CKR_WRAPPING_KEY_TYPE_INCONSISTENT : CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
	if (rv != CKR_OK)
		softkey_wipe(k);
	return rv;
}

static CK_RV check_mech(const CK_MECHANISM *mech, CK_FLAGS need)
{
	const tp_mech *m = mech_find(mech->mechanism);

	if (!m || !(m->flags & need) || !aes_is_cipher(mech->mechanism))
		return CKR_MECHANISM_INVALID;
	return CKR_OK;
}

/* Zero padding of the modes that need whole blocks. */
static size_t padded_len(CK_MECHANISM_TYPE type, size_t n)
{
	switch (type) {
	case CKM_AES_ECB:
	case CKM_AES_CBC:
		return (n + 15) / 16 * 16;
	case CKM_AES_KEY_WRAP:
		return n < 16 ? 16 : (n + 7) / 8 * 8;
	default:
		return n;
	}
}

CK_RV keywrap_wrap(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		   CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, CK_BYTE *out,
		   CK_ULONG *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_key_copy wk, kk;
	tp_cipher *c = NULL;
	uint8_t *data = NULL, *res = NULL;
	size_t data_len = 0, n = 0;
	bool keep = false;

	memset(&wk, 0, sizeof(wk));
	memset(&kk, 0, sizeof(kk));
	if (!mech || !out_len)
		return CKR_ARGUMENTS_BAD;
	rv = check_mech(mech, CKF_WRAP);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (rv == CKR_OK) {
		const tp_object *wobj = object_lookup_locked(lib, s->token, wrapping);
		const tp_object *kobj = object_lookup_locked(lib, s->token, key);

		rv = wrapping_key_locked(lib, s, wrapping, true, &wk);
		if (rv == CKR_OK && !kobj)
			rv = CKR_KEY_HANDLE_INVALID;
		else if (rv == CKR_OK && (kobj->klass != CKO_SECRET_KEY ||
					  !object_get(kobj, CKA_VALUE)))
			rv = CKR_KEY_NOT_WRAPPABLE;
		else if (rv == CKR_OK && !object_bool(kobj, CKA_EXTRACTABLE))
			rv = CKR_KEY_UNEXTRACTABLE;
		else if (rv == CKR_OK && object_bool(kobj, CKA_WRAP_WITH_TRUSTED) &&
			 !object_bool(wobj, CKA_TRUSTED))
			rv = CKR_KEY_NOT_WRAPPABLE;
		if (rv == CKR_OK)
			rv = softkey_copy_locked(lib, s, key, 0, &kk);
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK)
		goto out;
	rv = aes_cipher_new(mech, wk.value, wk.len, true, &c);
	if (rv != CKR_OK)
		goto out;
	data_len = padded_len(mech->mechanism, kk.len);
	data = calloc(1, data_len + 1);
	if (!data) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	memcpy(data, kk.value, kk.len);
	rv = aes_cipher_oneshot(c, data, data_len, &res, &n);
	if (rv == CKR_DATA_LEN_RANGE)
		rv = CKR_KEY_SIZE_RANGE;
	if (rv == CKR_OK)
		softop_deliver(res, n, out, out_len, &rv, &keep);
out:
	(void)keep;
	if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL && rv != CKR_MECHANISM_PARAM_INVALID)
		log_error("C_WrapKey(%s) of key 0x%lx with key 0x%lx: CK_RV 0x%lx",
			  mech_name(mech->mechanism), (unsigned long)key, (unsigned long)wrapping,
			  (unsigned long)rv);
	if (data)
		OPENSSL_clear_free(data, data_len + 1);
	if (res)
		OPENSSL_clear_free(res, n);
	aes_cipher_free(c);
	softkey_wipe(&wk);
	softkey_wipe(&kk);
	return rv;
}

/* The modes whose key value is cut by CKA_VALUE_LEN. */
static bool truncates(CK_MECHANISM_TYPE type)
{
	return type == CKM_AES_ECB || type == CKM_AES_CBC || type == CKM_AES_KEY_WRAP;
}

static CK_RV key_length(CK_MECHANISM_TYPE type, tp_key_req *req, size_t *n)
{
	if (req->has_len && req->value_len != 0) {
		if (req->value_len > *n || (!truncates(type) && req->value_len != *n))
			return CKR_TEMPLATE_INCONSISTENT;
		*n = req->value_len;
	}
	if (*n == 0)
		return CKR_WRAPPED_KEY_LEN_RANGE;
	if (req->key_type == CKK_AES && *n != 16 && *n != 24 && *n != 32)
		return CKR_WRAPPED_KEY_LEN_RANGE;
	req->value_len = *n;
	return CKR_OK;
}

CK_RV keywrap_unwrap(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		     CK_OBJECT_HANDLE unwrapping, const CK_BYTE *in, CK_ULONG in_len,
		     const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_token *tok = NULL;
	tp_key_copy uk;
	tp_key_req req;
	tp_cipher *c = NULL;
	tp_object *obj = NULL;
	uint8_t *pt = NULL;
	size_t n = 0;

	memset(&uk, 0, sizeof(uk));
	if (!mech || !out || (!tmpl && count) || (!in && in_len))
		return CKR_ARGUMENTS_BAD;
	rv = check_mech(mech, CKF_UNWRAP);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (rv == CKR_OK)
		rv = wrapping_key_locked(lib, s, unwrapping, false, &uk);
	if (rv == CKR_OK)
		tok = s->token;
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK)
		goto out;
	rv = keytmpl_check(tmpl, count, &req);
	if (rv != CKR_OK) {
		log_error("C_UnwrapKey(%s): template refused (CK_RV 0x%lx)",
			  mech_name(mech->mechanism), (unsigned long)rv);
		goto out;
	}
	rv = aes_cipher_new(mech, uk.value, uk.len, false, &c);
	if (rv == CKR_OK)
		rv = aes_cipher_oneshot(c, in ? in : empty, in_len, &pt, &n);
	if (rv == CKR_ENCRYPTED_DATA_LEN_RANGE || rv == CKR_DATA_LEN_RANGE)
		rv = CKR_WRAPPED_KEY_LEN_RANGE;
	else if (rv == CKR_ENCRYPTED_DATA_INVALID)
		rv = CKR_WRAPPED_KEY_INVALID;
	if (rv == CKR_WRAPPED_KEY_LEN_RANGE || rv == CKR_WRAPPED_KEY_INVALID)
		log_error("C_UnwrapKey(%s) of %lu bytes with key 0x%lx: wrapped key %s",
			  mech_name(mech->mechanism), (unsigned long)in_len,
			  (unsigned long)unwrapping,
			  rv == CKR_WRAPPED_KEY_INVALID ? "invalid (padding, tag or integrity check)"
							: "of a length the mechanism cannot take");
	if (rv == CKR_OK) {
		size_t len = n;

		rv = key_length(mech->mechanism, &req, &len);
		if (rv != CKR_OK)
			log_error("C_UnwrapKey(%s): a %zu-byte value cannot be this key "
				  "(key type 0x%lx%s)", mech_name(mech->mechanism), n,
				  (unsigned long)req.key_type,
				  req.has_len ? ", CKA_VALUE_LEN given" : "");
	}
	if (rv == CKR_OK)
		rv = keytmpl_build(tok, hs, tmpl, count, &req, &obj);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_VALUE, pt, req.value_len);
	if (rv != CKR_OK)
		goto out;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_CLOSED;
	} else {
		rv = object_add_locked(lib, obj);
		if (rv == CKR_OK) {
			*out = obj->handle;
			obj = NULL;
		}
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
out:
	if (pt)
		OPENSSL_clear_free(pt, n);
	aes_cipher_free(c);
	object_free(obj);
	softkey_wipe(&uk);
	return rv;
}
