#include "core/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/object.h"
#include "core/session.h"
#include "core/tstore.h"
#include "mech/registry.h"
#include "util/ec.h"
#include "util/log.h"

CK_RV token_init(tp_token *tok, CK_SLOT_ID id, const tp_token_config *cfg)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD *sha256 = NULL;

	memset(tok, 0, sizeof(*tok));
	tok->slot_id = id;
	tok->cfg = cfg;
	tok->login = TP_NOBODY;

	/* The serial is stable across processes and restarts: it names the
	 * token by its label, the token's identity (DESIGN.md §2). */
	sha256 = EVP_MD_fetch(ossl_ctx(), "SHA256", NULL);
	if (!sha256 || !EVP_Digest(cfg->label, strlen(cfg->label), md, &md_len, sha256, NULL))
		goto out;
	for (size_t i = 0; i < 8; i++)
		snprintf(tok->serial + 2 * i, 3, "%02X", md[i]);

	if (cfg->binding == TP_BINDING_TANG) {
		/* No network here: the server object only remembers where and
		 * how to fetch the advertisement on first need. */
		tok->srv = tang_server_new(cfg->url, cfg->thp, cfg->adv, cfg->timeout);
		if (!tok->srv) {
			log_error("token \"%s\": cannot set up Tang server %s", cfg->label, cfg->url);
			rv = CKR_FUNCTION_FAILED;
			goto out;
		}
	}
	/* The store's metadata is read (no network, no unsealing). */
	rv = tstore_open(tok);
out:
	EVP_MD_free(sha256);
	return rv;
}

void token_clear(tp_token *tok)
{
	tstore_close(tok);
	tang_server_free(tok->srv);
	tok->srv = NULL;
}

tp_token *token_get(tp_lib *lib, CK_SLOT_ID id)
{
	if (id < 1 || id > lib->n_tokens)
		return NULL;
	return &lib->tokens[id - 1];
}

CK_RV token_slot_list(tp_lib *lib, CK_SLOT_ID *list, CK_ULONG *count)
{
	CK_RV rv = CKR_OK;

	if (!count)
		return CKR_ARGUMENTS_BAD;
	/* Every slot always has its token: tokenPresent changes nothing. */
	if (list) {
		if (*count < lib->n_tokens)
			rv = CKR_BUFFER_TOO_SMALL;
		else
			for (size_t i = 0; i < lib->n_tokens; i++)
				list[i] = lib->tokens[i].slot_id;
	}
	*count = lib->n_tokens;
	return rv;
}

CK_RV token_slot_info(tp_lib *lib, CK_SLOT_ID id, CK_SLOT_INFO *info)
{
	tp_token *tok = token_get(lib, id);
	char desc[80];

	if (!info)
		return CKR_ARGUMENTS_BAD;
	if (!tok)
		return CKR_SLOT_ID_INVALID;
	memset(info, 0, sizeof(*info));
	snprintf(desc, sizeof(desc), "Tang %s", tok->cfg->url ? tok->cfg->url : tok->cfg->label);
	lib_pad(info->slotDescription, sizeof(info->slotDescription), desc);
	lib_pad(info->manufacturerID, sizeof(info->manufacturerID), "tang-pkcs11");
	info->flags = CKF_TOKEN_PRESENT;
	info->hardwareVersion.major = 0;
	info->hardwareVersion.minor = 1;
	info->firmwareVersion.major = 0;
	info->firmwareVersion.minor = 1;
	return CKR_OK;
}

/* PIN counter flags (PKCS#11 2.40 §5.5): COUNT_LOW after a wrong PIN,
 * FINAL_TRY when one more locks it, LOCKED at the limit. */
static CK_FLAGS count_flags(uint32_t fails, CK_FLAGS low, CK_FLAGS final, CK_FLAGS locked)
{
	if (fails >= STORE_PIN_MAX_TRIES)
		return locked;
	if (fails == STORE_PIN_MAX_TRIES - 1)
		return low | final;
	return fails ? low : 0;
}

/* The flags of a token with a store (DESIGN.md §5), from the metadata as
 * it is on disk: local file reads only, never the network. */
static void store_flags(tp_token *tok, CK_TOKEN_INFO *info)
{
	store_info si;
	store_status s = store_get_info(tok->st, &si);
	bool pin_model = s == STORE_OK ? si.pin_model : tok->cfg->pin;

	/* Found damaged under its root secret (core/tstore.c). */
	if (s == STORE_OK && tstore_state(tok) == CKR_TOKEN_NOT_RECOGNIZED)
		s = STORE_DAMAGED;

	info->flags = CKF_RNG | CKF_LOGIN_REQUIRED;
	if (!pin_model)
		info->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
	if (si.is_read_only)
		info->flags |= CKF_WRITE_PROTECTED;
	switch (s) {
	case STORE_OK:
		info->flags |= CKF_TOKEN_INITIALIZED;
		if (si.user_pin_set || !pin_model)
			info->flags |= CKF_USER_PIN_INITIALIZED;
		if (pin_model)
			info->flags |= count_flags(si.user_fails, CKF_USER_PIN_COUNT_LOW,
						   CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
		info->flags |= count_flags(si.so_fails, CKF_SO_PIN_COUNT_LOW,
					   CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
		break;
	case STORE_DAMAGED:
	case STORE_NEWER_FORMAT:
		/* Not ours to touch: initialized (C_InitToken must not wipe it
		 * by accident) and write-protected; C_OpenSession refuses it. */
		info->flags |= CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED;
		break;
	default:
		/* Uninitialized (or unreadable): C_InitToken creates it. */
		break;
	}
}

CK_RV token_info(tp_lib *lib, CK_SLOT_ID id, CK_TOKEN_INFO *info)
{
	tp_token *tok = token_get(lib, id);
	CK_ULONG all = 0, rw = 0;

	if (!info)
		return CKR_ARGUMENTS_BAD;
	if (!tok)
		return CKR_SLOT_ID_INVALID;
	lib_lock();
	session_count_locked(lib, tok, &all, &rw);
	lib_unlock();

	/* Never fails for a configured token, never touches the network
	 * (Barbican gives up on any error; systemd calls it at boot). */
	memset(info, 0, sizeof(*info));
	lib_pad(info->label, sizeof(info->label), tok->cfg->label);
	lib_pad(info->manufacturerID, sizeof(info->manufacturerID), "tang-pkcs11");
	lib_pad(info->model, sizeof(info->model), "Tang");
	lib_pad(info->serialNumber, sizeof(info->serialNumber), tok->serial);
	/* A token without a store is ready as it is: no login, no PIN. */
	info->flags = CKF_TOKEN_INITIALIZED | CKF_RNG;
	if (tok->st)
		store_flags(tok, info);
	info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulSessionCount = all;
	info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulRwSessionCount = rw;
	if (tok->st) {
		info->ulMaxPinLen = STORE_MAX_PIN;
		info->ulMinPinLen = TP_MIN_PIN;
	}
	info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->hardwareVersion.major = 0;
	info->hardwareVersion.minor = 1;
	info->firmwareVersion.major = 0;
	info->firmwareVersion.minor = 1;
	/* No CKF_CLOCK_ON_TOKEN: utcTime is not meaningful. */
	memset(info->utcTime, ' ', sizeof(info->utcTime));
	return CKR_OK;
}

CK_RV token_mechanism_list(tp_lib *lib, CK_SLOT_ID id, CK_MECHANISM_TYPE *list, CK_ULONG *count)
{
	CK_RV rv = CKR_OK;
	size_t n = mech_count();

	if (!count)
		return CKR_ARGUMENTS_BAD;
	if (!token_get(lib, id))
		return CKR_SLOT_ID_INVALID;
	if (list) {
		if (*count < n)
			rv = CKR_BUFFER_TOO_SMALL;
		else
			for (size_t i = 0; i < n; i++)
				list[i] = mech_at(i)->type;
	}
	*count = n;
	return rv;
}

CK_RV token_mechanism_info(tp_lib *lib, CK_SLOT_ID id, CK_MECHANISM_TYPE type,
			   CK_MECHANISM_INFO *info)
{
	const tp_mech *m;

	if (!info)
		return CKR_ARGUMENTS_BAD;
	if (!token_get(lib, id))
		return CKR_SLOT_ID_INVALID;
	m = mech_find(type);
	if (!m)
		return CKR_MECHANISM_INVALID;
	info->ulMinKeySize = m->min_key_size;
	info->ulMaxKeySize = m->max_key_size;
	info->flags = m->flags;
	return CKR_OK;
}

static bool shown_locked(tp_lib *lib, const tp_token *tok, const char *kid)
{
	for (size_t i = 0; i < lib->n_objects; i++) {
		const tp_object *o = lib->objects[i];

		if (o->is_tang && o->token == tok && strcmp(o->key.kid, kid) == 0)
			return true;
	}
	return false;
}

tp_err token_load_keys(tp_lib *lib, tp_token *tok)
{
	tp_exchange_key *keys = NULL;
	size_t n_keys = 0;
	tp_object **pairs = NULL;
	tp_err err;

	if (!tok->srv)
		return TP_OK;
	/* Network (first time only; cached by the tang layer): no lock. */
	err = tang_server_keys(tok->srv, 0, &keys, &n_keys);
	if (err != TP_OK) {
		log_debug("token \"%s\": no Tang keys to show (%s)", tok->cfg->label,
			  tp_err_str(err));
		goto out;
	}
	/* Build outside the lock (DER encodings allocate), insert under it. */
	pairs = calloc(2 * n_keys + 1, sizeof(*pairs));
	if (!pairs) {
		err = TP_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_keys; i++)
		if (object_tang_pair(tok, &keys[i], &pairs[2 * i], &pairs[2 * i + 1]) != CKR_OK)
			log_error("token \"%s\": cannot make objects for kid %s",
				  tok->cfg->label, keys[i].kid);

	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	for (size_t i = 0; i < n_keys; i++) {
		if (!pairs[2 * i] || !pairs[2 * i + 1] || shown_locked(lib, tok, keys[i].kid))
			continue;
		/* Public before private: handles stay in pair order. */
		if (object_add_locked(lib, pairs[2 * i]) != CKR_OK)
			continue;
		pairs[2 * i] = NULL;
		if (object_add_locked(lib, pairs[2 * i + 1]) == CKR_OK)
			pairs[2 * i + 1] = NULL;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
out:
	if (pairs)
		object_free_all(pairs, 2 * n_keys);
	free(keys);
	return err;
}
