/* C_DeriveKey: template rules for the derived secret key and the dispatch
 * to the mechanism (mech/ecdh.c), with no lock held during the exchange. */
#ifndef TP_CORE_DERIVE_H
#define TP_CORE_DERIVE_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV derive_key(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		 CK_OBJECT_HANDLE base, const CK_ATTRIBUTE *tmpl, CK_ULONG count,
		 CK_OBJECT_HANDLE *out);

#endif
