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

/* The search proper, under lib_lock (right after the merge of the
 * store's objects when the search includes them). */
typedef struct scan {
	CK_SESSION_HANDLE hs;
	tp_token *tok;
	const CK_ATTRIBUTE *tmpl;
	CK_ULONG count;
	tp_err load_err;
	CK_RV rv;
} scan;

static void scan_locked(tp_lib *lib, void *arg)
{
	scan *sc = arg;
	tp_token *tok = sc->tok;
	tp_session *s = session_lookup_locked(lib, sc->hs);

	if (!s) {
		/* Closed by another thread meanwhile. */
		sc->rv = CKR_SESSION_CLOSED;
		return;
	}
	s->find_busy = false;
	free(s->found);
	s->found = calloc(lib->n_objects + 1, sizeof(*s->found));
	s->n_found = s->pos = 0;
	if (!s->found) {
		sc->rv = CKR_HOST_MEMORY;
		return;
	}
	for (size_t i = 0; i < lib->n_objects; i++) {
		const tp_object *o = lib->objects[i];

		if (o->token != tok)
			continue;
		if (!attrs_match(o, sc->tmpl, sc->count))
			continue;
		if (tok->st && tok->login != CKU_USER && object_is_private(o))
			continue;
		s->found[s->n_found++] = o->handle;
	}
	/* The search still succeeds, without Tang keys; ulDeviceError says why. */
	if (may_match_tang(sc->tmpl, sc->count))
		s->device_error = sc->load_err;
	s->find_active = true;
	sc->rv = CKR_OK;
}

CK_RV find_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_session *s;
	tp_token *tok = NULL;
	scan sc = { .hs = hs, .tmpl = tmpl, .count = count, .load_err = TP_OK,
		    .rv = CKR_GENERAL_ERROR };
	tp_err err = TP_OK;

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
	sc.tok = tok;

	/* First need of the Tang keys: fetch the advertisement, unlocked. */
	if (may_match_tang(tmpl, count))
		sc.load_err = token_load_keys(lib, tok);
	if (tok->st && may_match_store(tmpl, count)) {
		/* The store's objects: R through Tang when the lease ended,
		 * then only what changed on disk is read (the store caches);
		 * the scan runs under the merge's lock, so a lease ending in
		 * another thread cannot take the attributes away before it
		 * (and a search never misses an object that is there). */
		rv = tstore_sync_then(lib, tok, &err, scan_locked, &sc);
	} else {
		lib_lock();
		/* LOCKED SECTION ---------------------------------------- */
		scan_locked(lib, &sc);
		/* ------------------------------------- END LOCKED SECTION */
		lib_unlock();
		rv = CKR_OK;
	}
	if (rv == CKR_OK)
		return sc.rv;
	/* The sync failed: the scan did not run. */
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (s) {
		s->find_busy = false;
		if (err != TP_OK)
			s->device_error = err;
	}
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
