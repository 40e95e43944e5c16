/* C_GenerateRandom and C_SeedRandom from the module's private OpenSSL context. */
#ifndef TP_CORE_RANDOM_H
#define TP_CORE_RANDOM_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV random_generate(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG len);
/* C_SeedRandom: the seed is mixed, as additional input, into a reseed of
 * the private context's primary DRBG (fresh OS entropy is drawn too; the
 * seed never replaces it).  CKR_OK, or CKR_RANDOM_SEED_NOT_SUPPORTED when
 * the DRBG refuses the reseed. */
CK_RV random_seed(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *seed, CK_ULONG len);

#endif
