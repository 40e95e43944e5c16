/* C_GenerateRandom from the module's private OpenSSL context. */
#ifndef TP_CORE_RANDOM_H
#define TP_CORE_RANDOM_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV random_generate(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG len);

#endif
