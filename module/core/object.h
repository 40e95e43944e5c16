/* Objects: Tang key objects (token objects, one public/private pair per
 * exchange key) and session objects (derived keys), with their attributes
 * stored as a list of CK_ATTRIBUTE whose values the object owns. */
#ifndef TP_CORE_OBJECT_H
#define TP_CORE_OBJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "store/store.h"
#include "tang/adv.h"

struct tp_object {
	CK_OBJECT_HANDLE handle;     /* set by object_add_locked */
	CK_OBJECT_CLASS klass;
	tp_token *token;
	CK_SESSION_HANDLE owner;     /* session of a session object; 0 for token objects */
	bool is_tang;                /* a Tang key object: key is valid */
	/* A token object of the sealed store (core/tstore.c): its store id,
	 * the version of it the attributes come from, and whether they are
	 * here at all (the lease ended or a logout dropped them). */
	bool is_stored;
	bool is_loaded;
	bool is_private;             /* stored objects: the store's flag */
	bool is_doomed;              /* being unlinked (tstore.c) */
	uint8_t sid[STORE_ID_LEN];
	uint64_t stamp;
	tp_exchange_key key;
	CK_ATTRIBUTE *attrs;
	size_t n_attrs;
};

tp_object *object_new(CK_OBJECT_CLASS klass, tp_token *tok, CK_SESSION_HANDLE owner);
/* Frees the object; values of secret attributes are wiped. */
void object_free(tp_object *obj);

/* Adds or replaces an attribute (the value is copied). */
CK_RV object_set(tp_object *obj, CK_ATTRIBUTE_TYPE type, const void *value, CK_ULONG len);
CK_RV object_set_bool(tp_object *obj, CK_ATTRIBUTE_TYPE type, bool value);
CK_RV object_set_ulong(tp_object *obj, CK_ATTRIBUTE_TYPE type, CK_ULONG value);
/* Every default of obj's class (core/attr_rules.c) it does not have yet. */
CK_RV object_set_defaults(tp_object *obj);
const CK_ATTRIBUTE *object_get(const tp_object *obj, CK_ATTRIBUTE_TYPE type);
bool object_bool(const tp_object *obj, CK_ATTRIBUTE_TYPE type);

/* The public and private key objects of a Tang exchange key (not added). */
CK_RV object_tang_pair(tp_token *tok, const tp_exchange_key *key,
		       tp_object **pub, tp_object **priv);

/* Assigns the handle and inserts into lib's table. */
CK_RV object_add_locked(tp_lib *lib, tp_object *obj);
/* The object with handle h that a session on tok may see, or NULL. */
tp_object *object_lookup_locked(tp_lib *lib, tp_token *tok, CK_OBJECT_HANDLE h);
/* Unlinks the session objects owned by session h into *out (malloc'd array
 * of *n_out objects for the caller to free outside the lock). */
void object_unlink_owned_locked(tp_lib *lib, CK_SESSION_HANDLE h,
				tp_object ***out, size_t *n_out);
void object_free_all(tp_object **objs, size_t n);

/* CKA_PRIVATE of the object (the store's flag for stored objects). */
bool object_is_private(const tp_object *obj);
/* Frees every attribute (wiping secret values). */
void object_clear_attrs(tp_object *obj);
/* Replaces the attributes with copies of attrs (memory form). */
CK_RV object_set_attrs(tp_object *obj, const CK_ATTRIBUTE *attrs, size_t n);
/* Unlinks the objects marked is_doomed from lib's table. */
void object_unlink_doomed_locked(tp_lib *lib);

/* C_GetAttributeValue (C_DestroyObject: core/manage.h). */
CK_RV object_get_attributes(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
			    CK_ATTRIBUTE *tmpl, CK_ULONG count);


#endif
