#include "core/object.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/attr_rules.h"
#include "core/attrs.h"
#include "core/handle.h"
#include "core/session.h"
#include "core/token.h"
#include "util/ec.h"

tp_object *object_new(CK_OBJECT_CLASS klass, tp_token *tok, CK_SESSION_HANDLE owner)
{
	tp_object *obj = calloc(1, sizeof(*obj));

	if (!obj)
		return NULL;
	obj->klass = klass;
	obj->token = tok;
	obj->owner = owner;
	if (object_set_ulong(obj, CKA_CLASS, klass) != CKR_OK) {
		object_free(obj);
		return NULL;
	}
	return obj;
}

static bool is_secret(const tp_object *obj, CK_ATTRIBUTE_TYPE type)
{
	const tp_attr_rule *rule = attr_rule(obj->klass, type);

	return rule && (rule->flags & TP_ATTR_SECRET);
}

void object_clear_attrs(tp_object *obj)
{
	for (size_t i = 0; i < obj->n_attrs; i++) {
		/* Store objects are wiped whole: their labels and ids are
		 * as confidential as their values (docs/store.md). */
		if (obj->is_stored || is_secret(obj, obj->attrs[i].type))
			OPENSSL_clear_free(obj->attrs[i].pValue, obj->attrs[i].ulValueLen);
		else
			free(obj->attrs[i].pValue);
	}
	free(obj->attrs);
	obj->attrs = NULL;
	obj->n_attrs = 0;
}

void object_free(tp_object *obj)
{
	if (!obj)
		return;
	object_clear_attrs(obj);
	free(obj);
}

CK_RV object_set_attrs(tp_object *obj, const CK_ATTRIBUTE *attrs, size_t n)
{
	CK_RV rv = CKR_OK;

	object_clear_attrs(obj);
	for (size_t i = 0; i < n && rv == CKR_OK; i++)
		rv = object_set(obj, attrs[i].type, attrs[i].pValue, attrs[i].ulValueLen);
	if (rv != CKR_OK)
		object_clear_attrs(obj);
	return rv;
}

bool object_is_private(const tp_object *obj)
{
	return obj->is_stored ? obj->is_private : object_bool(obj, CKA_PRIVATE);
}

void object_unlink_doomed_locked(tp_lib *lib)
{
	size_t keep = 0;

	for (size_t i = 0; i < lib->n_objects; i++)
		if (!lib->objects[i]->is_doomed)
			lib->objects[keep++] = lib->objects[i];
	lib->n_objects = keep;
}

void object_free_all(tp_object **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		object_free(objs[i]);
	free(objs);
}

static CK_ATTRIBUTE *find_attr(const tp_object *obj, CK_ATTRIBUTE_TYPE type)
{
	for (size_t i = 0; i < obj->n_attrs; i++)
		if (obj->attrs[i].type == type)
			return &obj->attrs[i];
	return NULL;
}

const CK_ATTRIBUTE *object_get(const tp_object *obj, CK_ATTRIBUTE_TYPE type)
{
	return find_attr(obj, type);
}

bool object_bool(const tp_object *obj, CK_ATTRIBUTE_TYPE type)
{
	const CK_ATTRIBUTE *a = find_attr(obj, type);

	return a && a->ulValueLen == sizeof(CK_BBOOL) && *(const CK_BBOOL *)a->pValue;
}

CK_RV object_set(tp_object *obj, CK_ATTRIBUTE_TYPE type, const void *value, CK_ULONG len)
{
	CK_ATTRIBUTE *a = find_attr(obj, type);
	/* One spare byte so that an empty value still has a pointer. */
	void *copy = malloc(len ? len : 1);

	if (!copy)
		return CKR_HOST_MEMORY;
	if (len)
		memcpy(copy, value, len);
	if (!a) {
		CK_ATTRIBUTE *attrs = realloc(obj->attrs, (obj->n_attrs + 1) * sizeof(*attrs));

		if (!attrs) {
			free(copy);
			return CKR_HOST_MEMORY;
		}
		obj->attrs = attrs;
		a = &obj->attrs[obj->n_attrs++];
		a->type = type;
	} else if (is_secret(obj, type)) {
		OPENSSL_clear_free(a->pValue, a->ulValueLen);
	} else {
		free(a->pValue);
	}
	a->pValue = copy;
	a->ulValueLen = len;
	return CKR_OK;
}

CK_RV object_set_bool(tp_object *obj, CK_ATTRIBUTE_TYPE type, bool value)
{
	CK_BBOOL b = value ? CK_TRUE : CK_FALSE;

	return object_set(obj, type, &b, sizeof(b));
}

CK_RV object_set_ulong(tp_object *obj, CK_ATTRIBUTE_TYPE type, CK_ULONG value)
{
	return object_set(obj, type, &value, sizeof(value));
}

/* The fixed attributes of a Tang key object (DESIGN.md §4); the values
 * that differ between the public and the private half are in the tables
 * below.  The label is the server URL as configured. */
typedef struct bool_attr {
	CK_ATTRIBUTE_TYPE type;
	bool value;
} bool_attr;

static const bool_attr tang_common_bools[] = {
	{ CKA_TOKEN, true }, { CKA_PRIVATE, false }, { CKA_MODIFIABLE, false },
	{ CKA_COPYABLE, false }, { CKA_DESTROYABLE, false }, { CKA_LOCAL, false },
};

static const bool_attr tang_public_bools[] = {
	{ CKA_DERIVE, false }, { CKA_ENCRYPT, true }, { CKA_VERIFY, false },
	{ CKA_VERIFY_RECOVER, false }, { CKA_WRAP, true }, { CKA_TRUSTED, false },
};

static const bool_attr tang_private_bools[] = {
	{ CKA_DERIVE, true }, { CKA_DECRYPT, true }, { CKA_UNWRAP, true },
	{ CKA_SIGN, false }, { CKA_SIGN_RECOVER, false }, { CKA_SENSITIVE, true },
	{ CKA_EXTRACTABLE, false }, { CKA_ALWAYS_SENSITIVE, true },
	{ CKA_NEVER_EXTRACTABLE, true }, { CKA_WRAP_WITH_TRUSTED, false },
	{ CKA_ALWAYS_AUTHENTICATE, false },
};

static CK_RV set_bools(tp_object *obj, const bool_attr *list, size_t n)
{
	CK_RV rv = CKR_OK;

	for (size_t i = 0; i < n && rv == CKR_OK; i++)
		rv = object_set_bool(obj, list[i].type, list[i].value);
	return rv;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static CK_RV tang_half(tp_object *obj, const tp_exchange_key *key, const char *label,
		       const uint8_t *ec_point, size_t ec_point_len,
		       const uint8_t *spki, size_t spki_len)
{
	CK_RV rv = set_bools(obj, tang_common_bools, N(tang_common_bools));

	if (rv == CKR_OK)
		rv = obj->klass == CKO_PUBLIC_KEY
			? set_bools(obj, tang_public_bools, N(tang_public_bools))
			: set_bools(obj, tang_private_bools, N(tang_private_bools));
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_KEY_TYPE, CKK_EC);
	if (rv == CKR_OK)
		rv = object_set_ulong(obj, CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_LABEL, label, strlen(label));
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_ID, key->id, sizeof(key->id));
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_SUBJECT, NULL, 0);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_START_DATE, NULL, 0);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_END_DATE, NULL, 0);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_EC_PARAMS, key->curve->params_der, key->curve->params_der_len);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_EC_POINT, ec_point, ec_point_len);
	if (rv == CKR_OK)
		rv = object_set(obj, CKA_PUBLIC_KEY_INFO, spki, spki_len);
	obj->is_tang = true;
	obj->key = *key;
	return rv;
}

CK_RV object_tang_pair(tp_token *tok, const tp_exchange_key *key,
		       tp_object **pub, tp_object **priv)
{
	CK_RV rv = CKR_HOST_MEMORY;
	uint8_t *octets = NULL, *spki = NULL;
	size_t octets_len = 0, spki_len = 0;
	const char *label = tok->srv ? tang_server_url(tok->srv) : tok->cfg->label;

	*pub = object_new(CKO_PUBLIC_KEY, tok, 0);
	*priv = object_new(CKO_PRIVATE_KEY, tok, 0);
	if (!*pub || !*priv)
		goto out;
	if (ec_point_octet_string(key->curve, key->point, &octets, &octets_len) != TP_OK ||
	    ec_point_spki(key->curve, key->point, &spki, &spki_len) != TP_OK) {
		rv = CKR_GENERAL_ERROR;
		goto out;
	}
	rv = tang_half(*pub, key, label, octets, octets_len, spki, spki_len);
	if (rv == CKR_OK)
		rv = tang_half(*priv, key, label, octets, octets_len, spki, spki_len);
out:
	if (rv != CKR_OK) {
		object_free(*pub);
		object_free(*priv);
		*pub = *priv = NULL;
	}
	free(octets);
	free(spki);
	return rv;
}

CK_RV object_add_locked(tp_lib *lib, tp_object *obj)
{
	if (!lib_grow(&lib->objects, lib->n_objects, &lib->cap_objects, sizeof(*lib->objects)))
		return CKR_HOST_MEMORY;
	/* Drawn under the lock and appended: the table stays sorted. */
	obj->handle = handle_next();
	lib->objects[lib->n_objects++] = obj;
	return CKR_OK;
}

static size_t object_index_locked(tp_lib *lib, CK_OBJECT_HANDLE h)
{
	size_t lo = 0, hi = lib->n_objects;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (lib->objects[mid]->handle < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < lib->n_objects && lib->objects[lo]->handle == h ? lo : (size_t)-1;
}

tp_object *object_lookup_locked(tp_lib *lib, tp_token *tok, CK_OBJECT_HANDLE h)
{
	size_t i = object_index_locked(lib, h);

	/* Session objects are visible to every session of this application
	 * on the same token (Barbican uses keys across sessions). */
	if (i == (size_t)-1 || lib->objects[i]->token != tok)
		return NULL;
	/* On a token with a store, private objects exist for a session only
	 * while the user is logged in (PKCS#11 2.40 §4.4). */
	if (tok->st && tok->login != CKU_USER && object_is_private(lib->objects[i]))
		return NULL;
	return lib->objects[i];
}

void object_unlink_owned_locked(tp_lib *lib, CK_SESSION_HANDLE h,
				tp_object ***out, size_t *n_out)
{
	size_t keep = 0, n = 0;
	tp_object **gone = NULL;

	for (size_t i = 0; i < lib->n_objects; i++)
		if (lib->objects[i]->owner == h)
			n++;
	*out = NULL;
	*n_out = 0;
	if (!n)
		return;
	gone = calloc(n, sizeof(*gone));
	n = 0;
	for (size_t i = 0; i < lib->n_objects; i++) {
		tp_object *o = lib->objects[i];

		if (o->owner != h)
			lib->objects[keep++] = o;
		else if (gone)
			gone[n++] = o;
		else
			object_free(o);  /* no memory to defer: free under the lock */
	}
	lib->n_objects = keep;
	*out = gone;
	*n_out = n;
}

CK_RV object_get_attributes(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
			    CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_object *obj;

	if (!tmpl && count)
		return CKR_ARGUMENTS_BAD;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	obj = s ? object_lookup_locked(lib, s->token, ho) : NULL;
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!obj)
		rv = CKR_OBJECT_HANDLE_INVALID;
	else
		rv = attrs_get(obj, tmpl, count);
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV object_set_defaults(tp_object *obj)
{
	CK_RV rv = CKR_OK;
	size_t n = 0;
	const tp_attr_rule *rules = attr_rules(obj->klass, &n);

	for (size_t i = 0; i < n && rv == CKR_OK; i++) {
		if (!(rules[i].flags & TP_ATTR_DEFAULT) || object_get(obj, rules[i].type))
			continue;
		if (rules[i].kind == TP_KIND_BOOL)
			rv = object_set_bool(obj, rules[i].type, rules[i].dflt);
		else if (rules[i].kind == TP_KIND_ULONG)
			rv = object_set_ulong(obj, rules[i].type, rules[i].dflt);
		else
			rv = object_set(obj, rules[i].type, NULL, 0);
	}
	return rv;
}
