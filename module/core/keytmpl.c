#include "core/keytmpl.h"

#include "core/attr_rules.h"
#include "core/attrs.h"
#include "core/token.h"
#include "util/log.h"

bool keytmpl_secret_type(CK_KEY_TYPE type)
{
	switch (type) {
	case CKK_GENERIC_SECRET:
	case CKK_AES:
	case CKK_SHA_1_HMAC:
	case CKK_SHA224_HMAC:
	case CKK_SHA256_HMAC:
	case CKK_SHA384_HMAC:
	case CKK_SHA512_HMAC:
		return true;
	default:
		return false;
	}
}

/* DESIGN.md §4: class and key type from the template, the rest defaults. */
CK_RV keytmpl_check(const CK_ATTRIBUTE *tmpl, CK_ULONG count, tp_key_req *req)
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
			if (attrs_ulong(t) != CKO_SECRET_KEY)
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case CKA_KEY_TYPE:
			req->key_type = attrs_ulong(t);
			if (!keytmpl_secret_type(req->key_type))
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case CKA_TOKEN:
			/* No store yet: the result can only be a session object. */
			if (*(const CK_BBOOL *)t->pValue)
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case CKA_VALUE_LEN:
			req->value_len = attrs_ulong(t);
			req->has_len = true;
			break;
		default:
			break;
		}
	}
	return CKR_OK;
}

/* PKCS#11 2.40 §5.7: only public objects unless the normal user is logged
 * in.  A token without a store has no login: its session objects are all
 * the application's, private or not. */
static CK_RV check_login(const tp_token *tok, const tp_object *obj)
{
	CK_RV rv = CKR_OK;

	if (!tok->st || !object_bool(obj, CKA_PRIVATE))
		return CKR_OK;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	if (tok->login != CKU_USER)
		rv = CKR_USER_NOT_LOGGED_IN;
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK)
		log_error("token \"%s\": a private object needs the user logged in",
			  tok->cfg->label);
	return rv;
}

/* The new session object without its value: template, then defaults. */
CK_RV keytmpl_build(tp_token *tok, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl,
		    CK_ULONG count, const tp_key_req *req, tp_object **out)
{
	CK_RV rv = CKR_HOST_MEMORY;
	tp_object *obj = object_new(CKO_SECRET_KEY, tok, hs);

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
	if (rv == CKR_OK)
		rv = object_set_defaults(obj);
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_KEY_TYPE, req->key_type);
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_VALUE_LEN, req->value_len);
	if (rv == CKR_OK)
		rv = check_login(tok, obj);
out:
	if (rv != CKR_OK) {
		object_free(obj);
		obj = NULL;
	}
	*out = obj;
	return rv;
}
