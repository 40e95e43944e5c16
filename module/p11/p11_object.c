/* Objects: attributes, destroy, search. */
#include "core/find.h"
#include "core/manage.h"
#include "core/object.h"
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
				CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject)
{
	P11_LIB(manage_create(lib, hSession, pTemplate, ulCount, phObject));
}

CK_RV P11_EXPORT C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
			      CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
			      CK_OBJECT_HANDLE_PTR phNewObject)
{
	P11_OBJ(hSession, hObject, 0,
		manage_copy(lib, hSession, hObject, pTemplate, ulCount, phNewObject));
}

CK_RV P11_EXPORT C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	P11_OBJ(hSession, hObject, 0, manage_destroy(lib, hSession, hObject));
}

CK_RV P11_EXPORT C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
				 CK_ULONG_PTR pulSize)
{
	P11_OBJ(hSession, hObject, 0, manage_size(lib, hSession, hObject, pulSize));
}

CK_RV P11_EXPORT C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
				     CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	P11_OBJ(hSession, hObject, 0, object_get_attributes(lib, hSession, hObject, pTemplate, ulCount));
}

CK_RV P11_EXPORT C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
				     CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	P11_OBJ(hSession, hObject, 0, manage_set(lib, hSession, hObject, pTemplate, ulCount));
}

CK_RV P11_EXPORT C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
				   CK_ULONG ulCount)
{
	P11_LIB(find_init(lib, hSession, pTemplate, ulCount));
}

CK_RV P11_EXPORT C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
			       CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
	P11_LIB(find_next(lib, hSession, phObject, ulMaxObjectCount, pulObjectCount));
}

CK_RV P11_EXPORT C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	P11_LIB(find_final(lib, hSession));
}
