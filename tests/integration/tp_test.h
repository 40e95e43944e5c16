/* tp_test: helpers shared by the end-to-end tests.
 *
 * The tests drive tang-pkcs11.so only through the standard PKCS#11 2.40 API
 * (dlopen + C_GetFunctionList), never through its internals, and check
 * every result against values computed independently here with OpenSSL from
 * the Tang server's key files (TANG_DB, see tests/fixtures/with-tangd).
 *
 * CHECK* macros record a failure (file:line, the expression, the CK_RV
 * names) and go on; REQUIRE* macros stop the test program.  tp_exit()
 * prints a summary and gives the exit status. */
#ifndef TP_TEST_H
#define TP_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

/* ---- results -------------------------------------------------------- */

extern int tp_failures;
extern int tp_checks;

const char *tp_rv_name(CK_RV rv);
void tp_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tp_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "ok"/"not ok" line per named case, TAP style (informative only). */
void tp_case_begin(const char *name);
void tp_case_end(void);
/* Exit status: 0 when no check failed, 1 otherwise. */
int tp_exit(void);
/* A peer or precondition is missing: exit 77 (skip), or fail under CI=true. */
void tp_skip(const char *why) __attribute__((noreturn));
bool tp_ci(void);

/* Threads check too: counted atomically (ThreadSanitizer runs these). */
#define TP_COUNT_CHECK() __atomic_add_fetch(&tp_checks, 1, __ATOMIC_RELAXED)

#define CHECK(cond)                                                      \
	do {                                                             \
		TP_COUNT_CHECK();                                           \
		if (!(cond))                                             \
			tp_fail(__FILE__, __LINE__, "check failed: %s", #cond); \
	} while (0)

#define CHECKF(cond, ...)                                                \
	do {                                                             \
		TP_COUNT_CHECK();                                           \
		if (!(cond))                                             \
			tp_fail(__FILE__, __LINE__, __VA_ARGS__);        \
	} while (0)

#define CHECK_RV(expr, want)                                             \
	do {                                                             \
		CK_RV got_rv_ = (expr), want_rv_ = (want);               \
		TP_COUNT_CHECK();                                           \
		if (got_rv_ != want_rv_)                                 \
			tp_fail(__FILE__, __LINE__, "%s: expected %s, got %s", \
				#expr, tp_rv_name(want_rv_), tp_rv_name(got_rv_)); \
	} while (0)

#define REQUIRE(cond)                                                    \
	do {                                                             \
		TP_COUNT_CHECK();                                           \
		if (!(cond)) {                                           \
			tp_fail(__FILE__, __LINE__, "required: %s", #cond); \
			exit(tp_exit());                                 \
		}                                                        \
	} while (0)

#define REQUIRE_RV(expr, want)                                           \
	do {                                                             \
		CK_RV got_rv_ = (expr), want_rv_ = (want);               \
		TP_COUNT_CHECK();                                           \
		if (got_rv_ != want_rv_) {                               \
			tp_fail(__FILE__, __LINE__, "%s: expected %s, got %s (required)", \
				#expr, tp_rv_name(want_rv_), tp_rv_name(got_rv_)); \
			exit(tp_exit());                                 \
		}                                                        \
	} while (0)

/* Byte strings equal; prints both in hex when not. */
#define CHECK_MEM(got, got_len, want, want_len, what)                    \
	tp_check_mem(__FILE__, __LINE__, (got), (got_len), (want), (want_len), (what))
bool tp_check_mem(const char *file, int line, const void *got, size_t got_len,
		  const void *want, size_t want_len, const char *what);

/* ---- the module ----------------------------------------------------- */

extern CK_FUNCTION_LIST_PTR P; /* from C_GetFunctionList */
extern void *tp_dl;            /* dlopen handle */

/* dlopen($TANG_PKCS11_MODULE) and C_GetFunctionList; stops on failure. */
void tp_load(void);
/* C_Initialize with CKF_OS_LOCKING_OK and pReserved (NULL: C_Initialize(NULL)). */
CK_RV tp_initialize(const char *reserved);
/* The slot whose token has this label; stops when there is none. */
CK_SLOT_ID tp_slot(const char *label);
CK_SESSION_HANDLE tp_open(CK_SLOT_ID slot);
/* Objects matching the template (at most max), or (size_t)-1 on error. */
size_t tp_find(CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
	       CK_OBJECT_HANDLE *out, size_t max);
/* Private (or public) key object with CKA_ID == id; 0 when none. */
CK_OBJECT_HANDLE tp_find_key(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
			     const uint8_t id[32]);
/* One attribute (allocates *val, caller frees); returns the CK_RV. */
CK_RV tp_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t,
	      uint8_t **val, CK_ULONG *len);
CK_ULONG tp_attr_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t);
int tp_attr_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t);
/* Label of a token blank padded to 32 bytes, unpadded copy into out[33]. */
void tp_unpad(const CK_UTF8CHAR *in, size_t n, char *out);

/* C_DeriveKey(CKM_ECDH1_DERIVE) then read CKA_VALUE of the new key (which is
 * destroyed again).  value_len 0 = no CKA_VALUE_LEN in the template.  On
 * CKR_OK *out_len is the value's length and the derived key's CKA_CLASS,
 * CKA_KEY_TYPE, CKA_VALUE_LEN and CKA_TOKEN were checked. */
CK_RV tp_derive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, ck_ec_kdf_t kdf,
		const uint8_t *shared, size_t shared_len,
		const uint8_t *peer, size_t peer_len,
		CK_KEY_TYPE key_type, CK_ULONG value_len,
		uint8_t *out, size_t *out_len);

/* ---- the Tang server (the fixture's key directory) ------------------ */

#define TP_P521_LEN 66

typedef struct {
	char kid[64];          /* S256 thumbprint, b64url (the file name) */
	uint8_t id[32];        /* the same, raw: CKA_ID */
	char path[4096];
	bool hidden;           /* rotated: .kid.jwk */
	uint8_t x[TP_P521_LEN], y[TP_P521_LEN], d[TP_P521_LEN];
	EVP_PKEY *pkey;        /* private + public */
} tp_server_key;

const char *tp_env(const char *name); /* required variable, stops if unset */
/* ECMR keys of $TANG_DB (hidden ones too when asked); returns the count.
 * The thumbprint of every key is recomputed and checked against its name. */
int tp_server_keys(tp_server_key *out, int max, bool with_hidden);
void tp_server_key_free(tp_server_key *k);
/* S256 thumbprint of the current (not hidden) ES512 signing key: the "thp"
 * a configuration pins.  false when there is none. */
bool tp_signing_thp(char out[64]);
/* $TANG_CTL stop|start. */
void tp_tang(const char *what);
/* Lines of $TANG_SERVER_LOG naming a POST (recovery requests). */
int tp_server_posts(void);
/* A loopback listener that never accepts nor answers (the kernel completes
 * the handshake): a hanging server.  port 0 = any free port, returned in
 * *port.  Returns the socket; close() it to end. */
int tp_blackhole(int *port);
/* A loopback port nobody listens on (connection refused). */
int tp_closed_port(void);

/* ---- crypto done here, independently of the module ------------------ */

EVP_PKEY *tp_ec_gen(const char *group); /* "P-521", "P-256", "P-384" */
/* Uncompressed point 04||X||Y; returns its length. */
size_t tp_ec_point(EVP_PKEY *k, uint8_t *out, size_t max);
EVP_PKEY *tp_ec_from_raw(const uint8_t *x, const uint8_t *y, const uint8_t *d); /* P-521 */
/* ECDH x coordinate (66 bytes for P-521); 0 on error. */
size_t tp_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z);
/* DER of the SubjectPublicKeyInfo; returns the length (caller frees *der). */
size_t tp_spki(EVP_PKEY *k, uint8_t **der);
/* ANSI X9.63 KDF, written here from the standard. */
void tp_x963(const EVP_MD *md, const uint8_t *z, size_t zl, const uint8_t *sh,
	     size_t shl, uint8_t *out, size_t outl);
/* The same through OpenSSL's EVP_KDF "X963KDF"; false on error. */
bool tp_x963_ossl(const char *digest, const uint8_t *z, size_t zl, const uint8_t *sh,
		  size_t shl, uint8_t *out, size_t outl);
/* base64url without padding; returns the decoded length or -1. */
long tp_b64u_decode(const char *in, uint8_t *out, size_t max);
void tp_b64u_encode(const uint8_t *in, size_t n, char *out);
void tp_hex(const uint8_t *in, size_t n, char *out);

/* ---- files, time, logs ---------------------------------------------- */

double tp_now(void);                     /* monotonic seconds */
char *tp_read_file(const char *path, size_t offset); /* NULL if absent */
size_t tp_file_size(const char *path);
void tp_write_file(const char *path, const char *text);
int tp_count_lines(const char *text);    /* non-empty lines */
bool tp_contains_ci(const char *hay, const char *needle);

#endif
