/* Key management: C_DeriveKey (CKM_ECDH1_DERIVE on a Tang key),
 * C_WrapKey / C_UnwrapKey (CKM_TANG_JWE). */
#include "core/derive.h"
#include "core/manage.h"
#include "core/wrap.h"
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
			       CK_OBJECT_HANDLE_PTR phKey)
{
	P11_LIB(manage_generate(lib, hSession, pMechanism, pTemplate, ulCount, phKey));
}

CK_RV P11_EXPORT C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
				   CK_ATTRIBUTE_PTR pPublicKeyTemplate,
				   CK_ULONG ulPublicKeyAttributeCount,
				   CK_ATTRIBUTE_PTR pPrivateKeyTemplate,
				   CK_ULONG ulPrivateKeyAttributeCount,
				   CK_OBJECT_HANDLE_PTR phPublicKey,
				   CK_OBJECT_HANDLE_PTR phPrivateKey)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			   CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
			   CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen)
{
	P11_OBJ(hSession, hWrappingKey, hKey,
		wrap_key(lib, hSession, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen));
}

CK_RV P11_EXPORT C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			     CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey,
			     CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
			     CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	P11_OBJ(hSession, hUnwrappingKey, 0, unwrap_key(lib, hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen,
			   pTemplate, ulAttributeCount, phKey));
}

CK_RV P11_EXPORT C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			     CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate,
			     CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	P11_OBJ(hSession, hBaseKey, 0, derive_key(lib, hSession, pMechanism, hBaseKey, pTemplate, ulAttributeCount, phKey));
}
