#include "core/wrap.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/keytmpl.h"
#include "core/keywrap.h"
#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "mech/jwe.h"
#include "mech/registry.h"
#include "util/log.h"
#include "tang-pkcs11.h"

static CK_RV check_mech(const CK_MECHANISM *mech, CK_FLAGS need)
{
	const tp_mech *m = mech_find(mech->mechanism);

	if (!m || !(m->flags & need))
		return CKR_MECHANISM_INVALID;
	return mech_jwe_check_param(mech);
}

/* ---- C_WrapKey ------------------------------------------------------ */

static CK_RV check_wrapping_locked(const tp_object *obj)
{
	if (!obj)
		return CKR_WRAPPING_KEY_HANDLE_INVALID;
	if (!obj->is_tang || obj->klass != CKO_PUBLIC_KEY || !obj->token->srv)
		return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
	if (!object_bool(obj, CKA_WRAP))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	return CKR_OK;
}

static CK_RV check_wrapped_locked(const tp_object *obj, const tp_object *wrapping)
{
	if (!obj)
		return CKR_KEY_HANDLE_INVALID;
	if (obj->klass != CKO_SECRET_KEY || !object_get(obj, CKA_VALUE))
		return CKR_KEY_NOT_WRAPPABLE;
	if (!object_bool(obj, CKA_EXTRACTABLE))
		return CKR_KEY_UNEXTRACTABLE;
	if (object_bool(obj, CKA_WRAP_WITH_TRUSTED) && !object_bool(wrapping, CKA_TRUSTED))
		return CKR_KEY_NOT_WRAPPABLE;
	return CKR_OK;
}

/* The wrapping key's server and exchange key, and a copy of the value
 * (secret: wiped by the caller). */
static CK_RV wrap_inputs(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE wrapping,
			 CK_OBJECT_HANDLE key, tp_token **tok, tp_exchange_key *xkey,
			 uint8_t **value, size_t *value_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const tp_object *wobj = NULL, *kobj = NULL;
	tp_session *s;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (s) {
		wobj = object_lookup_locked(lib, s->token, wrapping);
		kobj = object_lookup_locked(lib, s->token, key);
	}
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if ((rv = check_wrapping_locked(wobj)) == CKR_OK &&
		 (rv = check_wrapped_locked(kobj, wobj)) == CKR_OK) {
		const CK_ATTRIBUTE *v = object_get(kobj, CKA_VALUE);

		*tok = wobj->token;
		*xkey = wobj->key;
		*value_len = v->ulValueLen;
		*value = malloc(v->ulValueLen + 1);
		if (*value)
			memcpy(*value, v->pValue, v->ulValueLen);
		else
			rv = CKR_HOST_MEMORY;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV wrap_key(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
	       CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
	       CK_BYTE *out, CK_ULONG *out_len)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_token *tok = NULL;
	tp_exchange_key xkey;
	uint8_t *value = NULL;
	size_t value_len = 0, jwe_len = 0;
	char *jwe = NULL;
	tp_err err = TP_OK;

	if (!mech || !out_len)
		return CKR_ARGUMENTS_BAD;
	if (mech->mechanism != CKM_TANG_JWE)
		return keywrap_wrap(lib, hs, mech, wrapping, key, out, out_len);
	rv = session_check(lib, hs);
	if (rv == CKR_OK)
		rv = check_mech(mech, CKF_WRAP);
	if (rv == CKR_OK)
		rv = wrap_inputs(lib, hs, wrapping, key, &tok, &xkey, &value, &value_len);
	if (rv != CKR_OK)
		goto out;
	/* Offline; the length is deterministic, so a query just measures. */
	rv = mech_jwe_encrypt(tok->srv, &xkey, value, value_len, &jwe, &jwe_len, &err);
	if (rv != CKR_OK)
		goto out;
	if (out && *out_len < jwe_len)
		rv = CKR_BUFFER_TOO_SMALL;
	else if (out)
		memcpy(out, jwe, jwe_len);
	*out_len = jwe_len;
out:
	if (rv == CKR_MECHANISM_PARAM_INVALID)
		log_error("C_WrapKey(CKM_TANG_JWE): the mechanism takes no parameter");
	if (value)
		OPENSSL_clear_free(value, value_len + 1);
	free(jwe);
	return rv;
}

/* ---- C_UnwrapKey ---------------------------------------------------- */

static CK_RV check_unwrapping_locked(const tp_object *obj)
{
	if (!obj)
		return CKR_UNWRAPPING_KEY_HANDLE_INVALID;
	if (!obj->is_tang || obj->klass != CKO_PRIVATE_KEY || !obj->token->srv)
		return CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
	if (!object_bool(obj, CKA_UNWRAP))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	return CKR_OK;
}

static CK_RV unwrap_inputs(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE unwrapping,
			   tp_token **tok)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const tp_object *obj = NULL;
	tp_session *s;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (s)
		obj = object_lookup_locked(lib, s->token, unwrapping);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else
		rv = check_unwrapping_locked(obj);
	if (rv == CKR_OK)
		*tok = obj->token;
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

/* The plaintext is the key: its length must suit the template (before
 * any network: the length is the ciphertext's).  CKA_VALUE_LEN 0 means
 * "unspecified", as for C_DeriveKey. */
static CK_RV check_key_length(const tp_token *tok, tp_key_req *req, size_t n)
{
	CK_RV rv = CKR_OK;

	if (n == 0)
		rv = CKR_WRAPPED_KEY_LEN_RANGE;
	else if (req->key_type == CKK_AES && n != 16 && n != 24 && n != 32)
		rv = CKR_WRAPPED_KEY_LEN_RANGE;
	else if (req->has_len && req->value_len != 0 && req->value_len != n)
		rv = CKR_TEMPLATE_INCONSISTENT;
	if (rv != CKR_OK)
		log_error("C_UnwrapKey(CKM_TANG_JWE) for %s: a %zu-byte plaintext cannot be this "
			  "key (key type 0x%lx%s)", tang_server_url(tok->srv), n,
			  (unsigned long)req->key_type,
			  req->has_len ? ", CKA_VALUE_LEN differs" : "");
	req->value_len = n;
	return rv;
}

/* Adds obj to the lib if session hs still exists. */
static CK_RV add_object(tp_lib *lib, CK_SESSION_HANDLE hs, tp_object **obj, CK_RV rv,
			tp_err err, CK_OBJECT_HANDLE *out)
{
	tp_session *s;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_CLOSED;
	} else if (rv != CKR_OK) {
		s->device_error = err;
	} else {
		s->device_error = TP_OK;   /* the last exchange worked */
		rv = object_add_locked(lib, *obj);
		if (rv == CKR_OK) {
			*out = (*obj)->handle;
			*obj = NULL;
		}
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV unwrap_key(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		 CK_OBJECT_HANDLE unwrapping, const CK_BYTE *in, CK_ULONG in_len,
		 const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_token *tok = NULL;
	tp_key_req req;
	tp_clevis_jwe cj;
	tp_object *obj = NULL;
	uint8_t *pt = NULL;
	tp_err err = TP_OK;

	memset(&cj, 0, sizeof(cj));
	if (!mech || !out || (!tmpl && count) || (!in && in_len))
		return CKR_ARGUMENTS_BAD;
	if (mech->mechanism != CKM_TANG_JWE)
		return keywrap_unwrap(lib, hs, mech, unwrapping, in, in_len, tmpl, count, out);
	rv = session_check(lib, hs);
	if (rv == CKR_OK)
		rv = check_mech(mech, CKF_UNWRAP);
	if (rv == CKR_OK)
		rv = unwrap_inputs(lib, hs, unwrapping, &tok);
	if (rv == CKR_MECHANISM_PARAM_INVALID)
		log_error("C_UnwrapKey(CKM_TANG_JWE): the mechanism takes no parameter");
	if (rv != CKR_OK)
		goto out;
	/* Everything that needs no network, before the request. */
	rv = keytmpl_check(tmpl, count, &req);
	if (rv != CKR_OK) {
		log_error("C_UnwrapKey(CKM_TANG_JWE) for %s: template refused (CK_RV 0x%lx)",
			  tang_server_url(tok->srv), (unsigned long)rv);
		goto out;
	}
	rv = mech_jwe_parse(tok->srv, in, in_len, CKR_WRAPPED_KEY_INVALID, &cj);
	if (rv == CKR_OK)
		rv = check_key_length(tok, &req, cj.jwe.ciphertext_len);
	if (rv == CKR_OK)
		rv = keytmpl_build(tok, hs, tmpl, count, &req, &obj);
	if (rv != CKR_OK)
		goto out;

	/* The recovery exchange: no lock held. */
	rv = mech_jwe_decrypt(tok->srv, &cj, CKR_WRAPPED_KEY_INVALID, &pt, &err);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_VALUE, pt, req.value_len);
	rv = add_object(lib, hs, &obj, rv, err, out);
out:
	if (pt)
		OPENSSL_clear_free(pt, cj.jwe.ciphertext_len + 1);
	clevis_jwe_clear(&cj);
	object_free(obj);
	return rv;
}
