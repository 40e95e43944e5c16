/* Guard macros for the entry points (STYLE.md rule 1): every C_* is one
 * line that traces, pins the lib (init + fork check) and calls a core
 * function.  The core function looks the session up under the short state
 * lock itself, because it must drop that lock before any network I/O and
 * look the session up again afterwards (it may have been closed). */
#ifndef TP_P11_GUARD_H
#define TP_P11_GUARD_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "core/tstore.h"
#include "util/log.h"

/* The module is built with -fvisibility=hidden; only C_* are exported
 * (and module.map keeps it that way). */
#define P11_EXPORT __attribute__((visibility("default")))

/* Runs call with `lib` pinned; CKR_CRYPTOKI_NOT_INITIALIZED when there is
 * no lib for this process (never initialized, finalized, or forked). */
#define P11_LIB(call) \
	do { \
		tp_lib *lib = NULL; \
		CK_RV rv = lib_acquire(&lib); \
		log_debug("%s", __func__); \
		if (rv == CKR_OK) { \
			tstore_tick(lib); \
			rv = (call); \
			tstore_call_end(lib); \
			lib_release(lib); \
		} \
		return rv; \
	} while (0)

/* P11_LIB for calls that use object handles h1, h2 (0: none): a stored
 * object whose attributes an ended lease took away is brought back first
 * (Tang: no lock held), or the call fails with CKR_DEVICE_ERROR.  A call
 * that failed while another thread wiped stored objects (a lease ending
 * under it) is prepared and run once more: these calls change nothing
 * when they fail. */
#define P11_OBJ(hs, h1, h2, call) \
	do { \
		tp_lib *lib = NULL; \
		CK_RV rv = lib_acquire(&lib); \
		log_debug("%s", __func__); \
		if (rv == CKR_OK) { \
			unsigned long wipes_; \
			tstore_tick(lib); \
			wipes_ = tstore_wipes(lib); \
			rv = tstore_prepare(lib, (hs), (h1), (h2)); \
			if (rv == CKR_OK) \
				rv = (call); \
			if (rv != CKR_OK && tstore_wipes(lib) != wipes_) { \
				rv = tstore_prepare(lib, (hs), (h1), (h2)); \
				if (rv == CKR_OK) \
					rv = (call); \
			} \
			tstore_call_end(lib); \
			lib_release(lib); \
		} \
		return rv; \
	} while (0)

/* Functions of PKCS#11 2.40 the token does not offer (yet). */
#define P11_NOT_SUPPORTED() P11_LIB(CKR_FUNCTION_NOT_SUPPORTED)

#endif
