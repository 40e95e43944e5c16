/* Object management (PKCS#11 2.40 §5.7, §5.13): C_CreateObject,
 * C_CopyObject, C_SetAttributeValue, C_DestroyObject, C_GetObjectSize and
 * C_GenerateKey (CKM_AES_KEY_GEN, CKM_GENERIC_SECRET_KEY_GEN), for session
 * objects and for token objects of the sealed store.  Which attribute may
 * be given, is required, changes, or sticks is the data of
 * core/attr_rules.c; this file only applies it.
 *
 * Session rules: a read-only session cannot create, change or destroy
 * token objects (CKR_SESSION_READ_ONLY); on a token with a store only a
 * logged-in user creates private objects (CKR_USER_NOT_LOGGED_IN).  Token
 * objects need Tang (the store's root secret) and are written to disk with
 * no lock of ours held. */
#ifndef TP_CORE_MANAGE_H
#define TP_CORE_MANAGE_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV manage_create(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl,
		    CK_ULONG count, CK_OBJECT_HANDLE *out);
CK_RV manage_copy(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
		  const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out);
CK_RV manage_set(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho,
		 const CK_ATTRIBUTE *tmpl, CK_ULONG count);
CK_RV manage_destroy(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho);
CK_RV manage_size(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE ho, CK_ULONG *size);
CK_RV manage_generate(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		      const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out);

#endif
