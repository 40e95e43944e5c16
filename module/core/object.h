/* Objects: Tang key objects (token objects, one public/private pair per
 * exchange key) and session objects (derived keys), with their attributes
 * stored as a list of CK_ATTRIBUTE whose values the object owns. */
#ifndef TP_CORE_OBJECT_H
#define TP_CORE_OBJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "tang/adv.h"

struct tp_object {
	CK_OBJECT_HANDLE handle;     /* set by object_add_locked */
	CK_OBJECT_CLASS klass;
	tp_token *token;
	CK_SESSION_HANDLE owner;     /* session of a session object; 0 for token objects */
	bool is_tang;                /* a Tang key object: key is valid */
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

/* C_GetAttributeValue, C_DestroyObject. */
CK_RV object_get_attributes(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
			    CK_ATTRIBUTE *tmpl, CK_ULONG count);
CK_RV object_destroy(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho);

#endif
