/* Sessions and login. */
#include "core/auth.h"
#include "core/session.h"
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
			       CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
{
	P11_LIB(session_open(lib, slotID, flags, phSession));
}

CK_RV P11_EXPORT C_CloseSession(CK_SESSION_HANDLE hSession)
{
	P11_LIB(session_close(lib, hSession));
}

CK_RV P11_EXPORT C_CloseAllSessions(CK_SLOT_ID slotID)
{
	P11_LIB(session_close_all(lib, slotID));
}

CK_RV P11_EXPORT C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	P11_LIB(session_info(lib, hSession, pInfo));
}

CK_RV P11_EXPORT C_GetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,
				     CK_ULONG_PTR pulOperationStateLen)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_SetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,
				     CK_ULONG ulOperationStateLen,
				     CK_OBJECT_HANDLE hEncryptionKey,
				     CK_OBJECT_HANDLE hAuthenticationKey)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
			 CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	P11_LIB(auth_login(lib, hSession, userType, pPin, ulPinLen));
}

CK_RV P11_EXPORT C_Logout(CK_SESSION_HANDLE hSession)
{
	P11_LIB(auth_logout(lib, hSession));
}
