/* Random numbers and the legacy parallel-function calls. */
#include "core/random.h"
#include "p11/p11_guard.h"

CK_RV P11_EXPORT C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
	P11_LIB(random_seed(lib, hSession, pSeed, ulSeedLen));
}

CK_RV P11_EXPORT C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData,
				  CK_ULONG ulRandomLen)
{
	P11_LIB(random_generate(lib, hSession, RandomData, ulRandomLen));
}

CK_RV P11_EXPORT C_GetFunctionStatus(CK_SESSION_HANDLE hSession)
{
	P11_NOT_SUPPORTED();
}

CK_RV P11_EXPORT C_CancelFunction(CK_SESSION_HANDLE hSession)
{
	P11_NOT_SUPPORTED();
}
