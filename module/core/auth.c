#include "core/auth.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/session.h"
#include "core/token.h"
#include "core/tstore.h"
#include "mech/errmap.h"
#include "mech/jwe.h"
#include "util/ec.h"
#include "util/log.h"

/* The login model of the token: the store's (fixed when it was created),
 * else the configuration's. */
static bool pin_model(tp_token *tok)
{
	store_info si;

	if (store_get_info(tok->st, &si) == STORE_OK)
		return si.pin_model;
	return tok->cfg->pin;
}

static void set_device_error(tp_lib *lib, CK_SESSION_HANDLE hs, tp_err err)
{
	tp_session *s;

	if (err == TP_OK)
		return;
	lib_lock();
	s = session_lookup_locked(lib, hs);
	if (s)
		s->device_error = err;
	lib_unlock();
}

/* A printable copy of a blank-padded label for the log (no control
 * characters from the caller reach the log). */
static void label_for_log(const CK_UTF8CHAR *label, char out[33])
{
	size_t n = 32;

	while (n > 0 && label[n - 1] == ' ')
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = label[i] < 0x20 || label[i] == 0x7f ? '?' : (char)label[i];
	out[n] = '\0';
}

/* The session's token, after the checks every PIN function shares. */
static CK_RV session_token(tp_lib *lib, CK_SESSION_HANDLE hs, bool need_rw,
			   tp_token **tok, CK_USER_TYPE *login)
{
	CK_RV rv = CKR_OK;
	tp_session *s;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (need_rw && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
	} else {
		*tok = s->token;
		*login = s->token->login;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

static CK_RV check_new_pin(const CK_UTF8CHAR *pin, CK_ULONG len)
{
	if (!pin) {
		log_error("a new PIN is needed (NULL given)");
		return CKR_ARGUMENTS_BAD;
	}
	if (len < TP_MIN_PIN || len > STORE_MAX_PIN) {
		log_error("a new PIN of %lu bytes refused: %d to %d bytes", (unsigned long)len,
			  TP_MIN_PIN, STORE_MAX_PIN);
		return CKR_PIN_LEN_RANGE;
	}
	return CKR_OK;
}

/* R for a PIN operation: recovered through Tang if needed.  A PIN is never
 * checked (nor counted) while Tang is unreachable. */
static CK_RV need_root(tp_lib *lib, CK_SESSION_HANDLE hs, tp_token *tok)
{
	tp_err err = TP_OK;
	CK_RV rv = tstore_state(tok);

	if (rv == CKR_USER_PIN_NOT_INITIALIZED) {
		log_error("token \"%s\": not initialized yet (C_InitToken, e.g. pkcs11-tool --init-token)",
			  tok->cfg->label);
		return rv;
	}
	if (rv == CKR_OK)
		rv = tstore_root(tok, &err);
	if (hs)
		set_device_error(lib, hs, err);
	return rv;
}

/* ---- C_InitToken ------------------------------------------------------ */

/* Seals a fresh R under the token's binding and creates the store. */
static CK_RV create_store(tp_token *tok, const CK_UTF8CHAR *pin, CK_ULONG len)
{
	CK_RV rv;
	tp_exchange_key *keys = NULL;
	size_t n_keys = 0;
	uint8_t root[STORE_ROOT_LEN];
	char *jwe = NULL;
	size_t jwe_len = 0;
	tp_err err;
	store_create_args args;

	/* The advertisement (network, no lock); its first exchange key is
	 * the one clevis would pick. */
	err = tang_server_keys(tok->srv, 0, &keys, &n_keys);
	if (err == TP_OK && n_keys == 0)
		err = TP_ERR_BAD_REPLY;
	if (err != TP_OK) {
		log_error("token \"%s\": C_InitToken needs the Tang server %s to seal the store (%s)",
			  tok->cfg->label, tang_server_url(tok->srv), tp_err_str(err));
		rv = errmap_rv(err, CKR_DEVICE_ERROR);
		goto out;
	}
	if (RAND_priv_bytes_ex(ossl_ctx(), root, sizeof(root), 0) != 1) {
		rv = CKR_FUNCTION_FAILED;
		goto out;
	}
	rv = mech_jwe_encrypt(tok->srv, &keys[0], root, sizeof(root), &jwe, &jwe_len, &err);
	if (rv != CKR_OK)
		goto out;
	memset(&args, 0, sizeof(args));
	args.sealed_root = jwe;
	args.root = root;
	args.so_pin = pin;
	args.so_pin_len = len;
	args.pin_model = tok->cfg->pin;
	rv = tstore_rv(store_create(tok->st, &args));
	if (rv == CKR_OK) {
		tstore_lease_start(tok);
		log_info("token \"%s\": store %s initialized (\"pin\": %s), root secret sealed to %s kid %s",
			 tok->cfg->label, tok->cfg->store, tok->cfg->pin ? "true" : "false",
			 tang_server_url(tok->srv), keys[0].kid);
	}
out:
	OPENSSL_cleanse(root, sizeof(root));
	free(jwe);
	free(keys);
	return rv;
}

CK_RV auth_init_token(tp_lib *lib, CK_SLOT_ID slot, const CK_UTF8CHAR *pin, CK_ULONG len,
		      const CK_UTF8CHAR *label)
{
	CK_RV rv;
	tp_token *tok = token_get(lib, slot);
	CK_UTF8CHAR want[32];
	CK_ULONG all = 0, rw = 0;
	tp_err err = TP_OK;
	char shown[33];

	if (!tok)
		return CKR_SLOT_ID_INVALID;
	if (!label || (!pin && len))
		return CKR_ARGUMENTS_BAD;
	if (!tok->st) {
		log_error("C_InitToken: token \"%s\" has no \"store\" in the configuration: nothing to initialize",
			  tok->cfg->label);
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	lib_pad(want, sizeof(want), tok->cfg->label);
	if (memcmp(want, label, sizeof(want)) != 0) {
		label_for_log(label, shown);
		log_error("C_InitToken: label \"%s\" refused: the label comes from the configuration; this token is \"%s\"",
			  shown, tok->cfg->label);
		return CKR_ARGUMENTS_BAD;
	}
	if (tok->cfg->pin) {
		rv = check_new_pin(pin, len);
	} else {
		/* "pin": false: the SO PIN may be empty (the protected path). */
		rv = len > STORE_MAX_PIN ? CKR_PIN_LEN_RANGE : CKR_OK;
	}
	if (rv != CKR_OK)
		return rv;
	lib_lock();
	session_count_locked(lib, tok, &all, &rw);
	lib_unlock();
	if (all) {
		log_error("C_InitToken: token \"%s\" has open sessions", tok->cfg->label);
		return CKR_SESSION_EXISTS;
	}

	rv = tstore_state(tok);
	if (rv == CKR_TOKEN_NOT_RECOGNIZED) {
		log_error("C_InitToken: store %s of token \"%s\" is damaged or of a newer format: not modified (move it away to start anew)",
			  tok->cfg->store, tok->cfg->label);
		return rv;
	}
	if (store_is_read_only(tok->st)) {
		log_error("C_InitToken: store %s of token \"%s\" is read-only",
			  tok->cfg->store, tok->cfg->label);
		return CKR_TOKEN_WRITE_PROTECTED;
	}
	if (rv == CKR_OK) {
		/* Re-initializing wipes every object: the SO PIN of the
		 * existing store must be right (with Tang). */
		rv = tstore_root(tok, &err);
		if (rv == CKR_OK)
			rv = tstore_rv(store_login(tok->st, STORE_SO, pin, len));
		store_logout(tok->st);
		if (rv != CKR_OK)
			return rv;
	} else if (rv != CKR_USER_PIN_NOT_INITIALIZED) {
		return rv;
	}
	rv = create_store(tok, pin, len);
	if (rv != CKR_OK)
		return rv;
	lib_lock();
	tok->login = TP_NOBODY;
	lib_unlock();
	/* The old store's objects disappear from this process too. */
	tstore_sync(lib, tok, &err);
	return CKR_OK;
}

/* ---- PINs ------------------------------------------------------------- */

CK_RV auth_init_pin(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_UTF8CHAR *pin, CK_ULONG len)
{
	CK_RV rv;
	tp_token *tok = NULL;
	CK_USER_TYPE login = TP_NOBODY;

	rv = session_token(lib, hs, true, &tok, &login);
	if (rv != CKR_OK)
		return rv;
	if (login != CKU_SO)
		return CKR_USER_NOT_LOGGED_IN;
	if (!tok->st)
		return CKR_FUNCTION_NOT_SUPPORTED;
	if (!pin_model(tok)) {
		log_error("C_InitPIN: token \"%s\" has \"pin\": false: Tang alone unlocks it, there is no user PIN",
			  tok->cfg->label);
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	rv = check_new_pin(pin, len);
	if (rv == CKR_OK)
		rv = need_root(lib, hs, tok);
	if (rv == CKR_OK)
		rv = tstore_rv(store_init_user_pin(tok->st, pin, len));
	if (rv == CKR_OK)
		log_info("token \"%s\": user PIN set by the SO", tok->cfg->label);
	return rv;
}

CK_RV auth_set_pin(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_UTF8CHAR *old_pin,
		   CK_ULONG old_len, const CK_UTF8CHAR *new_pin, CK_ULONG new_len)
{
	CK_RV rv;
	tp_token *tok = NULL;
	CK_USER_TYPE login = TP_NOBODY;
	store_user who;

	rv = session_token(lib, hs, true, &tok, &login);
	if (rv != CKR_OK)
		return rv;
	if (!tok->st)
		return CKR_FUNCTION_NOT_SUPPORTED;
	if (!old_pin && old_len)
		return CKR_ARGUMENTS_BAD;
	if (old_len > STORE_MAX_PIN)
		return CKR_PIN_INCORRECT;
	who = login == CKU_SO ? STORE_SO : STORE_USER;
	if (who == STORE_USER && !pin_model(tok)) {
		log_error("C_SetPIN: token \"%s\" has \"pin\": false: there is no user PIN to change",
			  tok->cfg->label);
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	rv = check_new_pin(new_pin, new_len);
	if (rv == CKR_OK)
		rv = need_root(lib, hs, tok);
	if (rv == CKR_OK)
		rv = tstore_rv(store_change_pin(tok->st, who, old_pin, old_len, new_pin, new_len));
	if (rv == CKR_OK)
		log_info("token \"%s\": %s PIN changed", tok->cfg->label,
			 who == STORE_SO ? "SO" : "user");
	return rv;
}

/* ---- login ------------------------------------------------------------ */

static CK_RV login_serialised(tp_lib *lib, CK_SESSION_HANDLE hs, CK_USER_TYPE user,
			       const CK_UTF8CHAR *pin, CK_ULONG len)
{
	CK_RV rv = CKR_OK;
	tp_session *s;
	tp_token *tok = NULL;
	CK_ULONG all = 0, rw = 0;
	store_status st;
	bool ignore_pin = false, say = false, pm;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (user == CKU_CONTEXT_SPECIFIC) {
		/* No key of ours has CKA_ALWAYS_AUTHENTICATE. */
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else if (user != CKU_USER && user != CKU_SO) {
		rv = CKR_USER_TYPE_INVALID;
	} else if (s->token->login == user) {
		rv = CKR_USER_ALREADY_LOGGED_IN;
	} else if (s->token->login != TP_NOBODY) {
		rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
	} else {
		tok = s->token;
		session_count_locked(lib, tok, &all, &rw);
		if (user == CKU_SO && all != rw)
			rv = CKR_SESSION_READ_ONLY_EXISTS;
		else if (!tok->st)
			/* No store: nothing to unlock, every PIN is fine
			 * (Barbican logs in to any token it uses). */
			tok->login = user;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK || !tok->st)
		return rv;
	if (!pin && len)
		return CKR_ARGUMENTS_BAD;
	pm = pin_model(tok);
	if (user == CKU_USER && !pm) {
		/* "pin": false: Tang alone, through the protected path. */
		ignore_pin = pin != NULL;
		pin = NULL;
		len = 0;
	} else if (pm && !pin) {
		/* No protected path in the PIN model. */
		log_error("token \"%s\": C_Login needs a PIN (\"pin\": true: no protected authentication path)",
			  tok->cfg->label);
		return CKR_ARGUMENTS_BAD;
	}
	if (ignore_pin) {
		lib_lock();
		say = !tok->said_pin_ignored;
		tok->said_pin_ignored = true;
		lib_unlock();
		if (say)
			log_info("token \"%s\": \"pin\": false: the PIN given to C_Login is ignored (Tang alone unlocks the token)",
				 tok->cfg->label);
	}
	if (len > STORE_MAX_PIN)
		return CKR_PIN_INCORRECT;
	for (int tries = 0; tries < 2; tries++) {
		rv = need_root(lib, hs, tok);
		if (rv != CKR_OK)
			return rv;
		/* scrypt and the counter's file write: no lock of ours. */
		st = store_login(tok->st, user == CKU_SO ? STORE_SO : STORE_USER, pin, len);
		if (st != STORE_NO_KEY)
			break;
	}
	rv = tstore_rv(st);
	if (rv == CKR_TOKEN_WRITE_PROTECTED)
		rv = CKR_PIN_INCORRECT;
	if (rv != CKR_OK) {
		if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED)
			log_warn("token \"%s\": C_Login as %s: %s", tok->cfg->label,
				 user == CKU_SO ? "SO" : "user",
				 rv == CKR_PIN_LOCKED ? "PIN locked" : "wrong PIN");
		return rv;
	}
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	if (tok->login == TP_NOBODY)
		tok->login = user;
	else if (tok->login == user)
		/* Another thread logged the same user in meanwhile (Barbican's
		 * threads all log in after a re-initialization): the same answer
		 * as the check before the unlock. */
		rv = CKR_USER_ALREADY_LOGGED_IN;
	else
		rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;  /* the other user won */
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	return rv;
}

CK_RV auth_login(tp_lib *lib, CK_SESSION_HANDLE hs, CK_USER_TYPE user,
		 const CK_UTF8CHAR *pin, CK_ULONG len)
{
	tp_token *tok = NULL;
	tp_session *s;
	CK_RV rv;

	lib_lock();
	s = session_lookup_locked(lib, hs);
	if (s)
		tok = s->token;
	lib_unlock();
	if (!tok)
		return CKR_SESSION_HANDLE_INVALID;
	/* One login at a time per token: a second one waits, then finds
	 * the first one's user logged in (CKR_USER_ALREADY_LOGGED_IN or
	 * CKR_USER_ANOTHER_ALREADY_LOGGED_IN) without touching the store. */
	pthread_mutex_lock(&tok->login_mu);
	rv = login_serialised(lib, hs, user, pin, len);
	pthread_mutex_unlock(&tok->login_mu);
	return rv;
}

static void logout_token(tp_lib *lib, tp_token *tok)
{
	if (!tok->st)
		return;
	store_logout(tok->st);
	/* Logout drops everything: R, the private-objects key, the
	 * decrypted objects (private ones lose their handles). */
	tstore_drop(lib, tok, true);
}

CK_RV auth_logout(tp_lib *lib, CK_SESSION_HANDLE hs)
{
	CK_RV rv = CKR_OK;
	tp_session *s;
	tp_token *tok = NULL;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	if (!s) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (s->token->login == TP_NOBODY) {
		rv = CKR_USER_NOT_LOGGED_IN;
	} else {
		tok = s->token;
		tok->login = TP_NOBODY;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (tok)
		logout_token(lib, tok);
	return rv;
}

void auth_session_gone(tp_lib *lib, tp_token *tok)
{
	CK_ULONG all = 0, rw = 0;
	bool was = false;

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	session_count_locked(lib, tok, &all, &rw);
	if (all == 0 && tok->login != TP_NOBODY) {
		tok->login = TP_NOBODY;
		was = true;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (was)
		logout_token(lib, tok);
}
