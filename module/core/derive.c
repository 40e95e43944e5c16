#include "core/derive.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/attr_rules.h"
#include "core/attrs.h"
#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "mech/ecdh.h"
#include "mech/registry.h"
#include "util/log.h"

typedef struct derive_req {
	CK_KEY_TYPE key_type;
	CK_ULONG value_len;
	bool has_len;
} derive_req;

/* The template of the derived key (DESIGN.md §4), checked before any
 * network.  Unknown attributes: CKR_ATTRIBUTE_TYPE_INVALID; attributes
 * the token sets itself (CKA_VALUE, CKA_LOCAL, ...): CKR_ATTRIBUTE_READ_ONLY;
 * a class, key type or CKA_TOKEN this derive cannot produce:
 * CKR_TEMPLATE_INCONSISTENT. */
static CK_RV check_template(const CK_ATTRIBUTE *tmpl, CK_ULONG count, derive_req *req)
{
	req->key_type = CKK_GENERIC_SECRET;
	req->value_len = 0;
	req->has_len = false;
	for (CK_ULONG i = 0; i < count; i++) {
		const CK_ATTRIBUTE *t = &tmpl[i];
		const tp_attr_rule *rule = attr_rule(CKO_SECRET_KEY, t->type);

		if (!rule)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		if (!(rule->flags & TP_ATTR_DERIVE_OK))
			return CKR_ATTRIBUTE_READ_ONLY;
		if (!attrs_valid_kind(rule->kind, t))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		switch (t->type) {
		case CKA_CLASS:
			if (*(const CK_OBJECT_CLASS *)t->pValue != CKO_SECRET_KEY)
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case CKA_KEY_TYPE:
			req->key_type = *(const CK_KEY_TYPE *)t->pValue;
			if (req->key_type != CKK_GENERIC_SECRET && req->key_type != CKK_AES)
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case CKA_TOKEN:
			/* No store yet: the result can only be a session object. */
			if (*(const CK_BBOOL *)t->pValue)
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case CKA_VALUE_LEN:
			req->value_len = *(const CK_ULONG *)t->pValue;
			req->has_len = true;
			break;
		default:
			break;
		}
	}
	return CKR_OK;
}

/* Output length: CKA_VALUE_LEN, else the field size for a generic secret
 * (0 also means "default", as in SoftHSMv2); an AES key needs 16/24/32.
 * With CKD_NULL the length cannot exceed the field size. */
static CK_RV check_length(derive_req *req, const tp_exchange_key *key, const CK_MECHANISM *mech)
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

/* The new session object without its value: template, then defaults. */
static CK_RV build_object(tp_token *tok, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl,
			  CK_ULONG count, const derive_req *req, tp_object **out)
{
	CK_RV rv = CKR_HOST_MEMORY;
	tp_object *obj = object_new(CKO_SECRET_KEY, tok, hs);
	const tp_attr_rule *rules;
	size_t n_rules = 0;

	if (!obj)
		goto out;
	rv = CKR_OK;
	for (CK_ULONG i = 0; i < count && rv == CKR_OK; i++) {
		const tp_attr_rule *rule = attr_rule(CKO_SECRET_KEY, tmpl[i].type);

		if (rule->kind == TP_KIND_BOOL)  /* store canonical booleans */
			rv = object_set_bool(obj, tmpl[i].type, *(const CK_BBOOL *)tmpl[i].pValue);
		else
			rv = object_set(obj, tmpl[i].type, tmpl[i].pValue, tmpl[i].ulValueLen);
	}
	rules = attr_rules(CKO_SECRET_KEY, &n_rules);
	for (size_t i = 0; i < n_rules && rv == CKR_OK; i++) {
		if (!(rules[i].flags & TP_ATTR_DEFAULT) || object_get(obj, rules[i].type))
			continue;
		if (rules[i].kind == TP_KIND_BOOL)
			rv = object_set_bool(obj, rules[i].type, rules[i].dflt);
		else if (rules[i].kind == TP_KIND_ULONG)
			rv = object_set_ulong(obj, rules[i].type, rules[i].dflt);
		else
			rv = object_set(obj, rules[i].type, NULL, 0);
	}
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_KEY_TYPE, req->key_type);
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_VALUE_LEN, req->value_len);
out:
	if (rv != CKR_OK) {
		object_free(obj);
		obj = NULL;
	}
	*out = obj;
	return rv;
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
	derive_req req;
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
	rv = check_template(tmpl, count, &req);
	if (rv == CKR_OK)
		rv = check_length(&req, &key, mech);
	if (rv != CKR_OK) {
		log_error("C_DeriveKey on server %s kid %s: template refused (CK_RV 0x%lx)",
			  tang_server_url(tok->srv), key.kid, (unsigned long)rv);
		goto out;
	}
	rv = build_object(tok, hs, tmpl, count, &req, &obj);
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
		if (err != TP_OK)
			s->device_error = err;
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
	if (value)
		OPENSSL_clear_free(value, req.value_len);
	object_free(obj);
	return rv;
}
