/* Operations on soft keys (secret keys whose value the module holds:
 * derived or unwrapped session objects, later store objects): encrypt,
 * decrypt (mech/aes.c), sign, verify (mech/mac.c) and digest
 * (mech/digest.c).  One operation of each kind per session, in the
 * session's sops[] slots, beside the CKM_TANG_JWE operations of
 * core/crypt.c (an encryption is one or the other).
 *
 * Operation rules (PKCS#11 2.40 §5.2 and the functions' text): Init on an
 * active operation is CKR_OPERATION_ACTIVE; a step without Init is
 * CKR_OPERATION_NOT_INITIALIZED; mixing single-part and multi-part steps
 * is CKR_OPERATION_ACTIVE (the operation stays); a length query (NULL
 * output buffer) and CKR_BUFFER_TOO_SMALL keep the operation; every other
 * result of a step ends it, except a successful Update.
 *
 * The crypto runs with no lock held: a step takes the mechanism context
 * out of its slot (marking it busy), works, and gives it back or frees it.
 * If the session was closed meanwhile the step frees the context and
 * returns CKR_SESSION_CLOSED.  The key value is copied into the context
 * at Init: destroying the key object later does not disturb the
 * operation. */
#ifndef TP_CORE_OP_H
#define TP_CORE_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

typedef enum tp_op_mode {
	TP_OP_FRESH = 0,             /* initialised, no step yet */
	TP_OP_SINGLE,                /* a single-part call seen (length query) */
	TP_OP_MULTI,                 /* an Update seen */
} tp_op_mode;

typedef enum tp_op_kind {
	TP_OPK_ENCRYPT,
	TP_OPK_DECRYPT,
	TP_OPK_SIGN,
	TP_OPK_VERIFY,
	TP_OPK_DIGEST,
	TP_OPK_N,
} tp_op_kind;

typedef struct tp_soft_op {
	bool active;
	bool busy;                   /* a step runs with the lock dropped */
	tp_op_mode mode;
	CK_MECHANISM_TYPE mech;
	void *ctx;                   /* tp_cipher / tp_mac / tp_digest */
} tp_soft_op;

/* Ends the operation and frees its context. */
void softop_clear(tp_soft_op *op, tp_op_kind kind);
void softop_free_ctx(tp_op_kind kind, void *ctx);

/* C_*Init for a soft-key mechanism (hkey unused for digests).  The
 * mechanism must carry the kind's CKF_ flag; the key must be a secret key
 * of a type and size the mechanism takes, with the kind's usage attribute
 * (CKA_ENCRYPT, ...: CKR_KEY_FUNCTION_NOT_PERMITTED). */
CK_RV softop_init(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind,
		  const CK_MECHANISM *mech, CK_OBJECT_HANDLE hkey);

/* True when session hs has an active soft operation of this kind. */
bool softop_active(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind);

/* A step: takes the context (CKR_OK), or says why not. */
CK_RV softop_take(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind, tp_op_mode mode,
		  void **ctx);
/* Gives the context back (keep) or ends the operation; returns rv, or
 * CKR_SESSION_CLOSED when the session went away meanwhile. */
CK_RV softop_give(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind, void *ctx, bool keep,
		  CK_RV rv);

/* The value, key type and object class of a key for an operation: copies
 * the value (the caller wipes it with OPENSSL_clear_free(value, len + 1)).
 * Under lib_lock.  CKR_KEY_HANDLE_INVALID / CKR_KEY_TYPE_INCONSISTENT
 * (not a secret key with a value) / CKR_KEY_FUNCTION_NOT_PERMITTED (usage
 * attribute false; 0 = no usage check). */
typedef struct tp_key_copy {
	uint8_t *value;
	size_t len;
	CK_KEY_TYPE key_type;
} tp_key_copy;
CK_RV softkey_copy_locked(tp_lib *lib, tp_session *s, CK_OBJECT_HANDLE h,
			  CK_ATTRIBUTE_TYPE usage, tp_key_copy *out);
void softkey_wipe(tp_key_copy *k);

/* The two-call convention for a result of n bytes: true when delivered
 * into out; false with *rv = CKR_OK (length query) or CKR_BUFFER_TOO_SMALL
 * and *keep set, *out_len = n. */
bool softop_deliver(const uint8_t *res, size_t n, CK_BYTE *out, CK_ULONG *out_len,
		    CK_RV *rv, bool *keep);

#endif
