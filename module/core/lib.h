/* The module's global state: one tp_lib per C_Initialize.
 *
 * Locking: one global mutex (lib_lock) guards the current-lib pointer and
 * every table inside a lib (sessions, objects, find state).  It is only held
 * for short, non-blocking work: never across network I/O (tang_server_keys,
 * tang_recover) or file access.  Functions that need it end in _locked.
 *
 * Lifetime: every entry point pins the lib (lib_acquire/lib_release).
 * C_Finalize unpublishes it and drops the initialization's reference; the
 * last release frees it, so an operation in flight in another thread
 * finishes on a lib that is still there.
 *
 * Fork: an atfork child handler counts forks; a lib belongs to the fork
 * generation that made it, so the child of an initialized parent sees
 * CKR_CRYPTOKI_NOT_INITIALIZED until it calls C_Initialize, which abandons
 * (leaks, never frees) the parent's state. */
#ifndef TP_CORE_LIB_H
#define TP_CORE_LIB_H

#include <stdbool.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "util/config.h"

typedef struct tp_token tp_token;
typedef struct tp_session tp_session;
typedef struct tp_object tp_object;

typedef struct tp_lib {
	unsigned long refs;          /* under lib_lock */
	unsigned long fork_id;       /* fork generation at C_Initialize */
	bool finalized;              /* C_Finalize'd: its sessions are gone for
	                                operations still in flight; under lib_lock */
	tp_config *cfg;
	size_t n_tokens;
	tp_token *tokens;            /* slot ID = index + 1; immutable after init */
	/* Both tables are ordered by handle: handles are drawn under lib_lock
	 * from a monotonic counter and appended, so lookups bisect. */
	tp_session **sessions;
	size_t n_sessions, cap_sessions;
	tp_object **objects;
	size_t n_objects, cap_objects;
	/* Entry points running now (atomic): an ended lease is wiped only
	 * when no other call is in flight (core/tstore.c). */
	unsigned long calls;
	/* Times a lease end or a logout wiped stored objects (atomic). */
	unsigned long wipes;
	struct tp_lib *abandoned;    /* a forked child's list of its parents'
	                                states, kept reachable, never freed */
} tp_lib;

void lib_lock(void);
void lib_unlock(void);

/* C_Initialize / C_Finalize semantics (init args matrix, pReserved). */
CK_RV lib_initialize(const CK_C_INITIALIZE_ARGS *args);
CK_RV lib_finalize(void *reserved);
CK_RV lib_info(CK_INFO *info);

/* Pin the current lib: CKR_CRYPTOKI_NOT_INITIALIZED when there is none or
 * it belongs to the parent of this process. */
CK_RV lib_acquire(tp_lib **out);
void lib_release(tp_lib *lib);

/* Grows the array *arr_ptr (elements of elem bytes, n used, *cap
 * allocated) to hold one more; false on allocation failure. */
bool lib_grow(void *arr_ptr, size_t n, size_t *cap, size_t elem);

/* Copy s into a blank-padded, not NUL-terminated field (CK_*_INFO). */
void lib_pad(unsigned char *field, size_t size, const char *s);

#endif
