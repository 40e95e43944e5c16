/* C_Digest*, C_DigestKey (mech/digest.c).  Rules: core/op.h.  C_DigestKey
 * feeds a secret key's value into a multi-part digest: the key must be a
 * secret key with a value (else CKR_KEY_INDIGESTIBLE); like every failing
 * step it ends the operation. */
#ifndef TP_CORE_DIGEST_H
#define TP_CORE_DIGEST_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV digestop_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech);
CK_RV digestop_digest(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		      CK_BYTE *out, CK_ULONG *out_len);
CK_RV digestop_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len);
CK_RV digestop_key(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE key);
CK_RV digestop_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG *out_len);

#endif
