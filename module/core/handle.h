/* Session and object handles: one process-wide monotonic counter that
 * survives C_Finalize/C_Initialize (and fork), so a handle is never reused
 * in a process (Barbican re-initializes after errors and may still hold old
 * handles).  Sessions and objects draw from the same counter, so a session
 * handle passed as an object handle never finds anything. */
#ifndef TP_CORE_HANDLE_H
#define TP_CORE_HANDLE_H

#include <p11-kit/pkcs11.h>

CK_ULONG handle_next(void);

#endif
