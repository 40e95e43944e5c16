#include "core/random.h"

#include <openssl/rand.h>

#include "core/session.h"
#include "util/ec.h"

CK_RV random_generate(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG len)
{
	CK_RV rv;

	if (!out && len)
		return CKR_ARGUMENTS_BAD;
	rv = session_check(lib, hs);
	if (rv != CKR_OK || len == 0)
		return rv;
	/* The private context: never the host's default provider. */
	if (RAND_bytes_ex(ossl_ctx(), out, len, 0) != 1)
		return CKR_FUNCTION_FAILED;
	return CKR_OK;
}
