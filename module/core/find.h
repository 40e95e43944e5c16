/* C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal: the matching
 * handles are snapshot at init (tpm2-pkcs11's pattern). */
#ifndef TP_CORE_FIND_H
#define TP_CORE_FIND_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV find_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl, CK_ULONG count);
CK_RV find_next(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE *out,
		CK_ULONG max, CK_ULONG *n_out);
CK_RV find_final(tp_lib *lib, CK_SESSION_HANDLE hs);

#endif
