#include "core/random.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/session.h"
#include "util/ec.h"
#include "util/log.h"

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

/* Additional input per reseed (OpenSSL's DRBGs take far more). */
#define SEED_CHUNK ((size_t)1 << 16)

CK_RV random_seed(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *seed, CK_ULONG len)
{
	EVP_RAND_CTX *primary;
	CK_RV rv;

	if (!seed && len)
		return CKR_ARGUMENTS_BAD;
	rv = session_check(lib, hs);
	if (rv != CKR_OK || len == 0)
		return rv;
	primary = RAND_get0_primary(ossl_ctx());
	if (!primary)
		return CKR_RANDOM_SEED_NOT_SUPPORTED;
	for (size_t off = 0; off < len; off += SEED_CHUNK) {
		size_t n = len - off < SEED_CHUNK ? len - off : SEED_CHUNK;

		if (EVP_RAND_reseed(primary, 0, NULL, 0, seed + off, n) != 1) {
			log_error("C_SeedRandom: the DRBG refused a reseed");
			return CKR_RANDOM_SEED_NOT_SUPPORTED;
		}
	}
	return CKR_OK;
}
