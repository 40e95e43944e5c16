#include "core/manage.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/attr_rules.h"
#include "core/attrs.h"
#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "core/tstore.h"
#include "util/ec.h"
#include "util/log.h"

#define TP_MAX_GENERIC_LEN 512       /* bytes of a generated generic secret */

typedef enum tmpl_op {
	OP_CREATE,
	OP_GENERATE,
	OP_SET,
	OP_COPY,
} tmpl_op;

static const char *op_name(tmpl_op op)
{
	switch (op) {
	case OP_CREATE: return "C_CreateObject";
	case OP_GENERATE: return "C_GenerateKey";
	case OP_SET: return "C_SetAttributeValue";
	case OP_COPY: return "C_CopyObject";
	}
	return "?";
}

static const char *rv_str(CK_RV rv)
{
	switch (rv) {
	case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
	case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
	case CKR_ATTRIBUTE_READ_ONLY: return "CKR_ATTRIBUTE_READ_ONLY";
	case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
	case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
	}
	return "refused";
}

/* The one log line of a refused template: which call, which attribute
 * (never its value), which CK_RV. */
/* The largest attribute value an object may hold. */
#define MANAGE_MAX_VALUE (1u << 20)

static CK_RV refuse(tmpl_op op, const char *why, CK_ATTRIBUTE_TYPE type, CK_RV rv)
{
	log_error("%s: attribute 0x%lx %s: %s", op_name(op), (unsigned long)type, why, rv_str(rv));
	return rv;
}

static unsigned allowed_flags(tmpl_op op)
{
	switch (op) {
	case OP_CREATE: return TP_ATTR_CREATE_OK;
	case OP_GENERATE: return TP_ATTR_DERIVE_OK;
	case OP_SET: return TP_ATTR_MODIFY;
	case OP_COPY: return TP_ATTR_MODIFY | TP_ATTR_COPY_ONLY;
	}
	return 0;
}

/* Applies a template to obj following its class's rules.  Checks every
 * entry before changing anything. */
static CK_RV apply(tp_object *obj, const CK_ATTRIBUTE *tmpl, CK_ULONG n, tmpl_op op)
{
	CK_RV rv = CKR_OK;

	for (CK_ULONG i = 0; i < n; i++) {
		const CK_ATTRIBUTE *t = &tmpl[i];
		const tp_attr_rule *rule = attr_rule(obj->klass, t->type);

		if (!rule)
			return refuse(op, "is not one of this class", t->type,
				      CKR_ATTRIBUTE_TYPE_INVALID);
		if (!(rule->flags & allowed_flags(op)))
			return refuse(op, "cannot be set here", t->type, CKR_ATTRIBUTE_READ_ONLY);
		if (!attrs_valid_kind(rule->kind, t))
			return refuse(op, "has a value of the wrong size", t->type,
				      CKR_ATTRIBUTE_VALUE_INVALID);
		/* Session objects too: an application must not make the
		 * module allocate without bound (a token object's whole file
		 * is at most STORE_MAX_FILE anyway). */
		if (t->ulValueLen > MANAGE_MAX_VALUE)
			return refuse(op, "is larger than 1 MiB", t->type,
				      CKR_ATTRIBUTE_VALUE_INVALID);
		if (t->type == CKA_CLASS) {
			CK_ULONG klass;

			/* Application buffers need not be aligned. */
			memcpy(&klass, t->pValue, sizeof(klass));
			if (klass != obj->klass)
				return refuse(op, "contradicts the class", t->type,
					      CKR_TEMPLATE_INCONSISTENT);
		}
		if ((op == OP_SET || op == OP_COPY) && rule->kind == TP_KIND_BOOL) {
			bool cur = object_bool(obj, t->type);
			bool want = *(const CK_BBOOL *)t->pValue;

			/* Sticky attributes (§4.9): CKA_SENSITIVE only to
			 * true, CKA_EXTRACTABLE and CKA_COPYABLE only to false. */
			if ((rule->flags & TP_ATTR_ONLY_TRUE) && cur && !want)
				return refuse(op, "cannot go back to false", t->type,
					      CKR_ATTRIBUTE_READ_ONLY);
			if ((rule->flags & TP_ATTR_ONLY_FALSE) && !cur && want)
				return refuse(op, "cannot go back to true", t->type,
					      CKR_ATTRIBUTE_READ_ONLY);
		}
	}
	for (CK_ULONG i = 0; i < n && rv == CKR_OK; i++) {
		const tp_attr_rule *rule = attr_rule(obj->klass, tmpl[i].type);

		if (rule->kind == TP_KIND_BOOL)  /* canonical booleans */
			rv = object_set_bool(obj, tmpl[i].type, *(const CK_BBOOL *)tmpl[i].pValue);
		else
			rv = object_set(obj, tmpl[i].type, tmpl[i].pValue, tmpl[i].ulValueLen);
	}
	return rv;
}

static CK_ULONG get_ulong(const tp_object *obj, CK_ATTRIBUTE_TYPE type, CK_ULONG dflt)
{
	const CK_ATTRIBUTE *a = object_get(obj, type);

	return a && a->ulValueLen == sizeof(CK_ULONG) ? *(const CK_ULONG *)a->pValue : dflt;
}

static bool in_template(const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	for (CK_ULONG i = 0; i < n; i++)
		if (tmpl[i].type == type)
			return true;
	return false;
}

/* A secret key on a token with a store is private unless the template
 * says otherwise (as SoftHSMv2 does): a key made without thinking about it
 * must not be usable with Tang alone. */
static CK_RV private_default(tp_object *obj, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	if (obj->klass != CKO_SECRET_KEY || !obj->token->st || in_template(tmpl, n, CKA_PRIVATE))
		return CKR_OK;
	return object_set_bool(obj, CKA_PRIVATE, true);
}

static CK_RV check_required(const tp_object *obj)
{
	size_t n = 0;
	const tp_attr_rule *rules = attr_rules(obj->klass, &n);

	for (size_t i = 0; i < n; i++)
		if ((rules[i].flags & TP_ATTR_REQUIRED) && !object_get(obj, rules[i].type))
			return refuse(OP_CREATE, "is missing", rules[i].type, CKR_TEMPLATE_INCOMPLETE);
	return CKR_OK;
}

static CK_RV check_secret_len(CK_KEY_TYPE kt, CK_ULONG len)
{
	if (kt == CKK_AES)
		return len == 16 || len == 24 || len == 32 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	return len >= 1 && len <= TP_MAX_GENERIC_LEN ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

/* Class-specific rules of C_CreateObject after the template. */
static CK_RV check_created(tp_object *obj)
{
	CK_RV rv = CKR_OK;

	if (obj->klass == CKO_SECRET_KEY) {
		CK_KEY_TYPE kt = get_ulong(obj, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
		const CK_ATTRIBUTE *v = object_get(obj, CKA_VALUE);
		const CK_ATTRIBUTE *vl = object_get(obj, CKA_VALUE_LEN);

		if (kt != CKK_AES && kt != CKK_GENERIC_SECRET)
			return refuse(OP_CREATE, "names a key type that is not offered (AES, generic secret)",
				      CKA_KEY_TYPE, CKR_ATTRIBUTE_VALUE_INVALID);
		rv = check_secret_len(kt, v->ulValueLen);
		if (rv != CKR_OK)
			return refuse(OP_CREATE, "has a length the key type does not allow",
				      CKA_VALUE, rv);
		/* CKA_VALUE_LEN is the token's to set; a template that gives
		 * it anyway must agree with the value. */
		if (vl && attrs_ulong(vl) != v->ulValueLen)
			return refuse(OP_CREATE, "differs from the value's length", CKA_VALUE_LEN,
				      CKR_TEMPLATE_INCONSISTENT);
		rv = object_set_ulong(obj, CKA_VALUE_LEN, v->ulValueLen);
	} else if (obj->klass == CKO_CERTIFICATE) {
		if (get_ulong(obj, CKA_CERTIFICATE_TYPE, 0) != CKC_X_509)
			return refuse(OP_CREATE, "is not CKC_X_509", CKA_CERTIFICATE_TYPE,
				      CKR_ATTRIBUTE_VALUE_INVALID);
	}
	return rv;
}

/* ---- making a new object (create, copy, generate) --------------------- */

static void free_written(tp_object *obj)
{
	if (!obj)
		return;
	/* Everything of a token object is confidential: wipe it all. */
	obj->is_stored = true;
	object_free(obj);
}

/* Writes obj (a complete template) as a new token object of tok. */
static CK_RV write_new(tp_lib *lib, CK_SESSION_HANDLE hs, tp_token *tok, tp_object *obj,
		       bool is_private, CK_OBJECT_HANDLE *out)
{
	CK_RV rv = tstore_state(tok);
	uint8_t id[STORE_ID_LEN];
	store_status s = STORE_OK;
	store_object *so = NULL;
	tp_err err = TP_OK;

	if (rv == CKR_USER_PIN_NOT_INITIALIZED) {
		log_error("token \"%s\": not initialized: no token objects yet (C_InitToken)",
			  tok->cfg->label);
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if (rv != CKR_OK)
		return rv;
	if (store_is_read_only(tok->st))
		return CKR_TOKEN_WRITE_PROTECTED;
	for (int tries = 0; tries < 2; tries++) {
		rv = tstore_root(tok, &err);
		if (rv != CKR_OK)
			break;
		s = store_object_add(tok->st, is_private, obj->attrs, obj->n_attrs, id);
		rv = tstore_rv(s);
		if (s != STORE_NO_KEY || is_private)
			break;
	}
	if (rv != CKR_OK) {
		if (err != TP_OK) {
			lib_lock();
			tp_session *sess = session_lookup_locked(lib, hs);

			if (sess)
				sess->device_error = err;
			lib_unlock();
		}
		if (rv == CKR_ATTRIBUTE_VALUE_INVALID)
			log_error("token \"%s\": object too large for the store", tok->cfg->label);
		return rv;
	}
	store_object_get(tok->st, id, &so);
	rv = tstore_show(lib, tok, id, is_private, obj->attrs, obj->n_attrs,
			 so ? so->stamp : 0, out);
	store_object_release(so);
	return rv;
}

/* Adds a complete new object: a session object of hs, or a token object
 * of the store.  Takes obj in any case. */
static CK_RV add_new(tp_lib *lib, CK_SESSION_HANDLE hs, tp_object *obj, CK_OBJECT_HANDLE *out)
{
	CK_RV rv = CKR_OK;
	tp_session *s;
	tp_token *tok = NULL;
	bool is_token = object_bool(obj, CKA_TOKEN);
	bool is_private = object_bool(obj, CKA_PRIVATE);

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_CLOSED;
	} else if (is_token && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
	} else if (s->token->st && is_private && s->token->login != CKU_USER) {
		rv = CKR_USER_NOT_LOGGED_IN;
	} else if (is_token && !s->token->st) {
		rv = CKR_TEMPLATE_INCONSISTENT;
	} else if (!is_token) {
		obj->owner = hs;
		rv = object_add_locked(lib, obj);
		if (rv == CKR_OK) {
			*out = obj->handle;
			obj = NULL;
		}
	} else {
		tok = s->token;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv == CKR_TEMPLATE_INCONSISTENT)
		log_error("token \"%s\": CKA_TOKEN true needs a \"store\" in the configuration",
			  obj->token->cfg->label);
	else if (rv == CKR_SESSION_READ_ONLY)
		log_error("token \"%s\": a read-only session cannot make token objects",
			  obj->token->cfg->label);
	else if (rv == CKR_USER_NOT_LOGGED_IN)
		log_error("token \"%s\": a private object needs the user logged in",
			  obj->token->cfg->label);
	if (rv == CKR_OK && tok)
		rv = write_new(lib, hs, tok, obj, is_private, out);
	free_written(obj);
	return rv;
}

static CK_RV session_token(tp_lib *lib, CK_SESSION_HANDLE hs, tp_token **tok)
{
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;
	tp_session *s;

	lib_lock();
	s = session_lookup_locked(lib, hs);
	if (s) {
		*tok = s->token;
		rv = CKR_OK;
	}
	lib_unlock();
	return rv;
}

static bool is_valid_ulong(const CK_ATTRIBUTE *t)
{
	return t->pValue && t->ulValueLen == sizeof(CK_ULONG);
}

CK_RV manage_create(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl,
		    CK_ULONG count, CK_OBJECT_HANDLE *out)
{
	CK_RV rv;
	tp_token *tok = NULL;
	tp_object *obj = NULL;
	CK_OBJECT_CLASS klass = CK_UNAVAILABLE_INFORMATION;
	bool has_class = false;

	if (!out || (!tmpl && count))
		return CKR_ARGUMENTS_BAD;
	rv = session_token(lib, hs, &tok);
	if (rv != CKR_OK)
		return rv;
	for (CK_ULONG i = 0; i < count; i++) {
		if (tmpl[i].type != CKA_CLASS)
			continue;
		if (!is_valid_ulong(&tmpl[i]))
			return refuse(OP_CREATE, "has a value of the wrong size", CKA_CLASS,
				      CKR_ATTRIBUTE_VALUE_INVALID);
		klass = attrs_ulong(&tmpl[i]);
		has_class = true;
	}
	if (!has_class)
		return refuse(OP_CREATE, "is missing", CKA_CLASS, CKR_TEMPLATE_INCOMPLETE);
	if (klass != CKO_SECRET_KEY && klass != CKO_DATA && klass != CKO_CERTIFICATE) {
		log_error("C_CreateObject: objects of class 0x%lx are not supported (secret keys, data objects and X.509 certificates are)",
			  (unsigned long)klass);
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	obj = object_new(klass, tok, hs);
	if (!obj)
		return CKR_HOST_MEMORY;
	rv = apply(obj, tmpl, count, OP_CREATE);
	if (rv == CKR_OK)
		rv = check_required(obj);
	if (rv == CKR_OK)
		rv = private_default(obj, tmpl, count);
	if (rv == CKR_OK)
		rv = object_set_defaults(obj);
	if (rv == CKR_OK)
		rv = check_created(obj);
	if (rv != CKR_OK) {
		free_written(obj);
		return rv;
	}
	return add_new(lib, hs, obj, out);
}

/* A copy of object ho as a new session object of hs (not added), after
 * the common checks; flags tell what the caller needs. */
static CK_RV dup_object(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho, bool for_copy,
			tp_object **out, tp_object *info)
{
	CK_RV rv = CKR_OK;
	tp_session *s;
	tp_object *o, *copy = NULL;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	o = s ? object_lookup_locked(lib, s->token, ho) : NULL;
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!o)
		rv = CKR_OBJECT_HANDLE_INVALID;
	else if (o->is_stored && !o->is_loaded)
		rv = CKR_DEVICE_ERROR;  /* the lease ended and Tang is away */
	else if (for_copy && !object_bool(o, CKA_COPYABLE))
		rv = CKR_ACTION_PROHIBITED;
	else if (!for_copy && !object_bool(o, CKA_MODIFIABLE))
		rv = CKR_ACTION_PROHIBITED;
	else if (!for_copy && o->is_stored && !(s->flags & CKF_RW_SESSION))
		rv = CKR_SESSION_READ_ONLY;
	else {
		copy = object_new(o->klass, o->token, hs);
		rv = copy ? object_set_attrs(copy, o->attrs, o->n_attrs) : CKR_HOST_MEMORY;
		*info = *o;          /* ids and flags only: no attributes */
		info->attrs = NULL;
		info->n_attrs = 0;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv == CKR_ACTION_PROHIBITED)
		log_error("%s: the object has %s false", for_copy ? "C_CopyObject" : "C_SetAttributeValue",
			  for_copy ? "CKA_COPYABLE" : "CKA_MODIFIABLE");
	else if (rv == CKR_SESSION_READ_ONLY)
		log_error("C_SetAttributeValue: a read-only session cannot change token objects");
	if (rv != CKR_OK) {
		free_written(copy);
		copy = NULL;
	}
	*out = copy;
	return rv;
}

CK_RV manage_copy(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
		  const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out)
{
	CK_RV rv;
	tp_object *copy = NULL, info;

	if (!out || (!tmpl && count))
		return CKR_ARGUMENTS_BAD;
	rv = dup_object(lib, hs, ho, true, &copy, &info);
	if (rv == CKR_OK)
		rv = apply(copy, tmpl, count, OP_COPY);
	if (rv != CKR_OK) {
		free_written(copy);
		return rv;
	}
	return add_new(lib, hs, copy, out);
}

CK_RV manage_set(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
		 const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	CK_RV rv;
	tp_object *copy = NULL, info;
	tp_object *o;
	tp_err err = TP_OK;
	store_object *so = NULL;
	CK_OBJECT_HANDLE h;

	if (!tmpl && count)
		return CKR_ARGUMENTS_BAD;
	rv = dup_object(lib, hs, ho, false, &copy, &info);
	if (rv == CKR_OK)
		rv = apply(copy, tmpl, count, OP_SET);
	if (rv != CKR_OK)
		goto out;
	if (!info.is_stored) {
		lib_lock();
		/* LOCKED SECTION ---------------------------------------- */
		o = session_lookup_locked(lib, hs) ? object_lookup_locked(lib, info.token, ho) : NULL;
		if (!o) {
			rv = CKR_OBJECT_HANDLE_INVALID;
		} else {
			/* Swap: the old attributes go with copy. */
			CK_ATTRIBUTE *a = o->attrs;
			size_t n = o->n_attrs;

			o->attrs = copy->attrs;
			o->n_attrs = copy->n_attrs;
			copy->attrs = a;
			copy->n_attrs = n;
		}
		/* ------------------------------------- END LOCKED SECTION */
		lib_unlock();
		goto out;
	}
	for (int tries = 0; tries < 2; tries++) {
		store_status st = STORE_OK;

		rv = tstore_root(info.token, &err);
		if (rv != CKR_OK)
			break;
		st = store_object_replace(info.token->st, info.sid, info.is_private,
					  copy->attrs, copy->n_attrs);
		rv = tstore_rv(st);
		/* The lease ended in between (R gone): once more. */
		if (st != STORE_NO_KEY)
			break;
	}
	if (rv != CKR_OK)
		goto out;
	store_object_get(info.token->st, info.sid, &so);
	rv = tstore_show(lib, info.token, info.sid, info.is_private, copy->attrs,
			 copy->n_attrs, so ? so->stamp : 0, &h);
	store_object_release(so);
out:
	if (rv == CKR_DEVICE_ERROR && err != TP_OK) {
		lib_lock();
		tp_session *s = session_lookup_locked(lib, hs);

		if (s)
			s->device_error = err;
		lib_unlock();
	}
	free_written(copy);
	return rv;
}

CK_RV manage_destroy(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho)
{
	CK_RV rv = CKR_OK;
	tp_session *s;
	tp_object *o, *gone = NULL;
	tp_token *tok = NULL;
	uint8_t sid[STORE_ID_LEN];
	tp_err err = TP_OK;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	o = s ? object_lookup_locked(lib, s->token, ho) : NULL;
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (!o) {
		rv = CKR_OBJECT_HANDLE_INVALID;
	} else if (o->is_tang) {
		/* Tang keys live on the server: nothing here to destroy. */
		rv = CKR_ACTION_PROHIBITED;
	} else if (o->is_stored && !o->is_loaded) {
		rv = CKR_DEVICE_ERROR;
	} else if (!object_bool(o, CKA_DESTROYABLE)) {
		rv = CKR_ACTION_PROHIBITED;
	} else if (o->is_stored && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
	} else if (o->is_stored) {
		tok = o->token;
		memcpy(sid, o->sid, sizeof(sid));
	} else {
		o->is_doomed = true;
		object_unlink_doomed_locked(lib);
		gone = o;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	object_free(gone);
	if (rv == CKR_ACTION_PROHIBITED)
		log_error("C_DestroyObject: a Tang key, or CKA_DESTROYABLE false");
	else if (rv == CKR_SESSION_READ_ONLY)
		log_error("C_DestroyObject: a read-only session cannot destroy token objects");
	if (rv != CKR_OK || !tok)
		return rv;
	if (store_is_read_only(tok->st))
		return CKR_TOKEN_WRITE_PROTECTED;
	rv = tstore_root(tok, &err);
	if (rv == CKR_OK) {
		store_status st = store_object_remove(tok->st, sid);

		/* The lease ended in between (R gone): once more. */
		if (st == STORE_NO_KEY) {
			rv = tstore_root(tok, &err);
			if (rv == CKR_OK)
				st = store_object_remove(tok->st, sid);
		}
		/* Removed by another process meanwhile: gone all the same. */
		if (rv == CKR_OK)
			rv = st == STORE_NOT_FOUND ? CKR_OBJECT_HANDLE_INVALID : tstore_rv(st);
		if (rv == CKR_OK || st == STORE_NOT_FOUND)
			tstore_unshow(lib, tok, sid);
	}
	if (err != TP_OK) {
		lib_lock();
		s = session_lookup_locked(lib, hs);
		if (s)
			s->device_error = err;
		lib_unlock();
	}
	return rv;
}

CK_RV manage_size(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho, CK_ULONG *size)
{
	CK_RV rv = CKR_OK;
	tp_session *s;
	tp_object *o;

	if (!size)
		return CKR_ARGUMENTS_BAD;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	o = s ? object_lookup_locked(lib, s->token, ho) : NULL;
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (!o) {
		rv = CKR_OBJECT_HANDLE_INVALID;
	} else if (o->is_stored && !o->is_loaded) {
		rv = CKR_DEVICE_ERROR;
	} else {
		/* What the object takes in a store record: per attribute a
		 * type and a length, then the value (docs/store.md). */
		CK_ULONG n = 0;

		for (size_t i = 0; i < o->n_attrs; i++)
			n += 12 + o->attrs[i].ulValueLen;
		*size = n;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV manage_generate(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		      const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out)
{
	CK_RV rv;
	tp_token *tok = NULL;
	tp_object *obj = NULL;
	CK_KEY_TYPE kt;
	CK_ULONG len;
	uint8_t *value = NULL;
	bool sensitive, extractable;

	if (!mech || !out || (!tmpl && count))
		return CKR_ARGUMENTS_BAD;
	rv = session_token(lib, hs, &tok);
	if (rv != CKR_OK)
		return rv;
	switch (mech->mechanism) {
	case CKM_AES_KEY_GEN:
		kt = CKK_AES;
		break;
	case CKM_GENERIC_SECRET_KEY_GEN:
		kt = CKK_GENERIC_SECRET;
		break;
	default:
		return CKR_MECHANISM_INVALID;
	}
	if (mech->pParameter || mech->ulParameterLen)
		return CKR_MECHANISM_PARAM_INVALID;
	/* The class and key type follow from the mechanism (§2.9, §2.10);
	 * a template may repeat them, not contradict them. */
	for (CK_ULONG i = 0; i < count; i++) {
		if (tmpl[i].type == CKA_KEY_TYPE &&
		    (!is_valid_ulong(&tmpl[i]) || attrs_ulong(&tmpl[i]) != kt))
			return refuse(OP_GENERATE, "contradicts the mechanism", CKA_KEY_TYPE,
				      CKR_TEMPLATE_INCONSISTENT);
		if (tmpl[i].type == CKA_VALUE)
			return refuse(OP_GENERATE, "cannot be set here", CKA_VALUE,
				      CKR_ATTRIBUTE_READ_ONLY);
	}
	obj = object_new(CKO_SECRET_KEY, tok, hs);
	if (!obj)
		return CKR_HOST_MEMORY;
	rv = apply(obj, tmpl, count, OP_GENERATE);
	if (rv == CKR_OK && !object_get(obj, CKA_VALUE_LEN))
		rv = refuse(OP_GENERATE, "is missing", CKA_VALUE_LEN, CKR_TEMPLATE_INCOMPLETE);
	if (rv != CKR_OK)
		goto fail;
	len = get_ulong(obj, CKA_VALUE_LEN, 0);
	rv = check_secret_len(kt, len);
	if (rv != CKR_OK)
		refuse(OP_GENERATE, "is not a length the key type allows", CKA_VALUE_LEN, rv);
	if (rv == CKR_OK)
		rv = private_default(obj, tmpl, count);
	if (rv == CKR_OK)
		rv = object_set_defaults(obj);
	if (rv != CKR_OK)
		goto fail;
	sensitive = object_bool(obj, CKA_SENSITIVE);
	extractable = object_bool(obj, CKA_EXTRACTABLE);
	rv = object_set_ulong(obj, CKA_KEY_TYPE, kt);
	if (rv == CKR_OK)
		rv = object_set_bool(obj, CKA_LOCAL, true);
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_KEY_GEN_MECHANISM, mech->mechanism);
	if (rv == CKR_OK)
		rv = object_set_bool(obj, CKA_ALWAYS_SENSITIVE, sensitive);
	if (rv == CKR_OK)
		rv = object_set_bool(obj, CKA_NEVER_EXTRACTABLE, !extractable);
	if (rv != CKR_OK)
		goto fail;
	value = malloc(len);
	if (!value) {
		rv = CKR_HOST_MEMORY;
		goto fail;
	}
	if (RAND_priv_bytes_ex(ossl_ctx(), value, len, 0) != 1)
		rv = CKR_FUNCTION_FAILED;
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_VALUE, value, len);
	OPENSSL_clear_free(value, len);
	if (rv != CKR_OK)
		goto fail;
	return add_new(lib, hs, obj, out);
fail:
	free_written(obj);
	return rv;
}
