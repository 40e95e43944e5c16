/* The on-disk records of the sealed store (docs/store.md has the byte
 * layouts): fixed-width little-endian integers, a common 8-byte header
 * (magic "TPKS", u16 format version, u16 record type), and bounded parsing:
 * every length is checked against what is left of the input and against a
 * fixed limit, so a hostile file can cost at most STORE_MAX_FILE bytes of
 * memory.  store_record_parse is the entry point of the fuzz target.
 *
 * Builders and readers are sticky-failure buffers (STYLE.md rule 8): append
 * or take freely, check ->failed once at the end. */
#ifndef TP_STORE_RECORD_H
#define TP_STORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "store/store.h"

#define STORE_MAGIC "TPKS"
#define STORE_HDR_LEN 8

enum store_rec_type {
	STORE_REC_META = 1,      /* the metadata file */
	STORE_REC_OBJECT = 2,    /* one object file (sealed) */
	STORE_REC_ATTRS = 3,     /* an object's plaintext: its attribute list */
};

/* Limits a parser enforces; a writer refuses to exceed them too. */
#define STORE_MAX_FILE (1u << 20)          /* any file, and any plaintext */
#define STORE_MAX_SEALED (64u * 1024)      /* the sealed-root string */
#define STORE_MAX_ATTRS 256                /* attributes per object (and per template) */

#define STORE_KEY_LEN 32
#define STORE_NONCE_LEN 12
#define STORE_TAG_LEN 16
#define STORE_SALT_LEN 16
#define STORE_MAC_LEN 32

/* Metadata flags. */
#define STORE_META_PIN_MODEL 0x1u        /* "pin": true: user and SO PINs */
#define STORE_META_USER_PIN_SET 0x2u
#define STORE_META_KNOWN_FLAGS 0x3u

/* Kinds of wrapped private-objects key. */
enum store_wrap_kind {
	STORE_WRAP_USER = 1,     /* under HKDF(R || scrypt(user PIN)) */
	STORE_WRAP_SO = 2,       /* under HKDF(R || scrypt(SO PIN)) */
	STORE_WRAP_NOPIN = 3,    /* under HKDF(R, "no-pin") */
};
#define STORE_MAX_WRAPS 3

typedef struct store_wrap {
	uint8_t kind;
	uint8_t salt[STORE_SALT_LEN];      /* scrypt salt (zero for NOPIN) */
	uint8_t nonce[STORE_NONCE_LEN];
	uint8_t ct[STORE_KEY_LEN];
	uint8_t tag[STORE_TAG_LEN];
} store_wrap;

typedef struct store_meta {
	uint8_t store_id[STORE_ID_LEN];
	uint32_t flags;
	uint32_t user_fails;
	uint32_t so_fails;
	uint8_t kdf_log2n, kdf_r, kdf_p;   /* scrypt N = 2^log2n, r, p */
	uint8_t n_wraps;
	store_wrap wraps[STORE_MAX_WRAPS];
	char *sealed_root;                 /* NUL-terminated copy */
	size_t sealed_len;
	uint8_t mac[STORE_MAC_LEN];
	size_t mac_off;                    /* the MAC covers bytes [0, mac_off) */
} store_meta;

/* Object file: bytes [0, STORE_OBJ_AAD_LEN) are authenticated as AAD
 * (after the store id); the ciphertext follows. */
#define STORE_OBJ_AAD_LEN 40
#define STORE_OBJ_PRIVATE 0x1u

typedef struct store_obj_rec {
	uint32_t flags;
	uint8_t id[STORE_ID_LEN];
	uint8_t nonce[STORE_NONCE_LEN];
	uint8_t *ct;                       /* malloc'd copy */
	size_t ct_len;
	uint8_t tag[STORE_TAG_LEN];
	uint8_t aad_head[STORE_OBJ_AAD_LEN];
} store_obj_rec;

typedef struct store_record {
	uint16_t version;
	uint16_t type;
	union {
		store_meta meta;
		store_obj_rec obj;
		struct {
			CK_ATTRIBUTE *attrs;       /* owned; store_attrs_free */
			size_t n_attrs;
		} attrs;
	} u;
} store_record;

/* Parses one whole record.  STORE_OK, STORE_NEWER_FORMAT (valid header,
 * version above STORE_FORMAT_VERSION), STORE_DAMAGED (anything else wrong,
 * including trailing bytes), STORE_NOMEM.  On success release with
 * store_record_clear; on failure *out holds nothing to release. */
store_status store_record_parse(const uint8_t *buf, size_t len, store_record *out);
void store_record_clear(store_record *rec);

/* ---- builders -------------------------------------------------------- */

typedef struct wbuf {
	uint8_t *data;
	size_t len, cap;
	bool failed;
	bool too_big;            /* failed because of STORE_MAX_FILE */
	bool secret;             /* growth and free wipe the old storage */
} wbuf;

void wbuf_init(wbuf *b, bool secret);
void wbuf_free(wbuf *b);
void wbuf_add(wbuf *b, const void *p, size_t n);
void wbuf_u8(wbuf *b, uint8_t v);
void wbuf_u16(wbuf *b, uint16_t v);
void wbuf_u32(wbuf *b, uint32_t v);
void wbuf_u64(wbuf *b, uint64_t v);
void wbuf_header(wbuf *b, uint16_t type);

/* The metadata record up to (not including) the MAC; *mac_off = b->len.
 * The caller appends the MAC computed over b->data[0..len). */
void record_meta_build(wbuf *b, const store_meta *m);
/* The object record; ct already sealed with AAD = store id ||
 * the first STORE_OBJ_AAD_LEN bytes record_obj_head gives. */
void record_obj_head(uint8_t head[STORE_OBJ_AAD_LEN], uint32_t flags,
		     const uint8_t id[STORE_ID_LEN], const uint8_t nonce[STORE_NONCE_LEN]);
void record_obj_build(wbuf *b, const uint8_t head[STORE_OBJ_AAD_LEN],
		      const uint8_t *ct, size_t ct_len, const uint8_t tag[STORE_TAG_LEN]);
/* The attribute-list plaintext (secret buffer).  STORE_INVALID when an
 * attribute cannot be encoded (a CK_ULONG attribute of the wrong length, a
 * template inside a template, too many attributes). */
store_status record_attrs_build(wbuf *b, const CK_ATTRIBUTE *attrs, size_t n);

#endif
