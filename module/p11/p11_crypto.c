/* Encrypt and decrypt (CKM_TANG_JWE and AES on soft keys, core/crypt.c);
 * digest (core/digest.c); sign and verify with MACs (core/sign.c).  Sign
 * and verify with recovery and the dual-function calls are not offered. */
#include "core/crypt.h"
#include "core/digest.h"
#include "core/sign.h"
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	P11_OBJ(hSession, hKey, 0, crypt_encrypt_init(lib, hSession, pMechanism, hKey));
}

CK_RV P11_EXPORT C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen)
{
	P11_LIB(crypt_encrypt(lib, hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen));
}

CK_RV P11_EXPORT C_EncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen)
{
	P11_LIB(crypt_encrypt_update(lib, hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen));
}

CK_RV P11_EXPORT C_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen)
{
	P11_LIB(crypt_encrypt_final(lib, hSession, pLastEncryptedPart, pulLastEncryptedPartLen));
}

CK_RV P11_EXPORT C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	P11_OBJ(hSession, hKey, 0, crypt_decrypt_init(lib, hSession, pMechanism, hKey));
}

CK_RV P11_EXPORT C_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
{
	P11_LIB(crypt_decrypt(lib, hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen));
}

CK_RV P11_EXPORT C_DecryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen)
{
	P11_LIB(crypt_decrypt_update(lib, hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen));
}

CK_RV P11_EXPORT C_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen)
{
	P11_LIB(crypt_decrypt_final(lib, hSession, pLastPart, pulLastPartLen));
}

CK_RV P11_EXPORT C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism)
{
	P11_LIB(digestop_init(lib, hSession, pMechanism));
}

CK_RV P11_EXPORT C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen)
{
	P11_LIB(digestop_digest(lib, hSession, pData, ulDataLen, pDigest, pulDigestLen));
}

CK_RV P11_EXPORT C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	P11_LIB(digestop_update(lib, hSession, pPart, ulPartLen));
}

CK_RV P11_EXPORT C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey)
{
	P11_OBJ(hSession, hKey, 0, digestop_key(lib, hSession, hKey));
}

CK_RV P11_EXPORT C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen)
{
	P11_LIB(digestop_final(lib, hSession, pDigest, pulDigestLen));
}

CK_RV P11_EXPORT C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	P11_OBJ(hSession, hKey, 0, signop_sign_init(lib, hSession, pMechanism, hKey));
}

CK_RV P11_EXPORT C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	P11_LIB(signop_sign(lib, hSession, pData, ulDataLen, pSignature, pulSignatureLen));
}

CK_RV P11_EXPORT C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	P11_LIB(signop_sign_update(lib, hSession, pPart, ulPartLen));
}

CK_RV P11_EXPORT C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	P11_LIB(signop_sign_final(lib, hSession, pSignature, pulSignatureLen));
}

CK_RV P11_EXPORT C_SignRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_SignRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	P11_OBJ(hSession, hKey, 0, signop_verify_init(lib, hSession, pMechanism, hKey));
}

CK_RV P11_EXPORT C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	P11_LIB(signop_verify(lib, hSession, pData, ulDataLen, pSignature, ulSignatureLen));
}

CK_RV P11_EXPORT C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	P11_LIB(signop_verify_update(lib, hSession, pPart, ulPartLen));
}

CK_RV P11_EXPORT C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	P11_LIB(signop_verify_final(lib, hSession, pSignature, ulSignatureLen));
}

CK_RV P11_EXPORT C_VerifyRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_SignEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen)
{
	P11_NOT_SUPPORTED();
}
