/* Virtual slots and tokens: one per configured token, slot ID = index + 1.
 * Nothing here touches the network except token_load_keys. */
#ifndef TP_CORE_TOKEN_H
#define TP_CORE_TOKEN_H

#include <pthread.h>
#include <stdbool.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "store/store.h"
#include "tang/server.h"
#include "util/config.h"

struct tp_token {
	CK_SLOT_ID slot_id;
	const tp_token_config *cfg;
	tp_tang_server *srv;         /* NULL for bindings we cannot use yet (sss) */
	char serial[17];             /* 16 hex digits of SHA-256(label) */

	/* The sealed store (core/tstore.h); NULL without "store". */
	store *st;
	/* This application's login on the token: TP_NOBODY, CKU_USER or
	 * CKU_SO.  Under lib_lock. */
	CK_USER_TYPE login;
	bool said_pin_ignored;       /* "pin": false and a PIN given: logged once */
	/* Token objects of the store shown as tp_objects, sorted by store
	 * id (core/tstore.c keeps them in step with the store).  Under
	 * lib_lock. */
	tp_object **stored;
	size_t n_stored, cap_stored;
	/* The lease of the root secret: under lease_mu (never held with
	 * lib_lock or across I/O). */
	pthread_mutex_t lease_mu;
	bool has_lease_mu;
	/* Serialises C_Login on this token (core/auth.c): two logins at
	 * once, of one user or of the user and the SO, must not both unlock
	 * the store.  Held across the recovery and scrypt (it only makes
	 * other logins wait), taken before lib_lock and lease_mu, never
	 * inside them. */
	pthread_mutex_t login_mu;
	bool has_login_mu;
	/* Orders the changes of `stored` (core/tstore.c): a sync holds it
	 * from listing the store to merging the list, a create, copy, set
	 * or destroy while it shows what it wrote, a wipe while it forgets
	 * R and unloads.  So a list taken before a write is never merged
	 * after the write was shown (it would drop or resurrect the object,
	 * or bring back old attributes), and no list taken with R is merged
	 * after the wipe.  Held across the store's file reads, never across
	 * the network; taken after login_mu, before lib_lock and the store's
	 * own mutex, never inside them. */
	pthread_mutex_t view_mu;
	bool has_view_mu;
	bool has_lease;
	double lease_end;            /* monotonic seconds */
	/* The store with this id failed to authenticate under the root
	 * secret Tang gave (or its JWE is not for this binding): damaged,
	 * refused until another store replaces it.  Under lease_mu. */
	bool is_bad;
	uint8_t bad_id[STORE_ID_LEN];
};

#define TP_NOBODY ((CK_USER_TYPE)~0UL)
#define TP_MIN_PIN 4                 /* bytes, for tokens with a store */

/* Fill tok from cfg (no network).  Fails only on allocation/setup errors. */
CK_RV token_init(tp_token *tok, CK_SLOT_ID id, const tp_token_config *cfg);
void token_clear(tp_token *tok);

/* NULL for an invalid slot ID.  Tokens are immutable after C_Initialize. */
tp_token *token_get(tp_lib *lib, CK_SLOT_ID id);

CK_RV token_slot_list(tp_lib *lib, CK_SLOT_ID *list, CK_ULONG *count);
CK_RV token_slot_info(tp_lib *lib, CK_SLOT_ID id, CK_SLOT_INFO *info);
CK_RV token_info(tp_lib *lib, CK_SLOT_ID id, CK_TOKEN_INFO *info);
CK_RV token_mechanism_list(tp_lib *lib, CK_SLOT_ID id, CK_MECHANISM_TYPE *list, CK_ULONG *count);
CK_RV token_mechanism_info(tp_lib *lib, CK_SLOT_ID id, CK_MECHANISM_TYPE type,
			   CK_MECHANISM_INFO *info);

/* Make sure the token shows an object pair for every exchange key of its
 * server's advertisement (fetched on first need; network, so call it with
 * no lock held).  Objects already shown keep their handles.  A failure
 * leaves the objects as they are: the tang layer has logged why.  Returns
 * the failure (TP_OK when the keys are shown, or the token has no Tang
 * binding) for the session's ulDeviceError. */
tp_err token_load_keys(tp_lib *lib, tp_token *tok);

#endif
