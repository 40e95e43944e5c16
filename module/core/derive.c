#include "core/derive.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/keytmpl.h"
#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "mech/ecdh.h"
#include "mech/registry.h"
#include "util/log.h"

/* Output length: CKA_VALUE_LEN, else the field size for a generic secret
 * (0 also means "default", as in SoftHSMv2); an AES key needs 16/24/32.
 * With CKD_NULL the length cannot exceed the field size. */
static CK_RV check_length(tp_key_req *req, const tp_exchange_key *key, const CK_MECHANISM *mech)
{
	const CK_ECDH1_DERIVE_PARAMS *p = mech->pParameter;
	size_t field = key->curve->field_len;

	if (req->key_type == CKK_AES) {
		if (!req->has_len)
			return CKR_TEMPLATE_INCOMPLETE;
		if (req->value_len != 16 && req->value_len != 24 && req->value_len != 32)
			return CKR_ATTRIBUTE_VALUE_INVALID;
	} else if (!req->has_len || req->value_len == 0) {
		req->value_len = field;
	}
	if (p->kdf == CKD_NULL && req->value_len > field)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (req->value_len > TP_ECDH_MAX_OUT)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	return CKR_OK;
}

CK_RV derive_key(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		 CK_OBJECT_HANDLE base, const CK_ATTRIBUTE *tmpl, CK_ULONG count,
		 CK_OBJECT_HANDLE *out)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const tp_mech *m;
	tp_session *s;
	tp_object *bobj, *obj = NULL;
	tp_token *tok = NULL;
	tp_exchange_key key;
	tp_key_req req;
	uint8_t *value = NULL;
	tp_err err = TP_OK;

	if (!mech || !out || (!tmpl && count))
		return CKR_ARGUMENTS_BAD;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	/* Copy what the exchange needs: the key is a value, the server lives
	 * as long as the lib we hold. */
	s = session_lookup_locked(lib, hs);
	bobj = s ? object_lookup_locked(lib, s->token, base) : NULL;
	m = mech_find(mech->mechanism);
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!m || !(m->flags & CKF_DERIVE))
		rv = CKR_MECHANISM_INVALID;
	else if (!bobj)
		rv = CKR_KEY_HANDLE_INVALID;
	else if (!bobj->is_tang || bobj->klass != CKO_PRIVATE_KEY || !bobj->token->srv)
		rv = CKR_KEY_TYPE_INCONSISTENT;
	else if (!object_bool(bobj, CKA_DERIVE))
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	else {
		key = bobj->key;
		tok = bobj->token;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK)
		goto out;

	/* Everything that needs no network is checked before the request. */
	rv = ecdh_check_params(tok->srv, &key, mech);
	if (rv != CKR_OK)
		goto out;
	rv = keytmpl_check(tmpl, count, &req);
	if (rv == CKR_OK)
		rv = check_length(&req, &key, mech);
	if (rv != CKR_OK) {
		log_error("C_DeriveKey on server %s kid %s: template refused (CK_RV 0x%lx)",
			  tang_server_url(tok->srv), key.kid, (unsigned long)rv);
		goto out;
	}
	rv = keytmpl_build(tok, hs, tmpl, count, &req, &obj);
	if (rv != CKR_OK)
		goto out;
	value = malloc(req.value_len);
	if (!value) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}

	/* The recovery exchange: no lock held. */
	rv = ecdh_tang_derive(tok->srv, &key, mech, value, req.value_len, &err);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_VALUE, value, req.value_len);

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		/* Closed by another thread (or C_Finalize) meanwhile. */
		rv = CKR_SESSION_CLOSED;
	} else if (rv != CKR_OK) {
		s->device_error = err;
	} else {
		s->device_error = TP_OK;   /* the last exchange worked */
		rv = object_add_locked(lib, obj);
		if (rv == CKR_OK) {
			*out = obj->handle;
			obj = NULL;
		}
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
out:
	if (value)
		OPENSSL_clear_free(value, req.value_len);
	object_free(obj);
	return rv;
}
