#include "core/session.h"

#include <stdlib.h>
#include <string.h>

#include "core/auth.h"
#include "core/handle.h"
#include "core/object.h"
#include "core/token.h"
#include "core/tstore.h"

void session_free(tp_session *s)
{
	if (!s)
		return;
	free(s->found);
	crypt_op_clear(&s->enc_op);
	crypt_op_clear(&s->dec_op);
	for (int k = 0; k < TP_OPK_N; k++)
		softop_clear(&s->sops[k], (tp_op_kind)k);
	free(s);
}

static size_t session_index_locked(tp_lib *lib, CK_SESSION_HANDLE h)
{
	size_t lo = 0, hi = lib->n_sessions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (lib->sessions[mid]->handle < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < lib->n_sessions && lib->sessions[lo]->handle == h ? lo : (size_t)-1;
}

tp_session *session_lookup_locked(tp_lib *lib, CK_SESSION_HANDLE h)
{
	size_t i = session_index_locked(lib, h);

	/* An operation that outlived C_Finalize finds its session closed. */
	return i == (size_t)-1 || lib->finalized ? NULL : lib->sessions[i];
}

CK_RV session_check(tp_lib *lib, CK_SESSION_HANDLE h)
{
	CK_RV rv;

	lib_lock();
	rv = session_lookup_locked(lib, h) ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
	lib_unlock();
	return rv;
}

void session_count_locked(tp_lib *lib, const tp_token *tok, CK_ULONG *all, CK_ULONG *rw)
{
	*all = *rw = 0;
	for (size_t i = 0; i < lib->n_sessions; i++) {
		if (lib->sessions[i]->token != tok)
			continue;
		(*all)++;
		if (lib->sessions[i]->flags & CKF_RW_SESSION)
			(*rw)++;
	}
}

CK_RV session_open(tp_lib *lib, CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE *out)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_token *tok = token_get(lib, slot);
	tp_session *s = NULL;

	if (!out) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if (!tok) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	if (!(flags & CKF_SERIAL_SESSION)) {
		rv = CKR_SESSION_PARALLEL_NOT_SUPPORTED;
		goto out;
	}
	/* A damaged store, or one of a newer format, is not ours: no
	 * session (a metadata stat and read, never the network). */
	if (tok->st && tstore_state(tok) == CKR_TOKEN_NOT_RECOGNIZED) {
		rv = CKR_TOKEN_NOT_RECOGNIZED;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	s->token = tok;
	s->flags = CKF_SERIAL_SESSION | (flags & CKF_RW_SESSION);

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	if (tok->login == CKU_SO && !(flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_WRITE_SO_EXISTS;
	} else if (lib_grow(&lib->sessions, lib->n_sessions, &lib->cap_sessions,
			    sizeof(*lib->sessions))) {
		s->handle = handle_next();
		lib->sessions[lib->n_sessions++] = s;
		*out = s->handle;
		s = NULL;
		rv = CKR_OK;
	} else {
		rv = CKR_HOST_MEMORY;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
out:
	session_free(s);
	return rv;
}

/* Unlinks session i and its objects; the caller frees them unlocked. */
static void session_unlink_locked(tp_lib *lib, size_t i, tp_session **s,
				  tp_object ***objs, size_t *n_objs)
{
	*s = lib->sessions[i];
	memmove(&lib->sessions[i], &lib->sessions[i + 1],
		(lib->n_sessions - i - 1) * sizeof(*lib->sessions));
	lib->n_sessions--;
	object_unlink_owned_locked(lib, (*s)->handle, objs, n_objs);
}

CK_RV session_close(tp_lib *lib, CK_SESSION_HANDLE h)
{
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;
	tp_session *s = NULL;
	tp_object **objs = NULL;
	size_t n_objs = 0, i;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	i = session_index_locked(lib, h);
	if (i != (size_t)-1) {
		session_unlink_locked(lib, i, &s, &objs, &n_objs);
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	object_free_all(objs, n_objs);
	if (s)
		auth_session_gone(lib, s->token);
	session_free(s);
	return rv;
}

CK_RV session_close_all(tp_lib *lib, CK_SLOT_ID slot)
{
	tp_token *tok = token_get(lib, slot);
	bool more = true;

	if (!tok)
		return CKR_SLOT_ID_INVALID;
	/* One session per round, so that object freeing (wiping) happens
	 * outside the lock. */
	while (more) {
		tp_session *s = NULL;
		tp_object **objs = NULL;
		size_t n_objs = 0;

		more = false;
		lib_lock();
		/* LOCKED SECTION ---------------------------------------- */
		for (size_t i = 0; i < lib->n_sessions; i++) {
			if (lib->sessions[i]->token == tok) {
				session_unlink_locked(lib, i, &s, &objs, &n_objs);
				more = true;
				break;
			}
		}
		/* ------------------------------------- END LOCKED SECTION */
		lib_unlock();
		object_free_all(objs, n_objs);
		session_free(s);
	}
	auth_session_gone(lib, tok);
	return CKR_OK;
}

CK_RV session_info(tp_lib *lib, CK_SESSION_HANDLE h, CK_SESSION_INFO *info)
{
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;
	tp_session *s;

	if (!info)
		return CKR_ARGUMENTS_BAD;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, h);
	if (s) {
		memset(info, 0, sizeof(*info));
		info->slotID = s->token->slot_id;
		bool is_rw = s->flags & CKF_RW_SESSION;

		if (s->token->login == CKU_SO)
			info->state = CKS_RW_SO_FUNCTIONS;
		else if (s->token->login == CKU_USER)
			info->state = is_rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
		else
			info->state = is_rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
		info->flags = s->flags;
		info->ulDeviceError = s->device_error;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}
