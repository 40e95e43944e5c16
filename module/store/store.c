#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "store/crypt.h"
#include "store/file.h"
#include "store/record.h"
#include "util/log.h"

/* Default scrypt cost: 2^15 * 8 * 128 = 32 MiB, about 0.1 s. */
#define KDF_LOG2N 15
#define KDF_R 8
#define KDF_P 1

/* HKDF info strings: one per purpose, so no key is ever used for two. */
#define INFO_PUBLIC "tang-pkcs11 public objects"
#define INFO_MAC "tang-pkcs11 metadata mac"
#define INFO_USER "tang-pkcs11 user pin wrap"
#define INFO_SO "tang-pkcs11 so pin wrap"
#define INFO_NOPIN "tang-pkcs11 no-pin wrap"
#define INFO_PARK "tang-pkcs11 parked login"

/* One object file as last seen in the directory. */
typedef struct entry {
	uint8_t id[STORE_ID_LEN];
	file_ident ident;
	bool hdr_known;              /* is_private read from the file */
	bool is_private;
	uint64_t failed_epoch;       /* did not open under the keys of this epoch */
	store_object *obj;           /* decrypted, or NULL */
} entry;

/* The private-objects key sealed under a key derived from R while the
 * lease has lapsed (store_forget). */
typedef struct parked {
	bool is_set;
	store_user who;
	uint8_t salt[STORE_SALT_LEN];
	uint8_t nonce[STORE_NONCE_LEN];
	uint8_t ct[STORE_KEY_LEN];
	uint8_t tag[STORE_TAG_LEN];
} parked;

struct store {
	pthread_mutex_t mu;          /* guards everything below */
	char *dir;
	bool is_read_only;

	/* Metadata as last read. */
	store_status state;          /* OK, UNINITIALIZED, DAMAGED, NEWER_FORMAT, IO */
	bool has_meta;               /* meta and meta_raw valid (state OK) */
	store_meta meta;
	uint8_t *meta_raw;
	size_t meta_raw_len;
	bool has_meta_ident;
	file_ident meta_ident;

	/* Keys. */
	bool has_root;
	uint8_t root[STORE_ROOT_LEN];
	uint8_t k_pub[STORE_KEY_LEN];
	uint8_t k_mac[STORE_KEY_LEN];
	uint8_t root_store_id[STORE_ID_LEN];
	store_user login;
	uint8_t k_priv[STORE_KEY_LEN];   /* valid when login != STORE_NOBODY */
	parked park;
	uint64_t key_epoch;

	/* Object cache, sorted by id. */
	entry *entries;
	size_t n_entries;
	bool scanned;                /* entries match generation gen */
	uint64_t gen;
	bool saw_temps;              /* the last scan met a temp file */
	bool swept;                  /* this handle swept temp files once */
	uint64_t next_stamp;
	store_stats stats;
};

/* A writer's transaction: the lock, and the metadata read under it. */
typedef struct txn {
	int dirfd;
	int lockfd;
	bool has_meta;
	store_meta meta;
	uint8_t *raw;
	size_t raw_len;
} txn;

const char *store_status_str(store_status s)
{
	switch (s) {
	case STORE_OK: return "ok";
	case STORE_UNINITIALIZED: return "uninitialized";
	case STORE_DAMAGED: return "damaged";
	case STORE_NEWER_FORMAT: return "newer format";
	case STORE_READ_ONLY: return "read-only";
	case STORE_WRONG_PIN: return "wrong PIN";
	case STORE_LOCKED: return "PIN locked";
	case STORE_IO: return "I/O error";
	case STORE_NOMEM: return "out of memory";
	case STORE_NOT_FOUND: return "not found";
	case STORE_NO_KEY: return "key not available";
	case STORE_INVALID: return "invalid argument";
	case STORE_PIN_NOT_SET: return "user PIN not set";
	case STORE_FAILED: return "internal failure";
	}
	return "unknown";
}

/* ---- objects ---------------------------------------------------------- */

static store_object *object_new(const uint8_t id[STORE_ID_LEN], bool is_private,
				CK_ATTRIBUTE *attrs, size_t n, uint64_t stamp)
{
	store_object *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	memcpy(o->id, id, STORE_ID_LEN);
	o->is_private = is_private;
	o->attrs = attrs;
	o->n_attrs = n;
	o->stamp = stamp;
	o->refs = 1;
	return o;
}

static store_object *object_ref(store_object *o)
{
	__atomic_add_fetch(&o->refs, 1, __ATOMIC_RELAXED);
	return o;
}

void store_object_release(store_object *obj)
{
	if (!obj || __atomic_sub_fetch(&obj->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	store_attrs_free(obj->attrs, obj->n_attrs);
	OPENSSL_cleanse(obj, sizeof(*obj));
	free(obj);
}

void store_objects_release(store_object **objs, size_t n)
{
	if (!objs)
		return;
	for (size_t i = 0; i < n; i++)
		store_object_release(objs[i]);
	free(objs);
}

/* ---- cache ------------------------------------------------------------ */

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, STORE_ID_LEN);
}

static entry *find_entry_locked(store *st, const uint8_t id[STORE_ID_LEN])
{
	if (!st->n_entries)
		return NULL;
	return bsearch(id, st->entries, st->n_entries, sizeof(entry), id_cmp);
}

static void clear_cache_locked(store *st)
{
	for (size_t i = 0; i < st->n_entries; i++)
		store_object_release(st->entries[i].obj);
	free(st->entries);
	st->entries = NULL;
	st->n_entries = 0;
	st->scanned = false;
}

/* Drops decrypted objects (all, or only private ones) but keeps what the
 * directory looked like. */
static void drop_objects_locked(store *st, bool private_only)
{
	for (size_t i = 0; i < st->n_entries; i++) {
		entry *e = &st->entries[i];

		if (e->obj && (!private_only || e->obj->is_private)) {
			store_object_release(e->obj);
			e->obj = NULL;
		}
	}
}

/* Inserts or updates the entry of a file this handle just wrote. */
static store_status put_entry_locked(store *st, const uint8_t id[STORE_ID_LEN],
				     const file_ident *ident, store_object *obj)
{
	entry *e = find_entry_locked(st, id);
	entry *grown;
	size_t at;

	if (!e) {
		grown = realloc(st->entries, (st->n_entries + 1) * sizeof(entry));
		if (!grown)
			return STORE_NOMEM;
		st->entries = grown;
		for (at = 0; at < st->n_entries; at++)
			if (memcmp(st->entries[at].id, id, STORE_ID_LEN) > 0)
				break;
		memmove(&st->entries[at + 1], &st->entries[at],
			(st->n_entries - at) * sizeof(entry));
		st->n_entries++;
		e = &st->entries[at];
		memset(e, 0, sizeof(*e));
		memcpy(e->id, id, STORE_ID_LEN);
	}
	store_object_release(e->obj);
	e->ident = *ident;
	e->hdr_known = true;
	e->is_private = obj->is_private;
	e->failed_epoch = 0;
	e->obj = obj;
	return STORE_OK;
}

static void remove_entry_locked(store *st, const uint8_t id[STORE_ID_LEN])
{
	entry *e = find_entry_locked(st, id);
	size_t at;

	if (!e)
		return;
	at = (size_t)(e - st->entries);
	store_object_release(e->obj);
	memmove(e, e + 1, (st->n_entries - at - 1) * sizeof(entry));
	st->n_entries--;
}

/* ---- keys ------------------------------------------------------------- */

static void wipe_login_locked(store *st)
{
	OPENSSL_cleanse(st->k_priv, sizeof(st->k_priv));
	st->login = STORE_NOBODY;
}

static void wipe_root_locked(store *st)
{
	OPENSSL_cleanse(st->root, sizeof(st->root));
	OPENSSL_cleanse(st->k_pub, sizeof(st->k_pub));
	OPENSSL_cleanse(st->k_mac, sizeof(st->k_mac));
	st->has_root = false;
}

static void drop_all_keys_locked(store *st)
{
	wipe_login_locked(st);
	wipe_root_locked(st);
	OPENSSL_cleanse(&st->park, sizeof(st->park));
	drop_objects_locked(st, false);
	st->key_epoch++;
}

static store_status derive_mac_key(const uint8_t root[STORE_ROOT_LEN],
				   const uint8_t store_id[STORE_ID_LEN], uint8_t out[STORE_KEY_LEN])
{
	return crypt_hkdf(root, STORE_ROOT_LEN, store_id, STORE_ID_LEN, INFO_MAC,
			  out, STORE_KEY_LEN);
}

/* The key that wraps the private-objects key for one wrap kind. */
static store_status derive_wrap_key(const uint8_t root[STORE_ROOT_LEN], const store_meta *m,
				    uint8_t kind, const uint8_t salt[STORE_SALT_LEN],
				    const uint8_t *pin, size_t pin_len,
				    uint8_t out[STORE_KEY_LEN])
{
	store_status s;
	uint8_t ikm[STORE_ROOT_LEN + STORE_KEY_LEN];

	if (kind == STORE_WRAP_NOPIN)
		return crypt_hkdf(root, STORE_ROOT_LEN, m->store_id, STORE_ID_LEN, INFO_NOPIN,
				  out, STORE_KEY_LEN);
	memcpy(ikm, root, STORE_ROOT_LEN);
	s = crypt_scrypt(pin, pin_len, salt, m->kdf_log2n, m->kdf_r, m->kdf_p,
			 ikm + STORE_ROOT_LEN);
	if (s == STORE_OK)
		s = crypt_hkdf(ikm, sizeof(ikm), m->store_id, STORE_ID_LEN,
			       kind == STORE_WRAP_USER ? INFO_USER : INFO_SO, out, STORE_KEY_LEN);
	OPENSSL_cleanse(ikm, sizeof(ikm));
	return s;
}

/* AAD of a wrapped key: store id, kind, salt. */
static void wrap_aad(const store_meta *m, const store_wrap *w, uint8_t aad[STORE_ID_LEN + 1 + STORE_SALT_LEN])
{
	memcpy(aad, m->store_id, STORE_ID_LEN);
	aad[STORE_ID_LEN] = w->kind;
	memcpy(aad + STORE_ID_LEN + 1, w->salt, STORE_SALT_LEN);
}

static store_wrap *find_wrap(store_meta *m, uint8_t kind)
{
	for (size_t i = 0; i < m->n_wraps; i++)
		if (m->wraps[i].kind == kind)
			return &m->wraps[i];
	return NULL;
}

/* Sets (adds or replaces) the wrap of kind around k_priv, fresh salt and
 * nonce.  Runs scrypt: never with the handle mutex held. */
static store_status set_wrap(const uint8_t root[STORE_ROOT_LEN], store_meta *m, uint8_t kind,
			     const uint8_t *pin, size_t pin_len, const uint8_t k_priv[STORE_KEY_LEN])
{
	store_status s;
	store_wrap w = { .kind = kind };
	store_wrap *slot = find_wrap(m, kind);
	uint8_t key[STORE_KEY_LEN];
	uint8_t aad[STORE_ID_LEN + 1 + STORE_SALT_LEN];

	if (!slot && m->n_wraps >= STORE_MAX_WRAPS)
		return STORE_FAILED;
	s = kind == STORE_WRAP_NOPIN ? STORE_OK : crypt_random(w.salt, sizeof(w.salt));
	if (s == STORE_OK)
		s = crypt_random(w.nonce, sizeof(w.nonce));
	if (s == STORE_OK)
		s = derive_wrap_key(root, m, kind, w.salt, pin, pin_len, key);
	if (s != STORE_OK)
		goto out;
	wrap_aad(m, &w, aad);
	s = crypt_gcm_seal(key, w.nonce, aad, sizeof(aad), k_priv, STORE_KEY_LEN, w.ct, w.tag);
	if (s != STORE_OK)
		goto out;
	if (!slot)
		slot = &m->wraps[m->n_wraps++];
	*slot = w;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return s;
}

/* STORE_OK with k_priv, STORE_WRONG_PIN, or a failure. */
static store_status open_wrap(const uint8_t root[STORE_ROOT_LEN], store_meta *m, uint8_t kind,
			      const uint8_t *pin, size_t pin_len, uint8_t k_priv[STORE_KEY_LEN])
{
	store_status s;
	const store_wrap *w = find_wrap(m, kind);
	uint8_t key[STORE_KEY_LEN];
	uint8_t aad[STORE_ID_LEN + 1 + STORE_SALT_LEN];

	if (!w)
		return kind == STORE_WRAP_USER ? STORE_PIN_NOT_SET : STORE_DAMAGED;
	s = derive_wrap_key(root, m, kind, w->salt, pin, pin_len, key);
	if (s != STORE_OK)
		goto out;
	wrap_aad(m, w, aad);
	s = crypt_gcm_open(key, w->nonce, aad, sizeof(aad), w->ct, STORE_KEY_LEN, w->tag, k_priv);
	/* R was checked by the metadata MAC: a tag failure here is the PIN
	 * (for the no-pin wrap it can only be damage). */
	if (s == STORE_DAMAGED && kind != STORE_WRAP_NOPIN)
		s = STORE_WRONG_PIN;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return s;
}

static store_status mac_check(const uint8_t k_mac[STORE_KEY_LEN], const store_meta *m,
			      const uint8_t *raw)
{
	uint8_t mac[STORE_MAC_LEN];
	store_status s = crypt_hmac(k_mac, raw, m->mac_off, mac);

	if (s == STORE_OK && CRYPTO_memcmp(mac, m->mac, STORE_MAC_LEN) != 0)
		s = STORE_DAMAGED;
	OPENSSL_cleanse(mac, sizeof(mac));
	return s;
}

/* ---- metadata --------------------------------------------------------- */

static void meta_clear(store_meta *m)
{
	free(m->sealed_root);
	OPENSSL_cleanse(m, sizeof(*m));
}

/* Reads and parses the metadata file: STORE_OK (meta filled, raw kept),
 * STORE_UNINITIALIZED, STORE_DAMAGED, STORE_NEWER_FORMAT, STORE_IO,
 * STORE_NOMEM. */
static store_status meta_read(int dirfd, store_meta *m, uint8_t **raw, size_t *raw_len,
			      file_ident *ident)
{
	store_status s;
	store_record rec;

	*raw = NULL;
	s = file_read(dirfd, STORE_META_NAME, STORE_MAX_FILE, raw, raw_len, ident);
	if (s == STORE_NOT_FOUND)
		return STORE_UNINITIALIZED;
	if (s != STORE_OK)
		return s;
	s = store_record_parse(*raw, *raw_len, &rec);
	if (s == STORE_OK && rec.type != STORE_REC_META) {
		store_record_clear(&rec);
		s = STORE_DAMAGED;
	}
	if (s != STORE_OK) {
		free(*raw);
		*raw = NULL;
		return s;
	}
	*m = rec.u.meta;
	return STORE_OK;
}

static void log_state_change(store *st, store_status s)
{
	if (s == st->state)
		return;
	if (s == STORE_DAMAGED)
		log_error("store %s: metadata damaged; the store will not be used or modified",
			  st->dir);
	else if (s == STORE_NEWER_FORMAT)
		log_error("store %s: written by a newer format version than %d; not used or modified",
			  st->dir, STORE_FORMAT_VERSION);
}

static void set_state_locked(store *st, store_status s)
{
	/* A transient failure says nothing about the store: keep what we
	 * know (the metadata is re-read next time). */
	if (s == STORE_IO || s == STORE_NOMEM)
		return;
	log_state_change(st, s);
	st->state = s;
	if (s != STORE_OK) {
		if (st->has_meta)
			meta_clear(&st->meta);
		free(st->meta_raw);
		st->meta_raw = NULL;
		st->has_meta = false;
		clear_cache_locked(st);
		drop_all_keys_locked(st);
	}
}

/* Brings the cached metadata up to date (a stat when nothing changed). */
static store_status refresh_meta_locked(store *st)
{
	store_status s;
	int dirfd = file_open_dir(st->dir);
	file_ident ident;
	store_meta m;
	uint8_t *raw = NULL;
	size_t raw_len = 0;

	if (dirfd < 0) {
		s = errno == ENOENT ? STORE_UNINITIALIZED : STORE_IO;
		st->has_meta_ident = false;
		set_state_locked(st, s);
		return s;
	}
	s = file_stat(dirfd, STORE_META_NAME, &ident);
	if (s == STORE_OK && st->has_meta_ident && file_ident_eq(&ident, &st->meta_ident)) {
		s = st->state;
		goto out;
	}
	s = meta_read(dirfd, &m, &raw, &raw_len, &ident);
	st->has_meta_ident = s != STORE_IO && s != STORE_NOMEM && s != STORE_UNINITIALIZED;
	st->meta_ident = ident;
	if (s != STORE_OK) {
		set_state_locked(st, s);
		goto out;
	}
	/* Another process re-created the store: our keys belong to the old one. */
	if (st->has_root && memcmp(st->root_store_id, m.store_id, STORE_ID_LEN) != 0) {
		drop_all_keys_locked(st);
		clear_cache_locked(st);
	}
	if (st->has_root && mac_check(st->k_mac, &m, raw) != STORE_OK) {
		meta_clear(&m);
		free(raw);
		s = STORE_DAMAGED;
		set_state_locked(st, s);
		goto out;
	}
	if (st->has_meta)
		meta_clear(&st->meta);
	free(st->meta_raw);
	st->meta = m;
	st->meta_raw = raw;
	st->meta_raw_len = raw_len;
	st->has_meta = true;
	log_state_change(st, STORE_OK);
	st->state = STORE_OK;
out:
	close(dirfd);
	return s;
}

/* Serializes m with its MAC and replaces the metadata file. */
static store_status meta_write(int dirfd, store_meta *m, const uint8_t k_mac[STORE_KEY_LEN])
{
	store_status s;
	wbuf b;
	uint8_t mac[STORE_MAC_LEN];

	wbuf_init(&b, false);
	record_meta_build(&b, m);
	if (b.failed) {
		s = STORE_NOMEM;
		goto out;
	}
	m->mac_off = b.len;
	s = crypt_hmac(k_mac, b.data, b.len, mac);
	if (s != STORE_OK)
		goto out;
	wbuf_add(&b, mac, sizeof(mac));
	if (b.failed) {
		s = STORE_NOMEM;
		goto out;
	}
	memcpy(m->mac, mac, sizeof(mac));
	s = file_write_atomic(dirfd, STORE_META_NAME, b.data, b.len, NULL);
out:
	wbuf_free(&b);
	return s;
}

/* ---- transactions ----------------------------------------------------- */

static void txn_end(txn *t)
{
	file_unlock(t->lockfd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	if (t->has_meta)
		meta_clear(&t->meta);
	free(t->raw);
	memset(t, 0, sizeof(*t));
	t->dirfd = t->lockfd = -1;
}

/* Takes the writers' lock and reads the metadata under it.  The state is
 * checked once before the lock too, so that a damaged or newer store is
 * refused without even creating a lock file in it.  allow_ro: go on without
 * the lock when the store cannot be written (a login on a read-only store). */
static store_status txn_begin(store *st, txn *t, bool allow_ro)
{
	store_status s;
	store_meta pre;
	uint8_t *pre_raw = NULL;
	size_t pre_len;

	memset(t, 0, sizeof(*t));
	t->lockfd = -1;
	t->dirfd = file_open_dir(st->dir);
	if (t->dirfd < 0)
		return errno == ENOENT ? STORE_UNINITIALIZED : STORE_IO;
	s = meta_read(t->dirfd, &pre, &pre_raw, &pre_len, NULL);
	if (s == STORE_OK)
		meta_clear(&pre);
	free(pre_raw);
	if (s != STORE_OK)
		goto out;
	s = file_lock(t->dirfd, &t->lockfd);
	if (s == STORE_DAMAGED)
		log_error("store %s: the lock file is not a regular file; nothing is written",
			  st->dir);
	if (s == STORE_READ_ONLY && allow_ro)
		s = STORE_OK;
	if (s != STORE_OK)
		goto out;
	s = meta_read(t->dirfd, &t->meta, &t->raw, &t->raw_len, NULL);
	t->has_meta = s == STORE_OK;
	if (s != STORE_OK)
		goto out;
out:
	if (s != STORE_OK)
		txn_end(t);
	return s;
}

/* The transaction's metadata must be the store our keys belong to, and
 * authentic.  Copies R and the MAC key out for use without the mutex. */
static store_status txn_check_keys(store *st, txn *t, uint8_t root[STORE_ROOT_LEN],
				   uint8_t k_mac[STORE_KEY_LEN])
{
	store_status s = STORE_NO_KEY;

	pthread_mutex_lock(&st->mu);
	if (st->has_root && memcmp(st->root_store_id, t->meta.store_id, STORE_ID_LEN) == 0) {
		memcpy(root, st->root, STORE_ROOT_LEN);
		memcpy(k_mac, st->k_mac, STORE_KEY_LEN);
		s = STORE_OK;
	}
	pthread_mutex_unlock(&st->mu);
	if (s == STORE_OK)
		s = mac_check(k_mac, &t->meta, t->raw);
	if (s == STORE_DAMAGED)
		log_error("store %s: metadata does not authenticate; refusing to write", st->dir);
	/* Only a writer of an authentic store cleans up after killed ones. */
	if (s == STORE_OK && t->lockfd >= 0) {
		bool sweep;

		pthread_mutex_lock(&st->mu);
		sweep = !st->swept || st->saw_temps;
		st->swept = true;
		st->saw_temps = false;
		pthread_mutex_unlock(&st->mu);
		if (sweep)
			file_sweep_temps(t->dirfd);
	}
	return s;
}

/* Bumps the generation; if nobody else wrote since our last scan, our
 * cache (updated by the caller) is current at the new generation. */
static store_status txn_commit(store *st, txn *t)
{
	uint64_t gen;
	store_status s = file_gen_bump(t->lockfd, &gen);

	if (s != STORE_OK)
		return s;
	pthread_mutex_lock(&st->mu);
	if (st->scanned && st->gen + 1 == gen)
		st->gen = gen;
	else
		st->scanned = false;
	pthread_mutex_unlock(&st->mu);
	return STORE_OK;
}

/* ---- open, close, state ---------------------------------------------- */

store_status store_open(const char *dir, store **out)
{
	store *st;
	store_status s;

	*out = NULL;
	if (!dir || !*dir)
		return STORE_INVALID;
	st = calloc(1, sizeof(*st));
	if (!st)
		return STORE_NOMEM;
	st->dir = strdup(dir);
	if (!st->dir || pthread_mutex_init(&st->mu, NULL) != 0) {
		free(st->dir);
		free(st);
		return STORE_NOMEM;
	}
	st->key_epoch = 1;
	st->next_stamp = 1;
	st->state = STORE_UNINITIALIZED;
	st->is_read_only = file_dir_read_only(dir);
	pthread_mutex_lock(&st->mu);
	s = refresh_meta_locked(st);
	pthread_mutex_unlock(&st->mu);
	*out = st;
	return s;
}

void store_close(store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	clear_cache_locked(st);
	drop_all_keys_locked(st);
	if (st->has_meta)
		meta_clear(&st->meta);
	free(st->meta_raw);
	pthread_mutex_unlock(&st->mu);
	pthread_mutex_destroy(&st->mu);
	free(st->dir);
	OPENSSL_cleanse(st, sizeof(*st));
	free(st);
}

store_status store_state(store *st)
{
	store_status s;

	pthread_mutex_lock(&st->mu);
	s = refresh_meta_locked(st);
	pthread_mutex_unlock(&st->mu);
	return s;
}

bool store_is_read_only(store *st)
{
	return st->is_read_only;
}

store_status store_get_info(store *st, store_info *info)
{
	store_status s;
	uint64_t gen = 0;
	int dirfd;

	memset(info, 0, sizeof(*info));
	info->is_read_only = st->is_read_only;
	pthread_mutex_lock(&st->mu);
	s = refresh_meta_locked(st);
	if (s == STORE_OK) {
		info->is_initialized = true;
		info->pin_model = st->meta.flags & STORE_META_PIN_MODEL;
		info->user_pin_set = st->meta.flags & STORE_META_USER_PIN_SET;
		info->user_fails = st->meta.user_fails;
		info->so_fails = st->meta.so_fails;
		memcpy(info->store_id, st->meta.store_id, STORE_ID_LEN);
	}
	pthread_mutex_unlock(&st->mu);
	dirfd = file_open_dir(st->dir);
	if (dirfd >= 0) {
		file_gen_read(dirfd, &gen);
		close(dirfd);
	}
	info->generation = gen;
	return s;
}

store_status store_sealed_root(store *st, char **sealed)
{
	store_status s;

	*sealed = NULL;
	pthread_mutex_lock(&st->mu);
	s = refresh_meta_locked(st);
	if (s == STORE_OK) {
		*sealed = strdup(st->meta.sealed_root);
		if (!*sealed)
			s = STORE_NOMEM;
	}
	pthread_mutex_unlock(&st->mu);
	return s;
}

/* ---- create ----------------------------------------------------------- */

static store_status check_pin(const uint8_t *pin, size_t len)
{
	return (len && !pin) || len > STORE_MAX_PIN ? STORE_INVALID : STORE_OK;
}

static store_status check_create_args(const store_create_args *a)
{
	size_t len;

	if (!a || !a->sealed_root || !a->root || check_pin(a->so_pin, a->so_pin_len) != STORE_OK)
		return STORE_INVALID;
	len = strlen(a->sealed_root);
	if (!len || len > STORE_MAX_SEALED)
		return STORE_INVALID;
	for (size_t i = 0; i < len; i++)
		if (a->sealed_root[i] < 0x21 || a->sealed_root[i] > 0x7e)
			return STORE_INVALID;
	return STORE_OK;
}

/* Removes every object and temp file (the old store is gone already). */
static store_status wipe_objects(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint8_t id[STORE_ID_LEN];
	store_status s = STORE_OK;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return STORE_IO;
	}
	while ((de = readdir(d))) {
		if (!file_obj_name(de->d_name, id) && !file_is_temp(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) != 0 && errno != ENOENT)
			s = file_errno_status(errno) == STORE_READ_ONLY ? STORE_READ_ONLY : STORE_IO;
	}
	closedir(d);
	if (s == STORE_OK)
		s = file_sync_dir(dirfd);
	return s;
}

static store_status new_meta(const store_create_args *a, store_meta *m,
			     uint8_t k_priv[STORE_KEY_LEN], uint8_t k_mac[STORE_KEY_LEN])
{
	store_status s;

	memset(m, 0, sizeof(*m));
	m->flags = a->pin_model ? STORE_META_PIN_MODEL : 0;
	m->kdf_log2n = a->kdf_log2n ? a->kdf_log2n : KDF_LOG2N;
	m->kdf_r = a->kdf_r ? a->kdf_r : KDF_R;
	m->kdf_p = a->kdf_p ? a->kdf_p : KDF_P;
	m->sealed_len = strlen(a->sealed_root);
	m->sealed_root = strdup(a->sealed_root);
	if (!m->sealed_root)
		return STORE_NOMEM;
	s = crypt_random(m->store_id, STORE_ID_LEN);
	if (s == STORE_OK)
		s = crypt_random(k_priv, STORE_KEY_LEN);
	if (s == STORE_OK)
		s = derive_mac_key(a->root, m->store_id, k_mac);
	if (s == STORE_OK)
		s = set_wrap(a->root, m, STORE_WRAP_SO, a->so_pin, a->so_pin_len, k_priv);
	if (s == STORE_OK && !a->pin_model)
		s = set_wrap(a->root, m, STORE_WRAP_NOPIN, NULL, 0, k_priv);
	return s;
}

/* Holds R and its keys for the store whose id is store_id. */
static store_status set_root_locked(store *st, const uint8_t root[STORE_ROOT_LEN],
				    const uint8_t store_id[STORE_ID_LEN])
{
	store_status s;

	memcpy(st->root, root, STORE_ROOT_LEN);
	memcpy(st->root_store_id, store_id, STORE_ID_LEN);
	s = crypt_hkdf(root, STORE_ROOT_LEN, store_id, STORE_ID_LEN, INFO_PUBLIC,
		       st->k_pub, STORE_KEY_LEN);
	if (s == STORE_OK)
		s = derive_mac_key(root, store_id, st->k_mac);
	st->has_root = s == STORE_OK;
	if (s != STORE_OK)
		wipe_root_locked(st);
	st->key_epoch++;
	return s;
}

store_status store_create(store *st, const store_create_args *args)
{
	store_status s;
	int dirfd = -1, lockfd = -1;
	store_meta m, old;
	uint8_t *old_raw = NULL;
	size_t old_len;
	uint8_t k_priv[STORE_KEY_LEN], k_mac[STORE_KEY_LEN];

	memset(&m, 0, sizeof(m));
	s = check_create_args(args);
	if (s != STORE_OK)
		return s;
	if (mkdir(st->dir, 0700) != 0 && errno != EEXIST) {
		s = file_errno_status(errno) == STORE_READ_ONLY ? STORE_READ_ONLY : STORE_IO;
		goto out;
	}
	dirfd = file_open_dir(st->dir);
	if (dirfd < 0) {
		s = STORE_IO;
		goto out;
	}
	/* Refuse a damaged or newer store before touching anything (even the
	 * lock file), and again under the lock. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			s = file_lock(dirfd, &lockfd);
			if (s == STORE_DAMAGED)
				log_error("store %s: the lock file is not a regular file; nothing is written",
					  st->dir);
			if (s != STORE_OK)
				goto out;
		}
		s = meta_read(dirfd, &old, &old_raw, &old_len, NULL);
		free(old_raw);
		old_raw = NULL;
		if (s == STORE_OK)
			meta_clear(&old);
		else if (s != STORE_UNINITIALIZED)
			goto out;
	}
	s = new_meta(args, &m, k_priv, k_mac);
	if (s != STORE_OK)
		goto out;
	/* Old metadata first: a crash from here on leaves an uninitialized
	 * store (leftover object files are wiped by the next create), never
	 * the old metadata with half its objects. */
	s = file_remove(dirfd, STORE_META_NAME);
	if (s == STORE_NOT_FOUND)
		s = STORE_OK;
	if (s == STORE_OK)
		s = wipe_objects(dirfd);
	if (s == STORE_OK)
		s = meta_write(dirfd, &m, k_mac);
	if (s == STORE_OK) {
		uint64_t gen;

		s = file_gen_bump(lockfd, &gen);
	}
	if (s != STORE_OK)
		goto out;
	pthread_mutex_lock(&st->mu);
	drop_all_keys_locked(st);
	clear_cache_locked(st);
	st->has_meta_ident = false;
	s = refresh_meta_locked(st);
	if (s == STORE_OK)
		s = set_root_locked(st, args->root, m.store_id);
	pthread_mutex_unlock(&st->mu);
out:
	if (s != STORE_OK && s != STORE_READ_ONLY)
		log_error("store %s: create failed: %s", st->dir, store_status_str(s));
	meta_clear(&m);
	OPENSSL_cleanse(k_priv, sizeof(k_priv));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	file_unlock(lockfd);
	if (dirfd >= 0)
		close(dirfd);
	return s;
}

/* ---- root and lease --------------------------------------------------- */

static void unpark_locked(store *st)
{
	store_status s;
	uint8_t key[STORE_KEY_LEN];
	uint8_t aad[STORE_ID_LEN + 1];

	if (!st->park.is_set)
		return;
	memcpy(aad, st->root_store_id, STORE_ID_LEN);
	aad[STORE_ID_LEN] = (uint8_t)st->park.who;
	s = crypt_hkdf(st->root, STORE_ROOT_LEN, st->park.salt, STORE_SALT_LEN, INFO_PARK,
		       key, sizeof(key));
	if (s == STORE_OK)
		s = crypt_gcm_open(key, st->park.nonce, aad, sizeof(aad), st->park.ct,
				   STORE_KEY_LEN, st->park.tag, st->k_priv);
	if (s == STORE_OK)
		st->login = st->park.who;
	else
		wipe_login_locked(st);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(&st->park, sizeof(st->park));
}

static void park_locked(store *st)
{
	store_status s;
	uint8_t key[STORE_KEY_LEN];
	uint8_t aad[STORE_ID_LEN + 1];

	OPENSSL_cleanse(&st->park, sizeof(st->park));
	if (st->login == STORE_NOBODY || !st->has_root)
		return;
	memcpy(aad, st->root_store_id, STORE_ID_LEN);
	aad[STORE_ID_LEN] = (uint8_t)st->login;
	s = crypt_random(st->park.salt, STORE_SALT_LEN);
	if (s == STORE_OK)
		s = crypt_random(st->park.nonce, STORE_NONCE_LEN);
	if (s == STORE_OK)
		s = crypt_hkdf(st->root, STORE_ROOT_LEN, st->park.salt, STORE_SALT_LEN, INFO_PARK,
			       key, sizeof(key));
	if (s == STORE_OK)
		s = crypt_gcm_seal(key, st->park.nonce, aad, sizeof(aad), st->k_priv,
				   STORE_KEY_LEN, st->park.ct, st->park.tag);
	st->park.is_set = s == STORE_OK;
	st->park.who = st->login;
	if (s != STORE_OK)
		OPENSSL_cleanse(&st->park, sizeof(st->park));
	OPENSSL_cleanse(key, sizeof(key));
}

store_status store_set_root(store *st, const uint8_t root[STORE_ROOT_LEN])
{
	store_status s;
	uint8_t k_mac[STORE_KEY_LEN];

	pthread_mutex_lock(&st->mu);
	s = refresh_meta_locked(st);
	if (s != STORE_OK)
		goto out;
	s = derive_mac_key(root, st->meta.store_id, k_mac);
	if (s == STORE_OK)
		s = mac_check(k_mac, &st->meta, st->meta_raw);
	if (s != STORE_OK) {
		if (s == STORE_DAMAGED)
			log_error("store %s: metadata does not authenticate under the root secret",
				  st->dir);
		goto out;
	}
	if (st->has_root && memcmp(st->root_store_id, st->meta.store_id, STORE_ID_LEN) != 0)
		drop_all_keys_locked(st);
	s = set_root_locked(st, root, st->meta.store_id);
	if (s == STORE_OK)
		unpark_locked(st);
out:
	pthread_mutex_unlock(&st->mu);
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	return s;
}

bool store_has_root(store *st)
{
	bool has;

	pthread_mutex_lock(&st->mu);
	has = st->has_root;
	pthread_mutex_unlock(&st->mu);
	return has;
}

void store_forget(store *st)
{
	pthread_mutex_lock(&st->mu);
	park_locked(st);
	wipe_login_locked(st);
	wipe_root_locked(st);
	drop_objects_locked(st, false);
	st->key_epoch++;
	pthread_mutex_unlock(&st->mu);
}

/* ---- PINs ------------------------------------------------------------- */

static uint32_t *fail_counter(store_meta *m, store_user who)
{
	return who == STORE_SO ? &m->so_fails : &m->user_fails;
}

/* Verifies pin for who under the transaction's lock, counting the result
 * in t->meta (written back when it changed).  *k_priv gets the key. */
static store_status verify_locked_txn(store *st, txn *t, const uint8_t root[STORE_ROOT_LEN],
				      const uint8_t k_mac[STORE_KEY_LEN], store_user who,
				      const uint8_t *pin, size_t pin_len,
				      uint8_t k_priv[STORE_KEY_LEN])
{
	store_status s, w;
	uint32_t *fails = fail_counter(&t->meta, who);
	uint8_t kind = who == STORE_SO ? STORE_WRAP_SO : STORE_WRAP_USER;

	if (who == STORE_USER && !(t->meta.flags & STORE_META_USER_PIN_SET))
		return STORE_PIN_NOT_SET;
	if (*fails >= STORE_PIN_MAX_TRIES)
		return STORE_LOCKED;
	s = open_wrap(root, &t->meta, kind, pin, pin_len, k_priv);
	if (s != STORE_OK && s != STORE_WRONG_PIN)
		return s;
	if (s == STORE_OK && *fails == 0)
		return s;
	if (t->lockfd < 0) {
		log_warn("store %s: read-only, wrong PIN not counted", st->dir);
		return s;
	}
	*fails = s == STORE_OK ? 0 : *fails + 1;
	w = meta_write(t->dirfd, &t->meta, k_mac);
	if (w == STORE_OK)
		w = txn_commit(st, t);
	if (w != STORE_OK) {
		log_error("store %s: cannot record the PIN counter: %s", st->dir,
			  store_status_str(w));
		/* A wrong PIN that could not be counted is reported as the
		 * failure to count it, never as a plain wrong PIN; a right
		 * one still logs in (the stale count only errs on the safe
		 * side). */
		if (s != STORE_OK)
			return w;
	}
	return s;
}

/* Common start of PIN operations: state, model, R. */
static store_status pin_txn_begin(store *st, txn *t, bool allow_ro, uint8_t root[STORE_ROOT_LEN],
				  uint8_t k_mac[STORE_KEY_LEN])
{
	store_status s = txn_begin(st, t, allow_ro);

	if (s != STORE_OK)
		return s;
	s = txn_check_keys(st, t, root, k_mac);
	if (s != STORE_OK)
		txn_end(t);
	return s;
}

static void set_login(store *st, store_user who, const uint8_t store_id[STORE_ID_LEN],
		      const uint8_t k_priv[STORE_KEY_LEN])
{
	pthread_mutex_lock(&st->mu);
	if (st->has_root && memcmp(st->root_store_id, store_id, STORE_ID_LEN) == 0) {
		memcpy(st->k_priv, k_priv, STORE_KEY_LEN);
		st->login = who;
		OPENSSL_cleanse(&st->park, sizeof(st->park));
		st->key_epoch++;
	}
	pthread_mutex_unlock(&st->mu);
}

store_status store_login(store *st, store_user who, const uint8_t *pin, size_t pin_len)
{
	store_status s;
	txn t = { .dirfd = -1, .lockfd = -1 };
	uint8_t root[STORE_ROOT_LEN], k_mac[STORE_KEY_LEN], k_priv[STORE_KEY_LEN];
	bool pin_model;

	if ((who != STORE_USER && who != STORE_SO) || check_pin(pin, pin_len) != STORE_OK)
		return STORE_INVALID;
	/* The scrypt inside runs with the writers' lock held (so that two
	 * processes cannot both use the last try) but never the mutex. */
	s = pin_txn_begin(st, &t, true, root, k_mac);
	if (s != STORE_OK)
		goto out;
	pin_model = t.meta.flags & STORE_META_PIN_MODEL;
	if (!pin_model && who == STORE_USER)
		s = open_wrap(root, &t.meta, STORE_WRAP_NOPIN, NULL, 0, k_priv);
	else
		s = verify_locked_txn(st, &t, root, k_mac, who, pin, pin_len, k_priv);
	if (s == STORE_OK)
		set_login(st, who, t.meta.store_id, k_priv);
out:
	txn_end(&t);
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	OPENSSL_cleanse(k_priv, sizeof(k_priv));
	return s;
}

void store_logout(store *st)
{
	pthread_mutex_lock(&st->mu);
	wipe_login_locked(st);
	OPENSSL_cleanse(&st->park, sizeof(st->park));
	drop_objects_locked(st, true);
	pthread_mutex_unlock(&st->mu);
}

store_user store_logged_in(store *st)
{
	store_user who;

	pthread_mutex_lock(&st->mu);
	who = st->login;
	pthread_mutex_unlock(&st->mu);
	return who;
}

store_status store_init_user_pin(store *st, const uint8_t *pin, size_t pin_len)
{
	store_status s;
	txn t = { .dirfd = -1, .lockfd = -1 };
	uint8_t root[STORE_ROOT_LEN], k_mac[STORE_KEY_LEN], k_priv[STORE_KEY_LEN];
	bool is_so;

	if (check_pin(pin, pin_len) != STORE_OK)
		return STORE_INVALID;
	pthread_mutex_lock(&st->mu);
	is_so = st->login == STORE_SO;
	memcpy(k_priv, st->k_priv, STORE_KEY_LEN);
	pthread_mutex_unlock(&st->mu);
	if (!is_so) {
		s = STORE_NO_KEY;
		goto out;
	}
	s = pin_txn_begin(st, &t, false, root, k_mac);
	if (s != STORE_OK)
		goto out;
	if (!(t.meta.flags & STORE_META_PIN_MODEL)) {
		s = STORE_INVALID;
		goto out;
	}
	s = set_wrap(root, &t.meta, STORE_WRAP_USER, pin, pin_len, k_priv);
	if (s != STORE_OK)
		goto out;
	t.meta.flags |= STORE_META_USER_PIN_SET;
	t.meta.user_fails = 0;
	s = meta_write(t.dirfd, &t.meta, k_mac);
	if (s == STORE_OK)
		s = txn_commit(st, &t);
out:
	txn_end(&t);
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	OPENSSL_cleanse(k_priv, sizeof(k_priv));
	return s;
}

store_status store_change_pin(store *st, store_user who,
			      const uint8_t *old_pin, size_t old_len,
			      const uint8_t *new_pin, size_t new_len)
{
	store_status s;
	txn t = { .dirfd = -1, .lockfd = -1 };
	uint8_t root[STORE_ROOT_LEN], k_mac[STORE_KEY_LEN], k_priv[STORE_KEY_LEN];

	if ((who != STORE_USER && who != STORE_SO) ||
	    check_pin(old_pin, old_len) != STORE_OK || check_pin(new_pin, new_len) != STORE_OK)
		return STORE_INVALID;
	s = pin_txn_begin(st, &t, false, root, k_mac);
	if (s != STORE_OK)
		goto out;
	if (who == STORE_USER && !(t.meta.flags & STORE_META_PIN_MODEL)) {
		s = STORE_INVALID;
		goto out;
	}
	s = verify_locked_txn(st, &t, root, k_mac, who, old_pin, old_len, k_priv);
	if (s != STORE_OK)
		goto out;
	s = set_wrap(root, &t.meta, who == STORE_SO ? STORE_WRAP_SO : STORE_WRAP_USER,
		     new_pin, new_len, k_priv);
	if (s != STORE_OK)
		goto out;
	*fail_counter(&t.meta, who) = 0;
	s = meta_write(t.dirfd, &t.meta, k_mac);
	if (s == STORE_OK)
		s = txn_commit(st, &t);
out:
	txn_end(&t);
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	OPENSSL_cleanse(k_priv, sizeof(k_priv));
	return s;
}

/* ---- reading objects -------------------------------------------------- */

static bool can_see_locked(store *st, bool is_private)
{
	return st->has_root && (!is_private || st->login == STORE_USER);
}

/* Decrypts one sealed object record into attributes. */
static store_status unseal_object(const uint8_t key[STORE_KEY_LEN],
				  const uint8_t store_id[STORE_ID_LEN],
				  const store_obj_rec *o, CK_ATTRIBUTE **attrs, size_t *n)
{
	store_status s;
	uint8_t aad[STORE_ID_LEN + STORE_OBJ_AAD_LEN];
	uint8_t *pt = malloc(o->ct_len ? o->ct_len : 1);
	store_record rec;

	if (!pt)
		return STORE_NOMEM;
	memcpy(aad, store_id, STORE_ID_LEN);
	memcpy(aad + STORE_ID_LEN, o->aad_head, STORE_OBJ_AAD_LEN);
	s = crypt_gcm_open(key, o->nonce, aad, sizeof(aad), o->ct, o->ct_len, o->tag, pt);
	if (s != STORE_OK)
		goto out;
	s = store_record_parse(pt, o->ct_len, &rec);
	if (s == STORE_OK && rec.type != STORE_REC_ATTRS) {
		store_record_clear(&rec);
		s = STORE_DAMAGED;
	}
	if (s != STORE_OK)
		goto out;
	*attrs = rec.u.attrs.attrs;
	*n = rec.u.attrs.n_attrs;
out:
	OPENSSL_clear_free(pt, o->ct_len ? o->ct_len : 1);
	return s;
}

/* Loads (reads, and decrypts if this handle may see it) one entry. */
static void load_entry_locked(store *st, int dirfd, entry *e)
{
	store_status s;
	char name[STORE_OBJ_NAME_LEN + 1];
	uint8_t *raw = NULL;
	size_t len;
	store_record rec;
	CK_ATTRIBUTE *attrs = NULL;
	size_t n = 0;
	bool have_rec = false;

	if (e->obj || e->failed_epoch == st->key_epoch ||
	    (e->hdr_known && !can_see_locked(st, e->is_private)))
		return;
	file_obj_hex(e->id, name);
	s = file_read(dirfd, name, STORE_MAX_FILE, &raw, &len, &e->ident);
	if (s == STORE_NOT_FOUND || s == STORE_NOMEM || s == STORE_IO)
		goto out;   /* gone meanwhile, or transient: try again next time */
	st->stats.file_reads++;
	if (s == STORE_OK)
		s = store_record_parse(raw, len, &rec);
	have_rec = s == STORE_OK;
	if (s == STORE_OK && (rec.type != STORE_REC_OBJECT ||
			      memcmp(rec.u.obj.id, e->id, STORE_ID_LEN) != 0))
		s = STORE_DAMAGED;
	if (s != STORE_OK)
		goto bad;
	e->hdr_known = true;
	e->is_private = rec.u.obj.flags & STORE_OBJ_PRIVATE;
	if (!can_see_locked(st, e->is_private))
		goto out;
	st->stats.decrypts++;
	s = unseal_object(e->is_private ? st->k_priv : st->k_pub, st->root_store_id,
			  &rec.u.obj, &attrs, &n);
	if (s == STORE_NOMEM)
		goto out;
	if (s != STORE_OK)
		goto bad;
	e->obj = object_new(e->id, e->is_private, attrs, n, st->next_stamp++);
	if (!e->obj)
		store_attrs_free(attrs, n);
	goto out;
bad:
	e->failed_epoch = st->key_epoch;
	st->stats.bad_files++;
	log_warn("store %s: object file %s does not open (%s); ignored", st->dir, name,
		 store_status_str(s));
out:
	if (have_rec)
		store_record_clear(&rec);
	free(raw);
}

/* Lists the object files of the directory into a sorted id array. */
static store_status list_ids(int dirfd, uint8_t **ids, size_t *n, bool *saw_temps)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint8_t *arr = NULL, *grown;
	size_t count = 0, cap = 0;
	store_status s = STORE_OK;

	*ids = NULL;
	*n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return STORE_IO;
	}
	while ((de = readdir(d))) {
		uint8_t id[STORE_ID_LEN];

		if (file_is_temp(de->d_name))
			*saw_temps = true;
		if (!file_obj_name(de->d_name, id))
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(arr, cap * STORE_ID_LEN);
			if (!grown) {
				s = STORE_NOMEM;
				break;
			}
			arr = grown;
		}
		memcpy(arr + count * STORE_ID_LEN, id, STORE_ID_LEN);
		count++;
	}
	closedir(d);
	if (s != STORE_OK) {
		free(arr);
		return s;
	}
	if (count)
		qsort(arr, count, STORE_ID_LEN, id_cmp);
	*ids = arr;
	*n = count;
	return STORE_OK;
}

/* Re-reads the directory listing; keeps every entry whose file identity
 * is unchanged (with its decrypted object), so only new or changed files
 * are read again later. */
static store_status rescan_locked(store *st, int dirfd)
{
	store_status s;
	uint8_t *ids = NULL;
	size_t n = 0, kept = 0;
	entry *fresh = NULL;
	bool saw_temps = false;

	s = list_ids(dirfd, &ids, &n, &saw_temps);
	if (s != STORE_OK)
		return s;
	st->stats.rescans++;
	if (n) {
		fresh = calloc(n, sizeof(*fresh));
		if (!fresh) {
			free(ids);
			return STORE_NOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		entry *e = &fresh[kept];
		entry *old;
		char name[STORE_OBJ_NAME_LEN + 1];

		memcpy(e->id, ids + i * STORE_ID_LEN, STORE_ID_LEN);
		file_obj_hex(e->id, name);
		s = file_stat(dirfd, name, &e->ident);
		if (s == STORE_DAMAGED)
			log_warn("store %s: object file %s is not a regular file; ignored",
				 st->dir, name);
		if (s != STORE_OK)
			continue;   /* removed meanwhile, or not a regular file */
		old = find_entry_locked(st, e->id);
		if (old && file_ident_eq(&old->ident, &e->ident)) {
			*e = *old;
			old->obj = NULL;
		}
		kept++;
	}
	clear_cache_locked(st);
	st->entries = fresh;
	st->n_entries = kept;
	st->saw_temps = saw_temps;
	free(ids);
	return STORE_OK;
}

/* Brings the cache up to date for a reader: metadata, then the directory
 * only when the generation moved, then decrypts what became visible. */
static store_status refresh_locked(store *st)
{
	store_status s;
	int dirfd;
	uint64_t gen;
	bool gen_ok;

	s = refresh_meta_locked(st);
	if (s != STORE_OK)
		return s;
	if (!st->has_root)
		return STORE_NO_KEY;
	dirfd = file_open_dir(st->dir);
	if (dirfd < 0)
		return STORE_IO;
	gen_ok = file_gen_read(dirfd, &gen);
	if (!st->scanned || !gen_ok || gen != st->gen) {
		s = rescan_locked(st, dirfd);
		if (s != STORE_OK)
			goto out;
		st->gen = gen;
		st->scanned = gen_ok;
	}
	for (size_t i = 0; i < st->n_entries; i++)
		load_entry_locked(st, dirfd, &st->entries[i]);
out:
	close(dirfd);
	return s;
}

store_status store_objects_list(store *st, store_object ***objs, size_t *n)
{
	store_status s;
	store_object **arr = NULL;
	size_t count = 0;

	*objs = NULL;
	*n = 0;
	pthread_mutex_lock(&st->mu);
	s = refresh_locked(st);
	if (s != STORE_OK)
		goto out;
	if (st->n_entries) {
		arr = malloc(st->n_entries * sizeof(*arr));
		if (!arr) {
			s = STORE_NOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < st->n_entries; i++) {
		store_object *o = st->entries[i].obj;

		if (o && can_see_locked(st, o->is_private))
			arr[count++] = object_ref(o);
	}
	*objs = arr;
	*n = count;
out:
	pthread_mutex_unlock(&st->mu);
	return s;
}

static store_status get_visible_locked(store *st, const uint8_t id[STORE_ID_LEN],
				       store_object **obj)
{
	store_status s = refresh_locked(st);
	entry *e;

	*obj = NULL;
	if (s != STORE_OK)
		return s;
	e = find_entry_locked(st, id);
	if (!e || !e->obj || !can_see_locked(st, e->obj->is_private))
		return STORE_NOT_FOUND;
	*obj = object_ref(e->obj);
	return STORE_OK;
}

store_status store_object_get(store *st, const uint8_t id[STORE_ID_LEN], store_object **obj)
{
	store_status s;

	pthread_mutex_lock(&st->mu);
	s = get_visible_locked(st, id, obj);
	pthread_mutex_unlock(&st->mu);
	return s;
}

void store_get_stats(store *st, store_stats *stats)
{
	pthread_mutex_lock(&st->mu);
	*stats = st->stats;
	pthread_mutex_unlock(&st->mu);
}

/* ---- writing objects -------------------------------------------------- */

/* The key for a new version of an object, copied out under the mutex. */
static store_status object_key(store *st, bool is_private, uint8_t key[STORE_KEY_LEN])
{
	store_status s = STORE_NO_KEY;

	pthread_mutex_lock(&st->mu);
	if (can_see_locked(st, is_private)) {
		memcpy(key, is_private ? st->k_priv : st->k_pub, STORE_KEY_LEN);
		s = STORE_OK;
	}
	pthread_mutex_unlock(&st->mu);
	return s;
}

/* Seals pt for object id into a complete object record. */
static store_status seal_object(const uint8_t key[STORE_KEY_LEN],
				const uint8_t store_id[STORE_ID_LEN],
				const uint8_t id[STORE_ID_LEN], bool is_private,
				const wbuf *pt, wbuf *out)
{
	store_status s;
	uint8_t nonce[STORE_NONCE_LEN], tag[STORE_TAG_LEN];
	uint8_t head[STORE_OBJ_AAD_LEN];
	uint8_t aad[STORE_ID_LEN + STORE_OBJ_AAD_LEN];
	uint8_t *ct = malloc(pt->len);

	if (!ct)
		return STORE_NOMEM;
	s = crypt_random(nonce, sizeof(nonce));
	if (s != STORE_OK)
		goto out;
	record_obj_head(head, is_private ? STORE_OBJ_PRIVATE : 0, id, nonce);
	memcpy(aad, store_id, STORE_ID_LEN);
	memcpy(aad + STORE_ID_LEN, head, STORE_OBJ_AAD_LEN);
	s = crypt_gcm_seal(key, nonce, aad, sizeof(aad), pt->data, pt->len, ct, tag);
	if (s != STORE_OK)
		goto out;
	record_obj_build(out, head, ct, pt->len, tag);
	if (out->failed)
		s = out->too_big ? STORE_INVALID : STORE_NOMEM;
out:
	free(ct);
	return s;
}

/* Writes object id (new when is_new: the id must not exist yet; else it
 * must exist) under the lock, and puts the result in the cache. */
static store_status write_object(store *st, const uint8_t id_in[STORE_ID_LEN], bool is_new,
				 bool is_private, const CK_ATTRIBUTE *attrs, size_t n,
				 uint8_t id_out[STORE_ID_LEN])
{
	store_status s;
	txn t = { .dirfd = -1, .lockfd = -1 };
	uint8_t key[STORE_KEY_LEN], root[STORE_ROOT_LEN], k_mac[STORE_KEY_LEN];
	uint8_t id[STORE_ID_LEN];
	char name[STORE_OBJ_NAME_LEN + 1];
	wbuf pt, rec;
	file_ident ident;
	CK_ATTRIBUTE *copy = NULL;
	store_object *obj = NULL;

	wbuf_init(&pt, true);
	wbuf_init(&rec, false);
	s = store_attrs_dup(attrs, n, &copy);
	if (s == STORE_OK)
		s = record_attrs_build(&pt, attrs, n);
	if (s == STORE_OK)
		s = object_key(st, is_private, key);
	if (s != STORE_OK)
		goto out;
	s = txn_begin(st, &t, false);
	if (s == STORE_OK)
		s = txn_check_keys(st, &t, root, k_mac);
	if (s != STORE_OK)
		goto out;
	for (int tries = 0; ; tries++) {
		if (is_new) {
			s = crypt_random(id, sizeof(id));
			if (s != STORE_OK)
				goto out;
		} else {
			memcpy(id, id_in, sizeof(id));
		}
		file_obj_hex(id, name);
		s = file_stat(t.dirfd, name, NULL);
		if (is_new ? s == STORE_NOT_FOUND : s == STORE_OK)
			break;
		if (!is_new || tries == 3) {
			s = is_new ? STORE_IO : STORE_NOT_FOUND;
			goto out;
		}
	}
	s = seal_object(key, t.meta.store_id, id, is_private, &pt, &rec);
	if (s == STORE_OK)
		s = file_write_atomic(t.dirfd, name, rec.data, rec.len, &ident);
	if (s == STORE_OK)
		s = txn_commit(st, &t);
	if (s != STORE_OK)
		goto out;
	pthread_mutex_lock(&st->mu);
	obj = object_new(id, is_private, copy, n, st->next_stamp++);
	if (obj) {
		copy = NULL;
		if (put_entry_locked(st, id, &ident, obj) != STORE_OK) {
			store_object_release(obj);
			st->scanned = false;   /* the next list rescans and reads it */
		}
	} else {
		st->scanned = false;
	}
	pthread_mutex_unlock(&st->mu);
	if (id_out)
		memcpy(id_out, id, STORE_ID_LEN);
out:
	txn_end(&t);
	store_attrs_free(copy, n);
	wbuf_free(&pt);
	wbuf_free(&rec);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	return s;
}

store_status store_object_add(store *st, bool is_private, const CK_ATTRIBUTE *attrs,
			      size_t n, uint8_t id[STORE_ID_LEN])
{
	return write_object(st, NULL, true, is_private, attrs, n, id);
}

static store_status check_visible(store *st, const uint8_t id[STORE_ID_LEN])
{
	store_object *obj;
	store_status s = store_object_get(st, id, &obj);

	store_object_release(obj);
	return s;
}

store_status store_object_replace(store *st, const uint8_t id[STORE_ID_LEN], bool is_private,
				  const CK_ATTRIBUTE *attrs, size_t n)
{
	store_status s = check_visible(st, id);

	if (s != STORE_OK)
		return s;
	return write_object(st, id, false, is_private, attrs, n, NULL);
}

store_status store_object_remove(store *st, const uint8_t id[STORE_ID_LEN])
{
	store_status s;
	txn t = { .dirfd = -1, .lockfd = -1 };
	uint8_t root[STORE_ROOT_LEN], k_mac[STORE_KEY_LEN];
	char name[STORE_OBJ_NAME_LEN + 1];

	s = check_visible(st, id);
	if (s != STORE_OK)
		return s;
	s = txn_begin(st, &t, false);
	if (s == STORE_OK)
		s = txn_check_keys(st, &t, root, k_mac);
	if (s != STORE_OK)
		goto out;
	file_obj_hex(id, name);
	s = file_remove(t.dirfd, name);
	if (s == STORE_OK)
		s = txn_commit(st, &t);
	if (s != STORE_OK)
		goto out;
	pthread_mutex_lock(&st->mu);
	remove_entry_locked(st, id);
	pthread_mutex_unlock(&st->mu);
out:
	txn_end(&t);
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	return s;
}
