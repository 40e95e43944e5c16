/* The sealed persistent token store: one directory per token, a metadata
 * file, one AES-256-GCM sealed file per token object and a lock file
 * (docs/store.md: format, key hierarchy, durability, threat model).
 *
 * Who needs what:
 *   - R, the token's 32-byte root secret, comes from the caller (core/
 *     unseals the metadata's sealed-root string through tang/).  It is
 *     handed in with store_set_root and held until store_forget (the
 *     lease); store_create takes it directly.
 *   - Public objects need R.  Private objects need R and a login
 *     (store_login), which unwraps the private-objects key.
 *   - Writers take the lock file (flock, LOCK_EX) inside the call; callers
 *     never see it.  Reads never take it.
 *
 * Authorization (which session may write what, RO sessions, CKA_PRIVATE
 * rules) is core/'s job; the store only refuses what it cannot do (no key,
 * read-only, damaged).
 *
 * Thread safety: every function may be called from several threads on one
 * handle; a mutex inside the handle guards its caches and keys.  The mutex
 * is never held across fsync or scrypt.  A handle must not be used in the
 * child of a fork (open a new one there). */
#ifndef TP_STORE_STORE_H
#define TP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#define STORE_FORMAT_VERSION 1
#define STORE_ID_LEN 16          /* store id and object ids */
#define STORE_ROOT_LEN 32        /* R */
#define STORE_MAX_PIN 256        /* bytes */
/* Wrong PINs allowed before a PIN locks (user and SO counted apart).
 * COUNT_LOW from the first failure, FINAL_TRY at STORE_PIN_MAX_TRIES - 1,
 * LOCKED at STORE_PIN_MAX_TRIES. */
#define STORE_PIN_MAX_TRIES 10

typedef enum store_status {
	STORE_OK = 0,
	STORE_UNINITIALIZED = 1,  /* no metadata (absent or empty directory) */
	STORE_DAMAGED = 2,        /* metadata unreadable, malformed, or its MAC fails */
	STORE_NEWER_FORMAT = 3,   /* metadata written by a newer format version */
	STORE_READ_ONLY = 4,      /* a write on a read-only directory or file system */
	STORE_WRONG_PIN = 5,      /* the counter was incremented */
	STORE_LOCKED = 6,         /* that PIN reached STORE_PIN_MAX_TRIES; not tried */
	STORE_IO = 7,             /* any other system call failure */
	STORE_NOMEM = 8,
	STORE_NOT_FOUND = 9,      /* no such (visible) object */
	STORE_NO_KEY = 10,        /* R not set, or not logged in, or R of another store */
	STORE_INVALID = 11,       /* bad argument, unencodable attribute, wrong login model */
	STORE_PIN_NOT_SET = 12,   /* user login before the SO set a user PIN */
	STORE_FAILED = 13,        /* internal (OpenSSL) failure */
} store_status;

typedef enum store_user {
	STORE_NOBODY = 0,
	STORE_USER = 1,
	STORE_SO = 2,
} store_user;

typedef struct store store;

/* A token object as loaded from its file: immutable and reference counted
 * (a replace produces a new store_object).  Attribute values are in memory
 * form: CK_ULONG-typed attributes hold a CK_ULONG, templates
 * (CKF_ARRAY_ATTRIBUTE) an owned CK_ATTRIBUTE array.  Values are wiped
 * when the last reference goes. */
typedef struct store_object {
	uint8_t id[STORE_ID_LEN];    /* random; the file name is its hex */
	bool is_private;
	uint64_t stamp;              /* differs for every loaded version (per handle) */
	CK_ATTRIBUTE *attrs;
	size_t n_attrs;
	unsigned refs;               /* internal (atomic) */
} store_object;

typedef struct store_info {
	bool is_initialized;
	bool is_read_only;
	bool pin_model;              /* "pin": true at creation */
	bool user_pin_set;
	uint32_t user_fails, so_fails;
	uint8_t store_id[STORE_ID_LEN];
	uint64_t generation;
} store_info;

typedef struct store_create_args {
	const char *sealed_root;     /* printable, NUL-terminated, < 64 KiB */
	const uint8_t *root;         /* R, STORE_ROOT_LEN bytes */
	const uint8_t *so_pin;
	size_t so_pin_len;
	bool pin_model;
	/* scrypt cost; 0 = defaults (log2 N 15, r 8, p 1).  Tests lower it. */
	uint8_t kdf_log2n, kdf_r, kdf_p;
} store_create_args;

/* Counters for tests and benchmarks. */
typedef struct store_stats {
	uint64_t rescans;            /* directory listings */
	uint64_t file_reads;         /* object files opened and read */
	uint64_t decrypts;           /* object files decrypted */
	uint64_t bad_files;          /* object files that failed to authenticate */
} store_stats;

const char *store_status_str(store_status s);

/* Opens the store in dir (no I/O beyond reading the metadata; the
 * directory need not exist).  *out is set unless the result is STORE_NOMEM
 * or STORE_INVALID; the result is the store's state: STORE_OK,
 * STORE_UNINITIALIZED, STORE_DAMAGED, STORE_NEWER_FORMAT or STORE_IO.  A
 * read-only directory is reported by store_is_read_only. */
store_status store_open(const char *dir, store **out);
/* Wipes all keys and cached objects (objects still referenced by the
 * caller stay valid until released). */
void store_close(store *st);

/* The current state (re-reads the metadata if another process changed it).
 * Never needs R. */
store_status store_state(store *st);
bool store_is_read_only(store *st);
/* Counters and flags for C_GetTokenInfo; no R needed (so the values are
 * not authenticated: display only).  STORE_OK or the state. */
store_status store_get_info(store *st, store_info *info);
/* A malloc'd copy of the sealed-root string (for tang/ to unseal R). */
store_status store_sealed_root(store *st, char **sealed);

/* Wipes the store (every object) and creates it anew with a fresh store id
 * and private-objects key; the SO PIN wraps that key, no user PIN is set.
 * Refused (with the state) on a damaged or newer-format store, which is
 * never modified.  Creates the directory (0700) if needed.  Takes the lock.
 * Afterwards R is held as by store_set_root, nobody logged in. */
store_status store_create(store *st, const store_create_args *args);

/* Checks R against the metadata (its MAC) and holds it, and keys derived
 * from it, until store_forget.  Restores a login parked by store_forget.
 * STORE_DAMAGED if the MAC fails. */
store_status store_set_root(store *st, const uint8_t root[STORE_ROOT_LEN]);
bool store_has_root(store *st);
/* The lease ended: wipes R, its keys and every decrypted object from the
 * cache.  A login survives only parked: the private-objects key sealed
 * under a key derived from R, so it returns with the next store_set_root
 * and is useless without R. */
void store_forget(store *st);

/* Logs in (needs R).  pin model: unwraps the private-objects key under the
 * PIN; a wrong PIN increments that PIN's persistent counter (under the
 * lock), a right one resets it.  STORE_LOCKED without trying when the
 * counter is at the limit; STORE_PIN_NOT_SET for a user without PIN.
 * No-pin model, STORE_USER: the PIN is ignored (core logs it) and Tang
 * alone unlocks.  A user login makes private objects visible; an SO login
 * only enables store_init_user_pin.  On a read-only store failures cannot
 * be counted: the check still happens, the counter stays. */
store_status store_login(store *st, store_user who, const uint8_t *pin, size_t pin_len);
/* Wipes the private-objects key (also a parked one) and drops private
 * objects from the cache. */
void store_logout(store *st);
store_user store_logged_in(store *st);

/* C_InitPIN: the SO (logged in, R held) sets or resets the user PIN; the
 * user counter goes to 0.  Private objects survive.  Takes the lock.
 * STORE_INVALID in the no-pin model. */
store_status store_init_user_pin(store *st, const uint8_t *pin, size_t pin_len);
/* C_SetPIN: needs R and the old PIN of who (login not needed; a wrong old
 * PIN counts like a failed login).  Takes the lock. */
store_status store_change_pin(store *st, store_user who,
			      const uint8_t *old_pin, size_t old_len,
			      const uint8_t *new_pin, size_t new_len);

/* Adds an object sealed under the public key (needs R) or the
 * private-objects key (needs a user login); *id gets its new id.  The
 * attributes are copied.  Takes the lock. */
store_status store_object_add(store *st, bool is_private, const CK_ATTRIBUTE *attrs,
			      size_t n, uint8_t id[STORE_ID_LEN]);
/* Replaces the attributes (and visibility) of object id, which must be
 * visible to this handle.  Takes the lock. */
store_status store_object_replace(store *st, const uint8_t id[STORE_ID_LEN], bool is_private,
				  const CK_ATTRIBUTE *attrs, size_t n);
/* Removes object id, which must be visible.  Takes the lock. */
store_status store_object_remove(store *st, const uint8_t id[STORE_ID_LEN]);
/* Every visible object: public ones with R, private ones too after a user
 * login.  Picks up other processes' changes (only new or changed files are
 * read).  *objs is a malloc'd array of referenced objects: release with
 * store_objects_release.  Sorted by id. */
store_status store_objects_list(store *st, store_object ***objs, size_t *n);
/* One visible object, referenced. */
store_status store_object_get(store *st, const uint8_t id[STORE_ID_LEN], store_object **obj);
void store_object_release(store_object *obj);
void store_objects_release(store_object **objs, size_t n);

void store_get_stats(store *st, store_stats *stats);

/* Attribute arrays in memory form (see store_object): deep copy, and free
 * with every value wiped. */
store_status store_attrs_dup(const CK_ATTRIBUTE *attrs, size_t n, CK_ATTRIBUTE **out);
void store_attrs_free(CK_ATTRIBUTE *attrs, size_t n);

#endif
