/* Slots, tokens, mechanisms.  None of these touches the network. */
#include "core/auth.h"
#include "core/token.h"
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
			       CK_ULONG_PTR pulCount)
{
	P11_LIB(token_slot_list(lib, pSlotList, pulCount));
}

CK_RV P11_EXPORT C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	P11_LIB(token_slot_info(lib, slotID, pInfo));
}

CK_RV P11_EXPORT C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	P11_LIB(token_info(lib, slotID, pInfo));
}

CK_RV P11_EXPORT C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
				    CK_ULONG_PTR pulCount)
{
	P11_LIB(token_mechanism_list(lib, slotID, pMechanismList, pulCount));
}

CK_RV P11_EXPORT C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
				    CK_MECHANISM_INFO_PTR pInfo)
{
	P11_LIB(token_mechanism_info(lib, slotID, type, pInfo));
}

CK_RV P11_EXPORT C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
			     CK_UTF8CHAR_PTR pLabel)
{
	P11_LIB(auth_init_token(lib, slotID, pPin, ulPinLen, pLabel));
}

CK_RV P11_EXPORT C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	P11_LIB(auth_init_pin(lib, hSession, pPin, ulPinLen));
}

CK_RV P11_EXPORT C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
			  CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen)
{
	P11_LIB(auth_set_pin(lib, hSession, pOldPin, ulOldLen, pNewPin, ulNewLen));
}
