/* A token's sealed store as core/ sees it (docs/store.md): the lease of
 * the root secret R, recovered through Tang from the metadata's Clevis JWE,
 * and the store's token objects shown as tp_objects with stable handles.
 *
 * Nothing here runs with lib_lock held across I/O: the network (recovering
 * R) and the files (listing, writing) are reached unlocked; only the merge
 * of the store's object list into lib's table takes lib_lock.  No function
 * here is called from C_Initialize: R is first recovered on first need. */
#ifndef TP_CORE_TSTORE_H
#define TP_CORE_TSTORE_H

#include <stdbool.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "store/store.h"
#include "util/err.h"

/* Opens the store handle of tok (no network; reads the metadata only). */
CK_RV tstore_open(tp_token *tok);
void tstore_close(tp_token *tok);

/* store_status -> CK_RV for operations on objects and PINs. */
CK_RV tstore_rv(store_status s);

/* The state of the store: CKR_OK (initialized), CKR_TOKEN_NOT_RECOGNIZED
 * (damaged, newer format), CKR_USER_PIN_NOT_INITIALIZED (uninitialized:
 * no metadata yet), CKR_DEVICE_ERROR (the disk).  Never the network. */
CK_RV tstore_state(tp_token *tok);

/* Makes sure R is held: recovers it through Tang when the lease ended.
 * CKR_DEVICE_ERROR when Tang cannot be reached (*dev_err says why),
 * CKR_TOKEN_NOT_RECOGNIZED when the metadata's JWE or MAC is wrong. */
CK_RV tstore_root(tp_token *tok, tp_err *dev_err);
/* Starts a lease for R just handed to the store (C_InitToken). */
void tstore_lease_start(tp_token *tok);

/* Counts an entry point in flight, and ends every lease that ran out: R
 * and decrypted objects are wiped, the tp_objects of the store keep their
 * handles but lose their attributes.  Called at the start of every entry
 * point (the module has no threads of its own); tstore_call_end at its
 * end.  While other calls are in flight (they may be using objects they
 * just prepared) the wipe waits, at most TP_LEASE_GRACE seconds. */
#define TP_LEASE_GRACE 2
void tstore_tick(tp_lib *lib);
void tstore_call_end(tp_lib *lib);
/* Counts wipes of stored objects: a call that failed while one happened
 * (P11_OBJ) is prepared and run once more. */
unsigned long tstore_wipes(tp_lib *lib);
/* Drops R, and the attributes of every store object (logout, re-init);
 * with drop_private, private objects are unlinked as well. */
void tstore_drop(tp_lib *lib, tp_token *tok, bool drop_private);

/* Brings lib's objects of tok in step with the store: R if needed, then
 * new, changed and removed objects (only changed files are read: the store
 * caches).  CKR_OK without a store or with an uninitialized one. */
CK_RV tstore_sync(tp_lib *lib, tp_token *tok, tp_err *dev_err);
/* tstore_sync, then, when it returns CKR_OK (also without a store or with
 * an uninitialized one), then(lib, arg) under the lib_lock of the merge:
 * no wipe and no other thread's write comes between, so every stored
 * object then sees has its attributes (a search needs no retry). */
typedef void (*tstore_then_fn)(tp_lib *lib, void *arg);
CK_RV tstore_sync_then(tp_lib *lib, tp_token *tok, tp_err *dev_err, tstore_then_fn then,
		       void *arg);

/* Before an entry point uses object handles (0 = none): if one names a
 * stored object whose attributes the lease took away, recover and sync.
 * Records a device error in the session.  CKR_OK when nothing to do or
 * the handles are invalid (the operation itself reports that). */
CK_RV tstore_prepare(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h1,
		     CK_OBJECT_HANDLE h2);

/* Shows a stored object this process just wrote (id, is_private, attrs)
 * or replaces the attributes of the one shown; *handle gets its handle.
 * Call it after the write returned, with no lock held: it takes the
 * token's view_mu, so a sync that listed the store before the write is
 * merged before it, never after (which would drop the new object or
 * bring back old attributes). */
CK_RV tstore_show(tp_lib *lib, tp_token *tok, const uint8_t id[STORE_ID_LEN],
		  bool is_private, const CK_ATTRIBUTE *attrs, size_t n,
		  uint64_t stamp, CK_OBJECT_HANDLE *handle);
/* Unlinks and frees the stored object with id (removed from the store),
 * if shown.  No lock held; ordered with syncs as tstore_show. */
void tstore_unshow(tp_lib *lib, tp_token *tok, const uint8_t id[STORE_ID_LEN]);

#endif
