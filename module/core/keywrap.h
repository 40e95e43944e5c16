/* C_WrapKey / C_UnwrapKey with the AES mechanisms (mech/aes.c) and a soft
 * AES wrapping key; core/wrap.c dispatches here for every mechanism but
 * CKM_TANG_JWE.
 *
 * Wrap: the wrapped key must be a secret key with a value and
 * CKA_EXTRACTABLE (CKR_KEY_UNEXTRACTABLE; CKA_SENSITIVE does not matter),
 * CKA_WRAP_WITH_TRUSTED needs a CKA_TRUSTED wrapping key
 * (CKR_KEY_NOT_WRAPPABLE).  ECB/CBC pad the value with zero bytes to a
 * block multiple, CKM_AES_KEY_WRAP to a multiple of 8 (PKCS#11 2.40 §2.14).
 *
 * Unwrap: the template makes the key (core/keytmpl.h).  For the modes
 * that padded with zeros (ECB, CBC, KEY_WRAP) CKA_VALUE_LEN cuts the value
 * (larger than the data: CKR_TEMPLATE_INCONSISTENT); for the others the
 * length is the plaintext's and a differing CKA_VALUE_LEN is
 * CKR_TEMPLATE_INCONSISTENT.  Decryption errors become their unwrap
 * forms: CKR_WRAPPED_KEY_LEN_RANGE, CKR_WRAPPED_KEY_INVALID. */
#ifndef TP_CORE_KEYWRAP_H
#define TP_CORE_KEYWRAP_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV keywrap_wrap(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		   CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, CK_BYTE *out,
		   CK_ULONG *out_len);
CK_RV keywrap_unwrap(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		     CK_OBJECT_HANDLE unwrapping, const CK_BYTE *in, CK_ULONG in_len,
		     const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out);

#endif
