/* C_Sign* and C_Verify* with the MAC mechanisms on soft keys
 * (mech/mac.c).  Rules: core/op.h; besides, C_Verify and C_VerifyFinal
 * always end the operation: CKR_SIGNATURE_LEN_RANGE when the signature
 * has the wrong length (checked first, on its length alone),
 * CKR_SIGNATURE_INVALID when it does not match (constant-time compare). */
#ifndef TP_CORE_SIGN_H
#define TP_CORE_SIGN_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV signop_sign_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		       CK_OBJECT_HANDLE key);
CK_RV signop_sign(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		  CK_BYTE *sig, CK_ULONG *sig_len);
CK_RV signop_sign_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			 CK_ULONG in_len);
CK_RV signop_sign_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *sig, CK_ULONG *sig_len);

CK_RV signop_verify_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
			 CK_OBJECT_HANDLE key);
CK_RV signop_verify(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		    const CK_BYTE *sig, CK_ULONG sig_len);
CK_RV signop_verify_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			   CK_ULONG in_len);
CK_RV signop_verify_final(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *sig,
			  CK_ULONG sig_len);

#endif
