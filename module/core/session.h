/* Sessions: per-session state (find snapshot, crypt operations, last device
 * error) lives in the lib's session table under lib_lock. */
#ifndef TP_CORE_SESSION_H
#define TP_CORE_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "core/crypt.h"
#include "core/lib.h"
#include "core/op.h"
#include "util/err.h"

struct tp_session {
	CK_SESSION_HANDLE handle;
	tp_token *token;
	CK_FLAGS flags;              /* CKF_SERIAL_SESSION [| CKF_RW_SESSION] */
	tp_err device_error;         /* of the last failed Tang operation */
	/* C_FindObjects*: a snapshot of matching handles taken at init. */
	bool find_busy;              /* FindObjectsInit in progress (unlocked) */
	bool find_active;
	CK_OBJECT_HANDLE *found;
	size_t n_found, pos;
	/* C_Encrypt* / C_Decrypt* (core/crypt.h). */
	tp_crypt_op enc_op;
	tp_crypt_op dec_op;
	/* Soft-key operations (core/op.h): encrypt, decrypt, sign, verify,
	 * digest. */
	tp_soft_op sops[TP_OPK_N];
};

CK_RV session_open(tp_lib *lib, CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE *out);
CK_RV session_close(tp_lib *lib, CK_SESSION_HANDLE h);
CK_RV session_close_all(tp_lib *lib, CK_SLOT_ID slot);
CK_RV session_info(tp_lib *lib, CK_SESSION_HANDLE h, CK_SESSION_INFO *info);
/* CKR_OK iff h names an open session (the guard's pre-check). */
CK_RV session_check(tp_lib *lib, CK_SESSION_HANDLE h);

tp_session *session_lookup_locked(tp_lib *lib, CK_SESSION_HANDLE h);
/* Sessions open on tok, all and read/write ones. */
void session_count_locked(tp_lib *lib, const tp_token *tok, CK_ULONG *all, CK_ULONG *rw);
void session_free(tp_session *s);

#endif
