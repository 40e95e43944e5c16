/* C_WrapKey and C_UnwrapKey (CKM_TANG_JWE so far, docs/jwe.md).
 *
 * Wrap: a secret key with CKA_EXTRACTABLE, under the Tang public key,
 * offline.  The JWE's length is a deterministic function of the cached
 * advertisement, the URL and the key's length (fixed-width coordinates,
 * random IV of fixed size), so a length query computes one JWE and reports
 * its length; nothing is kept between calls.
 *
 * Unwrap: a Clevis JWE with any Tang private key of the token; the
 * template decides class and key type (core/keytmpl.h), the plaintext the
 * length.  Every check that needs no network runs before the exchange,
 * which runs with no lock held. */
#ifndef TP_CORE_WRAP_H
#define TP_CORE_WRAP_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV wrap_key(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
	       CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
	       CK_BYTE *out, CK_ULONG *out_len);

CK_RV unwrap_key(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		 CK_OBJECT_HANDLE unwrapping, const CK_BYTE *in, CK_ULONG in_len,
		 const CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *out);

#endif
