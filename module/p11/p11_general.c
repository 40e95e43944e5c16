/* C_Initialize, C_Finalize, C_GetInfo. */
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_Initialize(CK_VOID_PTR pInitArgs)
{
	return lib_initialize(pInitArgs);
}

CK_RV P11_EXPORT C_Finalize(CK_VOID_PTR pReserved)
{
	return lib_finalize(pReserved);
}

CK_RV P11_EXPORT C_GetInfo(CK_INFO_PTR pInfo)
{
	P11_LIB(lib_info(pInfo));
}
