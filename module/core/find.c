#include "core/find.h"

#include <stdlib.h>
#include <string.h>

#include "core/attrs.h"
#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "core/tstore.h"

/* Could a Tang key object match?  If not, the search needs no network
 * (a search for secret keys must not wait for the Tang server). */
static bool may_match_tang(const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		const CK_ATTRIBUTE *t = &tmpl[i];

		if (t->type == CKA_CLASS && t->pValue && t->ulValueLen == sizeof(CK_ULONG)) {
			CK_OBJECT_CLASS c = attrs_ulong(t);

			if (c != CKO_PUBLIC_KEY && c != CKO_PRIVATE_KEY)
				return false;
		}
		if (t->type == CKA_TOKEN && t->pValue && t->ulValueLen == sizeof(CK_BBOOL) &&
		    !*(const CK_BBOOL *)t->pValue)
			return false;
	}
	return true;
}

/* Could a store object match?  If not, the search needs neither the disk
 * nor Tang (a search for Tang keys or session objects works while Tang is
 * away and the lease has ended). */
static bool may_match_store(const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		const CK_ATTRIBUTE *t = &tmpl[i];

		if (t->type == CKA_CLASS && t->pValue && t->ulValueLen == sizeof(CK_ULONG)) {
			CK_OBJECT_CLASS c = attrs_ulong(t);

			if (c != CKO_SECRET_KEY && c != CKO_DATA && c != CKO_CERTIFICATE)
				return false;
		}
		if (t->type == CKA_TOKEN && t->pValue && t->ulValueLen == sizeof(CK_BBOOL) &&
		    !*(const CK_BBOOL *)t->pValue)
			return false;
	}
	return true;
}

CK_RV find_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_token *tok = NULL;
	tp_err load_err = TP_OK;

	if (!tmpl && count)
		return CKR_ARGUMENTS_BAD;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (s->find_active || s->find_busy) {
		rv = CKR_OPERATION_ACTIVE;
	} else {
		/* Claim the find operation while the lock is dropped. */
		s->find_busy = true;
		tok = s->token;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK)
		return rv;

	/* First need of the Tang keys: fetch the advertisement, unlocked. */
	if (may_match_tang(tmpl, count))
		load_err = token_load_keys(lib, tok);
	for (int tries = 0;; tries++) {
		bool with_store = tok->st && may_match_store(tmpl, count);
		bool incomplete = false;

		/* The store's objects: R through Tang when the lease ended,
		 * then only what changed on disk is read (the store caches). */
		if (with_store) {
			tp_err err = TP_OK;

			rv = tstore_sync(lib, tok, &err);
			if (rv != CKR_OK) {
				lib_lock();
				s = session_lookup_locked(lib, hs);
				if (s) {
					s->find_busy = false;
					if (err != TP_OK)
						s->device_error = err;
				}
				lib_unlock();
				return rv;
			}
		}

		lib_lock();
		/* LOCKED SECTION ---------------------------------------- */
		s = session_lookup_locked(lib, hs);
		if (!s) {
			/* Closed by another thread meanwhile. */
			rv = CKR_SESSION_CLOSED;
			goto unlock;
		}
		free(s->found);
		s->found = calloc(lib->n_objects + 1, sizeof(*s->found));
		s->n_found = s->pos = 0;
		if (!s->found) {
			s->find_busy = false;
			rv = CKR_HOST_MEMORY;
			goto unlock;
		}
		for (size_t i = 0; i < lib->n_objects; i++) {
			const tp_object *o = lib->objects[i];

			if (o->token != tok)
				continue;
			/* A lease ended (in another thread) since the sync:
			 * this object's attributes are gone; sync again. */
			if (with_store && o->is_stored && !o->is_loaded)
				incomplete = true;
			if (!attrs_match(o, tmpl, count))
				continue;
			if (tok->st && tok->login != CKU_USER && object_is_private(o))
				continue;
			s->found[s->n_found++] = o->handle;
		}
		if (!incomplete || tries == 2)
			break;
		/* ------------------------------------- END LOCKED SECTION */
		lib_unlock();
	}
	s->find_busy = false;
	/* The search still succeeds, without Tang keys; ulDeviceError says why. */
	if (may_match_tang(tmpl, count))
		s->device_error = load_err;
	s->find_active = true;
	rv = CKR_OK;
unlock:
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV find_next(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE *out,
		CK_ULONG max, CK_ULONG *n_out)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;

	if ((!out && max) || !n_out)
		return CKR_ARGUMENTS_BAD;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (!s->find_active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else {
		CK_ULONG n = 0;

		/* Objects destroyed since the snapshot are skipped. */
		while (n < max && s->pos < s->n_found) {
			CK_OBJECT_HANDLE h = s->found[s->pos++];

			if (object_lookup_locked(lib, s->token, h))
				out[n++] = h;
		}
		*n_out = n;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV find_final(tp_lib *lib, CK_SESSION_HANDLE hs)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (!s->find_active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else {
		free(s->found);
		s->found = NULL;
		s->n_found = s->pos = 0;
		s->find_active = false;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}
