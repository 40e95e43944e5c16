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
	/* Legacy functions: PKCS#11 2.40 §5.17 says they return
	 * CKR_FUNCTION_NOT_PARALLEL (once initialized). */
	P11_LIB(CKR_FUNCTION_NOT_PARALLEL);
}

CK_RV P11_EXPORT C_CancelFunction(CK_SESSION_HANDLE hSession)
{
	/* Legacy functions: PKCS#11 2.40 §5.17 says they return
	 * CKR_FUNCTION_NOT_PARALLEL (once initialized). */
	P11_LIB(CKR_FUNCTION_NOT_PARALLEL);
}
