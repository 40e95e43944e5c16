#include "core/tstore.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "mech/jwe.h"
#include "util/log.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

CK_RV tstore_open(tp_token *tok)
{
	store_status s;

	if (pthread_mutex_init(&tok->lease_mu, NULL) != 0)
		return CKR_HOST_MEMORY;
	tok->has_lease_mu = true;
	if (pthread_mutex_init(&tok->login_mu, NULL) != 0)
		return CKR_HOST_MEMORY;
	tok->has_login_mu = true;
	if (pthread_mutex_init(&tok->view_mu, NULL) != 0)
		return CKR_HOST_MEMORY;
	tok->has_view_mu = true;
	if (!tok->cfg->store)
		return CKR_OK;
	/* Reads the metadata only: a damaged or newer store is still a
	 * token (C_GetTokenInfo answers), C_OpenSession refuses it. */
	s = store_open(tok->cfg->store, &tok->st);
	if (!tok->st) {
		log_error("token \"%s\": cannot open store %s: %s", tok->cfg->label,
			  tok->cfg->store, store_status_str(s));
		return s == STORE_NOMEM ? CKR_HOST_MEMORY : CKR_FUNCTION_FAILED;
	}
	if (s == STORE_OK) {
		store_info si;

		/* The store keeps the model it was made with. */
		if (store_get_info(tok->st, &si) == STORE_OK && si.pin_model != tok->cfg->pin)
			log_warn("token \"%s\": store %s was initialized with \"pin\": %s; the configuration's \"pin\": %s applies only after C_InitToken",
				 tok->cfg->label, tok->cfg->store, si.pin_model ? "true" : "false",
				 tok->cfg->pin ? "true" : "false");
	}
	return CKR_OK;
}

void tstore_close(tp_token *tok)
{
	store_close(tok->st);
	tok->st = NULL;
	free(tok->stored);
	tok->stored = NULL;
	tok->n_stored = tok->cap_stored = 0;
	if (tok->has_lease_mu)
		pthread_mutex_destroy(&tok->lease_mu);
	tok->has_lease_mu = false;
	if (tok->has_login_mu)
		pthread_mutex_destroy(&tok->login_mu);
	tok->has_login_mu = false;
	if (tok->has_view_mu)
		pthread_mutex_destroy(&tok->view_mu);
	tok->has_view_mu = false;
}

CK_RV tstore_rv(store_status s)
{
	switch (s) {
	case STORE_OK: return CKR_OK;
	case STORE_UNINITIALIZED: return CKR_USER_PIN_NOT_INITIALIZED;
	case STORE_DAMAGED: return CKR_TOKEN_NOT_RECOGNIZED;
	case STORE_NEWER_FORMAT: return CKR_TOKEN_NOT_RECOGNIZED;
	case STORE_READ_ONLY: return CKR_TOKEN_WRITE_PROTECTED;
	case STORE_WRONG_PIN: return CKR_PIN_INCORRECT;
	case STORE_LOCKED: return CKR_PIN_LOCKED;
	case STORE_IO: return CKR_DEVICE_ERROR;
	case STORE_NOMEM: return CKR_HOST_MEMORY;
	case STORE_NOT_FOUND: return CKR_OBJECT_HANDLE_INVALID;
	case STORE_NO_KEY: return CKR_USER_NOT_LOGGED_IN;
	case STORE_INVALID: return CKR_ATTRIBUTE_VALUE_INVALID;
	case STORE_PIN_NOT_SET: return CKR_USER_PIN_NOT_INITIALIZED;
	case STORE_FAILED: return CKR_FUNCTION_FAILED;
	}
	return CKR_GENERAL_ERROR;
}

CK_RV tstore_state(tp_token *tok)
{
	store_info si;
	store_status s = store_get_info(tok->st, &si);
	bool bad = false;

	if (s == STORE_OK) {
		pthread_mutex_lock(&tok->lease_mu);
		bad = tok->is_bad && memcmp(tok->bad_id, si.store_id, STORE_ID_LEN) == 0;
		pthread_mutex_unlock(&tok->lease_mu);
	}
	return bad ? CKR_TOKEN_NOT_RECOGNIZED : tstore_rv(s);
}

/* The store that is there now does not open under this token's binding:
 * refused from now on (never modified), until another store replaces it. */
static void mark_bad(tp_token *tok)
{
	store_info si;

	if (store_get_info(tok->st, &si) != STORE_OK)
		return;
	pthread_mutex_lock(&tok->lease_mu);
	tok->is_bad = true;
	memcpy(tok->bad_id, si.store_id, STORE_ID_LEN);
	pthread_mutex_unlock(&tok->lease_mu);
}

void tstore_lease_start(tp_token *tok)
{
	pthread_mutex_lock(&tok->lease_mu);
	tok->has_lease = true;
	tok->lease_end = now_s() + (double)tok->cfg->lease;
	pthread_mutex_unlock(&tok->lease_mu);
}

CK_RV tstore_root(tp_token *tok, tp_err *dev_err)
{
	CK_RV rv;
	char *sealed = NULL;
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	tp_clevis_jwe cj;
	bool has_cj = false;

	*dev_err = TP_OK;
	if (store_has_root(tok->st))
		return CKR_OK;
	rv = tstore_rv(store_sealed_root(tok->st, &sealed));
	if (rv != CKR_OK)
		goto out;
	/* The metadata's root secret is a standard Clevis JWE bound to the
	 * token's server: the same code as CKM_TANG_JWE decrypt. */
	rv = mech_jwe_parse(tok->srv, (const uint8_t *)sealed, strlen(sealed),
			    CKR_TOKEN_NOT_RECOGNIZED, &cj);
	has_cj = true;
	if (rv == CKR_OK && cj.jwe.ciphertext_len != STORE_ROOT_LEN) {
		log_error("token \"%s\": store %s: the sealed root secret has %zu bytes, not %d",
			  tok->cfg->label, tok->cfg->store, cj.jwe.ciphertext_len, STORE_ROOT_LEN);
		rv = CKR_TOKEN_NOT_RECOGNIZED;
	}
	if (rv != CKR_OK) {
		if (rv == CKR_TOKEN_NOT_RECOGNIZED)
			mark_bad(tok);
		goto out;
	}
	pt_len = cj.jwe.ciphertext_len;
	/* The recovery exchange: no lock of ours is held here. */
	rv = mech_jwe_decrypt(tok->srv, &cj, CKR_TOKEN_NOT_RECOGNIZED, &pt, dev_err);
	if (rv != CKR_OK)
		goto out;
	rv = tstore_rv(store_set_root(tok->st, pt));
	if (rv == CKR_TOKEN_NOT_RECOGNIZED)
		mark_bad(tok);
	if (rv == CKR_OK) {
		tstore_lease_start(tok);
		log_debug("token \"%s\": root secret recovered, lease %ld s", tok->cfg->label,
			  tok->cfg->lease);
	}
out:
	if (rv == CKR_TOKEN_NOT_RECOGNIZED)
		log_error("token \"%s\": store %s: the root secret cannot be recovered under this token's binding",
			  tok->cfg->label, tok->cfg->store);
	if (pt)
		OPENSSL_clear_free(pt, pt_len + 1);
	if (has_cj)
		clevis_jwe_clear(&cj);
	free(sealed);
	return rv;
}

/* ---- the objects shown ------------------------------------------------ */

static int sid_cmp(const uint8_t a[STORE_ID_LEN], const uint8_t b[STORE_ID_LEN])
{
	return memcmp(a, b, STORE_ID_LEN);
}

/* Index of id in tok->stored, or where it would go (*found false). */
static size_t stored_index_locked(tp_token *tok, const uint8_t id[STORE_ID_LEN], bool *found)
{
	size_t lo = 0, hi = tok->n_stored;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sid_cmp(tok->stored[mid]->sid, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < tok->n_stored && sid_cmp(tok->stored[lo]->sid, id) == 0;
	return lo;
}

static void unload(tp_object *o)
{
	object_clear_attrs(o);
	o->is_loaded = false;
}

/* Fills o from the store's attributes. */
static CK_RV load(tp_object *o, bool is_private, const CK_ATTRIBUTE *attrs, size_t n,
		  uint64_t stamp)
{
	CK_RV rv = object_set_attrs(o, attrs, n);
	const CK_ATTRIBUTE *c;

	o->is_loaded = rv == CKR_OK;
	o->is_private = is_private;
	o->stamp = rv == CKR_OK ? stamp : 0;
	c = object_get(o, CKA_CLASS);
	if (c && c->ulValueLen == sizeof(CK_ULONG))
		o->klass = *(const CK_ULONG *)c->pValue;
	return rv;
}

static tp_object *stored_new(tp_token *tok, const uint8_t id[STORE_ID_LEN])
{
	tp_object *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->token = tok;
	o->is_stored = true;
	memcpy(o->sid, id, STORE_ID_LEN);
	return o;
}

static CK_RV show_locked(tp_lib *lib, tp_token *tok, const uint8_t id[STORE_ID_LEN],
			 bool is_private, const CK_ATTRIBUTE *attrs, size_t n,
			 uint64_t stamp, CK_OBJECT_HANDLE *handle)
{
	CK_RV rv;
	bool found;
	size_t i = stored_index_locked(tok, id, &found);
	tp_object *o;

	if (found) {
		o = tok->stored[i];
		rv = load(o, is_private, attrs, n, stamp);
		*handle = o->handle;
		return rv;
	}
	if (!lib_grow(&tok->stored, tok->n_stored, &tok->cap_stored, sizeof(*tok->stored)))
		return CKR_HOST_MEMORY;
	o = stored_new(tok, id);
	if (!o)
		return CKR_HOST_MEMORY;
	rv = load(o, is_private, attrs, n, stamp);
	if (rv == CKR_OK)
		rv = object_add_locked(lib, o);
	if (rv != CKR_OK) {
		object_free(o);
		return rv;
	}
	memmove(&tok->stored[i + 1], &tok->stored[i], (tok->n_stored - i) * sizeof(*tok->stored));
	tok->stored[i] = o;
	tok->n_stored++;
	*handle = o->handle;
	return CKR_OK;
}

static tp_object *unshow_locked(tp_lib *lib, tp_token *tok, const uint8_t id[STORE_ID_LEN])
{
	bool found;
	size_t i = stored_index_locked(tok, id, &found);
	tp_object *o;

	if (!found)
		return NULL;
	o = tok->stored[i];
	memmove(&tok->stored[i], &tok->stored[i + 1], (tok->n_stored - i - 1) * sizeof(*tok->stored));
	tok->n_stored--;
	o->is_doomed = true;
	object_unlink_doomed_locked(lib);
	return o;
}

CK_RV tstore_show(tp_lib *lib, tp_token *tok, const uint8_t id[STORE_ID_LEN],
		  bool is_private, const CK_ATTRIBUTE *attrs, size_t n,
		  uint64_t stamp, CK_OBJECT_HANDLE *handle)
{
	CK_RV rv;

	/* After any sync that listed the store before this write merged. */
	pthread_mutex_lock(&tok->view_mu);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	rv = show_locked(lib, tok, id, is_private, attrs, n, stamp, handle);
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	pthread_mutex_unlock(&tok->view_mu);
	return rv;
}

void tstore_unshow(tp_lib *lib, tp_token *tok, const uint8_t id[STORE_ID_LEN])
{
	tp_object *gone;

	pthread_mutex_lock(&tok->view_mu);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	gone = unshow_locked(lib, tok, id);
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	pthread_mutex_unlock(&tok->view_mu);
	object_free(gone);
}

/* Merges the store's sorted list into tok->stored (sorted too): objects
 * gone from the list are unlinked into *gone, new ones get handles,
 * changed or unloaded ones are (re)loaded.  One pass over both. */
static CK_RV merge_locked(tp_lib *lib, tp_token *tok, store_object **objs, size_t n,
			  tp_object ***gone, size_t *n_gone)
{
	CK_RV rv = CKR_OK;
	tp_object **next = malloc((n ? n : 1) * sizeof(*next));
	size_t i = 0, j = 0, k = 0, g = 0;

	*gone = calloc(tok->n_stored ? tok->n_stored : 1, sizeof(**gone));
	*n_gone = 0;
	if (!next || !*gone) {
		free(next);
		free(*gone);
		*gone = NULL;
		return CKR_HOST_MEMORY;
	}
	while (i < tok->n_stored || j < n) {
		int c = i >= tok->n_stored ? 1 : j >= n ? -1 : sid_cmp(tok->stored[i]->sid, objs[j]->id);
		tp_object *o;

		if (c < 0) {
			o = tok->stored[i++];
			o->is_doomed = true;
			(*gone)[g++] = o;
			continue;
		}
		if (c == 0) {
			o = tok->stored[i++];
			if (!o->is_loaded || o->stamp != objs[j]->stamp) {
				CK_RV lrv = load(o, objs[j]->is_private, objs[j]->attrs,
						 objs[j]->n_attrs, objs[j]->stamp);

				if (lrv != CKR_OK)
					rv = lrv;
			}
			next[k++] = o;
			j++;
			continue;
		}
		o = stored_new(tok, objs[j]->id);
		if (o && load(o, objs[j]->is_private, objs[j]->attrs, objs[j]->n_attrs,
			      objs[j]->stamp) == CKR_OK && object_add_locked(lib, o) == CKR_OK) {
			next[k++] = o;
		} else {
			object_free(o);
			rv = CKR_HOST_MEMORY;
		}
		j++;
	}
	if (g)
		object_unlink_doomed_locked(lib);
	free(tok->stored);
	tok->stored = next;
	tok->n_stored = k;
	tok->cap_stored = n ? n : 1;
	*n_gone = g;
	return rv;
}

/* Under view_mu: merges objs (with_list) and, if that worked, runs then
 * under the same lib_lock. */
static CK_RV merge_then(tp_lib *lib, tp_token *tok, bool with_list, store_object **objs,
			size_t n, tstore_then_fn then, void *arg)
{
	CK_RV rv = CKR_OK;
	tp_object **gone = NULL;
	size_t n_gone = 0;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	if (with_list)
		rv = merge_locked(lib, tok, objs, n, &gone, &n_gone);
	if (rv == CKR_OK && then)
		then(lib, arg);
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	object_free_all(gone, n_gone);
	return rv;
}

CK_RV tstore_sync_then(tp_lib *lib, tp_token *tok, tp_err *dev_err, tstore_then_fn then,
		       void *arg)
{
	CK_RV rv;
	store_status s = STORE_OK;
	store_object **objs = NULL;
	size_t n = 0;
	bool held = false;

	*dev_err = TP_OK;
	if (!tok->st)
		return merge_then(lib, tok, false, NULL, 0, then, arg);
	rv = tstore_state(tok);
	if (rv != CKR_OK) {
		/* Uninitialized: no objects.  Damaged or newer: none shown. */
		bool none = rv == CKR_USER_PIN_NOT_INITIALIZED;
		CK_RV mrv;

		pthread_mutex_lock(&tok->view_mu);
		mrv = merge_then(lib, tok, true, NULL, 0, none ? then : NULL, arg);
		pthread_mutex_unlock(&tok->view_mu);
		return none ? mrv : rv;
	}
	for (int tries = 0; tries < 2; tries++) {
		/* The network, if R must be recovered: view_mu not held. */
		rv = tstore_root(tok, dev_err);
		if (rv != CKR_OK)
			return rv;
		/* From the list to its merge, no write is shown and no wipe
		 * happens (view_mu): the list is never older than the table
		 * it is merged into. */
		pthread_mutex_lock(&tok->view_mu);
		held = true;
		s = store_objects_list(tok->st, &objs, &n);
		/* The lease ended in another thread meanwhile: once more. */
		if (s != STORE_NO_KEY)
			break;
		pthread_mutex_unlock(&tok->view_mu);
		held = false;
	}
	rv = tstore_rv(s);
	if (rv == CKR_OK)
		rv = merge_then(lib, tok, true, objs, n, then, arg);
	if (held)
		pthread_mutex_unlock(&tok->view_mu);
	store_objects_release(objs, n);
	return rv;
}

CK_RV tstore_sync(tp_lib *lib, tp_token *tok, tp_err *dev_err)
{
	return tstore_sync_then(lib, tok, dev_err, NULL, NULL);
}

/* ---- lease ------------------------------------------------------------ */

unsigned long tstore_wipes(tp_lib *lib)
{
	return __atomic_load_n(&lib->wipes, __ATOMIC_ACQUIRE);
}

static void unload_all(tp_lib *lib, tp_token *tok, bool drop_private)
{
	tp_object **gone = NULL;
	size_t n_gone = 0, keep = 0;

	__atomic_add_fetch(&lib->wipes, 1, __ATOMIC_ACQ_REL);
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	if (drop_private)
		gone = calloc(tok->n_stored ? tok->n_stored : 1, sizeof(*gone));
	for (size_t i = 0; i < tok->n_stored; i++) {
		tp_object *o = tok->stored[i];

		if (drop_private && gone && o->is_private) {
			o->is_doomed = true;
			gone[n_gone++] = o;
			continue;
		}
		unload(o);
		tok->stored[keep++] = o;
	}
	tok->n_stored = keep;
	if (n_gone)
		object_unlink_doomed_locked(lib);
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	object_free_all(gone, n_gone);
}

void tstore_call_end(tp_lib *lib)
{
	__atomic_sub_fetch(&lib->calls, 1, __ATOMIC_ACQ_REL);
}

void tstore_tick(tp_lib *lib)
{
	double t = 0;
	bool alone = __atomic_add_fetch(&lib->calls, 1, __ATOMIC_ACQ_REL) == 1;

	for (size_t i = 0; i < lib->n_tokens; i++) {
		tp_token *tok = &lib->tokens[i];
		bool expired = false;

		if (!tok->st)
			continue;
		if (t == 0)
			t = now_s();
		pthread_mutex_lock(&tok->lease_mu);
		if (tok->has_lease && t >= tok->lease_end &&
		    (alone || t >= tok->lease_end + TP_LEASE_GRACE)) {
			tok->has_lease = false;
			expired = true;
		}
		pthread_mutex_unlock(&tok->lease_mu);
		if (!expired)
			continue;
		/* Not between a sync's list and its merge. */
		pthread_mutex_lock(&tok->view_mu);
		store_forget(tok->st);
		unload_all(lib, tok, false);
		pthread_mutex_unlock(&tok->view_mu);
		log_debug("token \"%s\": lease ended; root secret and objects wiped",
			  tok->cfg->label);
	}
}

void tstore_drop(tp_lib *lib, tp_token *tok, bool drop_private)
{
	if (!tok->st)
		return;
	pthread_mutex_lock(&tok->lease_mu);
	tok->has_lease = false;
	pthread_mutex_unlock(&tok->lease_mu);
	pthread_mutex_lock(&tok->view_mu);
	store_forget(tok->st);
	unload_all(lib, tok, drop_private);
	pthread_mutex_unlock(&tok->view_mu);
}

CK_RV tstore_prepare(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h1,
		     CK_OBJECT_HANDLE h2)
{
	CK_RV rv;
	tp_session *s;
	tp_token *tok = NULL;
	tp_err err = TP_OK;
	const CK_OBJECT_HANDLE hs_list[2] = { h1, h2 };

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	for (size_t i = 0; s && i < 2; i++) {
		const tp_object *o = hs_list[i] ? object_lookup_locked(lib, s->token, hs_list[i]) : NULL;

		if (o && o->is_stored && !o->is_loaded)
			tok = s->token;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (!tok)
		return CKR_OK;
	rv = tstore_sync(lib, tok, &err);
	if (rv != CKR_OK && err != TP_OK) {
		lib_lock();
		s = session_lookup_locked(lib, hs);
		if (s)
			s->device_error = err;
		lib_unlock();
	}
	return rv;
}
