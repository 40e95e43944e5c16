/* C_Encrypt* / C_Decrypt* steps of the AES mechanisms on soft keys
 * (mech/aes.c), dispatched from core/crypt.c when the session's operation
 * is a soft one.  Rules: core/op.h. */
#ifndef TP_CORE_CIPHER_H
#define TP_CORE_CIPHER_H

#include <stdbool.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV softcipher_single(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, const CK_BYTE *in,
			CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len);
CK_RV softcipher_update(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, const CK_BYTE *in,
			CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len);
CK_RV softcipher_final(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, CK_BYTE *out,
		       CK_ULONG *out_len);

#endif
