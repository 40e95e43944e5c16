/* The template of a secret key the token makes from a value it computed:
 * C_DeriveKey (core/derive.c) and C_UnwrapKey (core/wrap.c).  Checks run
 * before any network; the object is built without its value. */
#ifndef TP_CORE_KEYTMPL_H
#define TP_CORE_KEYTMPL_H

#include <stdbool.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "core/object.h"

typedef struct tp_key_req {
	CK_KEY_TYPE key_type;        /* CKK_GENERIC_SECRET (default), CKK_AES, CKK_SHA*_HMAC */
	CK_ULONG value_len;          /* CKA_VALUE_LEN, when has_len */
	bool has_len;
} tp_key_req;

/* The secret key types the token makes: generic secret, AES and the
 * CKK_SHA*_HMAC types. */
bool keytmpl_secret_type(CK_KEY_TYPE type);

/* Unknown attributes: CKR_ATTRIBUTE_TYPE_INVALID; attributes the token
 * sets itself (CKA_VALUE, CKA_LOCAL, ...): CKR_ATTRIBUTE_READ_ONLY; a
 * value of the wrong size: CKR_ATTRIBUTE_VALUE_INVALID; a class other than
 * CKO_SECRET_KEY, a key type keytmpl_secret_type refuses, CKA_TOKEN
 * true (no store yet): CKR_TEMPLATE_INCONSISTENT. */
CK_RV keytmpl_check(const CK_ATTRIBUTE *tmpl, CK_ULONG count, tp_key_req *req);

/* The new session object of session hs: the template, then the class's
 * defaults, CKA_KEY_TYPE and CKA_VALUE_LEN = req->value_len; no value.
 * CKA_PRIVATE true on a token with a store and no user logged in:
 * CKR_USER_NOT_LOGGED_IN.  Takes lib_lock: call it unlocked. */
CK_RV keytmpl_build(tp_token *tok, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl,
		    CK_ULONG count, const tp_key_req *req, tp_object **out);

#endif
