/* tp-store MODE: the sealed token store end to end (issue 4), through the
 * PKCS#11 API only, next to a real tangd.  Other processes are real
 * processes (fork, then C_Initialize of their own).
 *
 *   lifecycle  uninitialized token, C_InitToken (configured label only),
 *              SO and user PINs, flags, objects of every kind with exact
 *              CK_RVs, another process sees them, PIN counter and flags
 *              across processes, the SO resets a locked user PIN and the
 *              objects survive, logout and last-session-closed
 *   outage     Tang stopped: within the lease it works, after it
 *              CKR_DEVICE_ERROR (PIN counter untouched), Tang back: works
 *              again in the same process with the same handles; a
 *              hanging Tang: CKR_DEVICE_ERROR within the timeout while
 *              C_GetTokenInfo/C_OpenSession stay quick (no lock held)
 *   procs      4 processes x 200 token objects at once: exactly 800
 *   kill       kill -9 a writer: every object it got CKR_OK for is there
 *   nopin      "pin": false: protected authentication path, C_Login with a
 *              NULL PIN, a PIN given anyway is ignored (logged once)
 *   readonly   a store the process cannot write: CKF_WRITE_PROTECTED, reads
 *              work, writes CKR_TOKEN_WRITE_PROTECTED, files unchanged
 *   templates  3000 random templates through C_CreateObject, C_GenerateKey,
 *              C_SetAttributeValue, C_CopyObject: documented CK_RVs only
 *   rotate     tangd-rotate-keys: the store still opens (hidden key), and
 *              C_InitToken seals anew to the new key
 *   threads    4 threads create, find, read and destroy token objects at
 *              once while a 0-second lease runs out under them; creators
 *              racing threads that search all the time: every object keeps
 *              the handle C_CreateObject gave, none comes back destroyed
 *   damaged    truncated, newer-format and MAC-damaged metadata:
 *              C_GetTokenInfo answers, C_OpenSession (or the first use)
 *              CKR_TOKEN_NOT_RECOGNIZED, files byte-identical; a damaged
 *              object file is skipped, the others work */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <openssl/evp.h>

#include "tp_test.h"

#define SO_PIN "so-secret-1"
#define USER_PIN "1234"
#define MAX_TRIES 10

static char conf_path[4096];
static char store_dir[4096];
static char reserved[4200];
static CK_SLOT_ID slot;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

/* ---- set-up ---------------------------------------------------------- */

static void write_conf(const char *base, const char *mode, const char *extra)
{
	char text[8192];

	snprintf(store_dir, sizeof store_dir, "%s/store-%s", base, mode);
	snprintf(conf_path, sizeof conf_path, "%s/store-%s.conf", base, mode);
	snprintf(text, sizeof text,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" },"
		 " \"store\": \"%s\", \"timeout\": 5%s%s } ] }\n",
		 tp_env("TANG_URL"), tp_env("TANG_THP"), store_dir, *extra ? ", " : "", extra);
	tp_write_file(conf_path, text);
	snprintf(reserved, sizeof reserved, "config=%s", conf_path);
}

static void init(void)
{
	REQUIRE_RV(tp_initialize(reserved), CKR_OK);
	slot = tp_slot("tang");
}

static CK_FLAGS token_flags(void)
{
	CK_TOKEN_INFO ti;

	REQUIRE_RV(P->C_GetTokenInfo(slot, &ti), CKR_OK);
	return ti.flags;
}

static CK_SESSION_HANDLE open_rw(void)
{
	CK_SESSION_HANDLE s = 0;

	REQUIRE_RV(P->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
		   CKR_OK);
	return s;
}

static void pad32(CK_UTF8CHAR out[32], const char *s)
{
	memset(out, ' ', 32);
	memcpy(out, s, strlen(s));
}

static void init_token(const char *so_pin)
{
	CK_UTF8CHAR label[32];

	pad32(label, "tang");
	REQUIRE_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)so_pin, so_pin ? strlen(so_pin) : 0, label),
		   CKR_OK);
}

static CK_RV login(CK_SESSION_HANDLE s, CK_USER_TYPE u, const char *pin)
{
	return P->C_Login(s, u, (CK_UTF8CHAR *)pin, pin ? strlen(pin) : 0);
}

/* A secret key with a readable value (not sensitive, extractable). */
static CK_RV make_secret(CK_SESSION_HANDLE s, const char *label, const uint8_t *v, size_t len,
			 bool token, bool priv, CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_CLASS c = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_BBOOL t = token, p = priv;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &c, sizeof c }, { CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_TOKEN, &t, 1 }, { CKA_PRIVATE, &p, 1 },
		{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
		{ CKA_LABEL, (void *)label, strlen(label) }, { CKA_ID, "\x01\x02", 2 },
		{ CKA_VALUE, (void *)v, len },
	};
	return P->C_CreateObject(s, tmpl, 9, h);
}

static CK_RV make_data(CK_SESSION_HANDLE s, const char *label, const char *value, bool token,
		       bool priv, CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_CLASS c = CKO_DATA;
	CK_BBOOL t = token, p = priv;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &c, sizeof c }, { CKA_TOKEN, &t, 1 }, { CKA_PRIVATE, &p, 1 },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_VALUE, (void *)value, strlen(value) },
	};
	return P->C_CreateObject(s, tmpl, 5, h);
}

/* Objects labelled label (any class): the count, the first in *h. */
static size_t find_label(CK_SESSION_HANDLE s, const char *label, CK_OBJECT_HANDLE *h)
{
	CK_ATTRIBUTE t = { CKA_LABEL, (void *)label, strlen(label) };
	CK_OBJECT_HANDLE found[4] = { 0 };
	size_t n = tp_find(s, &t, 1, found, 4);

	if (h)
		*h = n >= 1 && n != (size_t)-1 ? found[0] : 0;
	return n;
}

static bool value_is(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const void *v, size_t len)
{
	uint8_t *got = NULL;
	CK_ULONG got_len = 0;
	CK_RV rv = tp_attr(s, h, CKA_VALUE, &got, &got_len);
	bool ok = rv == CKR_OK && got_len == len && memcmp(got, v, len) == 0;

	free(got);
	return ok;
}

static char *log_text(void)
{
	return tp_read_file(tp_env("TANG_PKCS11_LOG"), 0);
}

/* Runs fn in a child process (its own C_Initialize); true if it passed. */
static bool in_child(void (*fn)(void *), void *arg)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		tp_failures = 0;
		fn(arg);
		_exit(tp_failures ? 1 : 0);
	}
	REQUIRE(pid > 0);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* SHA-256 over every file of the store (names and contents). */
static void store_digest(const char *dir, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (int i = 0; i < n; i++) {
		char path[8192];
		char *text;

		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
			text = tp_read_file(path, 0);
			EVP_DigestUpdate(ctx, names[i]->d_name, strlen(names[i]->d_name) + 1);
			if (text) {
				size_t len = tp_file_size(path);

				EVP_DigestUpdate(ctx, text, len);
				free(text);
			}
		}
		free(names[i]);
	}
	free(names);
	EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
}

/* ---- lifecycle ------------------------------------------------------- */

static const uint8_t V1[32] = "0123456789abcdef0123456789ABCDEF";

static void child_sees(void *arg)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0;

	(void)arg;
	init();
	s = open_rw();
	/* Public objects with Tang alone, private ones after login. */
	CHECK(find_label(s, "d-pub", &h) == 1 && value_is(s, h, "hello", 5));
	CHECK(find_label(s, "k-renamed", NULL) == 0);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_OK);
	CHECK(find_label(s, "k-renamed", &h) == 1 && value_is(s, h, V1, 32));
	CHECK(find_label(s, "k-priv", NULL) == 0);
	CHECK(find_label(s, "tmp", NULL) == 0);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void child_wrong_pins(void *arg)
{
	int n = *(int *)arg;
	CK_SESSION_HANDLE s;

	init();
	s = open_rw();
	for (int i = 0; i < n; i++)
		CHECK_RV(login(s, CKU_USER, "9999"), CKR_PIN_INCORRECT);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void child_locked(void *arg)
{
	CK_SESSION_HANDLE s;

	(void)arg;
	init();
	s = open_rw();
	CHECK_RV(login(s, CKU_USER, "9999"), CKR_PIN_INCORRECT);    /* the last try */
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);      /* even the right one */
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void objects_negative(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS sk = CKO_SECRET_KEY, pk = CKO_PRIVATE_KEY;
	CK_KEY_TYPE aes = CKK_AES, gen = CKK_GENERIC_SECRET;
	CK_ULONG len16 = 16, len20 = 20;
	CK_OBJECT_HANDLE h = 0;
	CK_MECHANISM aes_gen = { CKM_AES_KEY_GEN, NULL, 0 };

	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sk, sizeof sk }, { CKA_KEY_TYPE, &aes, sizeof aes },
				     { CKA_VALUE, (void *)V1, 32 }, { CKA_VALUE_LEN, &len16, sizeof len16 } };
		CHECK_RV(P->C_CreateObject(s, t, 4, &h), CKR_TEMPLATE_INCONSISTENT);
		CHECK_RV(P->C_CreateObject(s, t, 2, &h), CKR_TEMPLATE_INCOMPLETE);
		t[2].ulValueLen = 15;
		CHECK_RV(P->C_CreateObject(s, t, 3, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		CHECK_RV(P->C_CreateObject(s, t + 1, 2, &h), CKR_TEMPLATE_INCOMPLETE);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sk, sizeof sk }, { CKA_KEY_TYPE, &aes, sizeof aes },
				     { CKA_VALUE, (void *)V1, 32 }, { CKA_LOCAL, &yes, 1 } };
		CHECK_RV(P->C_CreateObject(s, t, 4, &h), CKR_ATTRIBUTE_READ_ONLY);
		t[3].type = CKA_MODULUS;
		CHECK_RV(P->C_CreateObject(s, t, 4, &h), CKR_ATTRIBUTE_TYPE_INVALID);
		t[3].type = CKA_SENSITIVE;
		t[3].ulValueLen = 4;
		CHECK_RV(P->C_CreateObject(s, t, 4, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		t[0].pValue = &pk;
		CHECK_RV(P->C_CreateObject(s, t, 3, &h), CKR_ATTRIBUTE_VALUE_INVALID);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_VALUE_LEN, &len20, sizeof len20 }, { CKA_KEY_TYPE, &gen, sizeof gen },
				     { CKA_VALUE, (void *)V1, 32 } };
		CHECK_RV(P->C_GenerateKey(s, &aes_gen, t, 1, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		CHECK_RV(P->C_GenerateKey(s, &aes_gen, t + 1, 1, &h), CKR_TEMPLATE_INCONSISTENT);
		t[0].pValue = &len16;
		CHECK_RV(P->C_GenerateKey(s, &aes_gen, t + 2, 1, &h), CKR_ATTRIBUTE_READ_ONLY);
		CHECK_RV(P->C_GenerateKey(s, &aes_gen, NULL, 0, &h), CKR_TEMPLATE_INCOMPLETE);
		aes_gen.mechanism = CKM_AES_CBC;
		CHECK_RV(P->C_GenerateKey(s, &aes_gen, t, 1, &h), CKR_MECHANISM_INVALID);
	}
	{
		/* Attribute values are bounded (1 MiB), session objects too. */
		CK_OBJECT_CLASS dc = CKO_DATA;
		size_t big = (size_t)1 << 20;
		uint8_t *v = calloc(1, big + 1);
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &dc, sizeof dc }, { CKA_VALUE, v, big + 1 } };

		CHECK_RV(P->C_CreateObject(s, t, 2, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		t[1].ulValueLen = big;
		CHECK_RV(P->C_CreateObject(s, t, 2, &h), CKR_OK);
		CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
		t[1].ulValueLen = (CK_ULONG)1 << 62;
		CHECK_RV(P->C_CreateObject(s, t, 2, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		free(v);
	}
}

/* C_DeriveKey on the Tang key with CKA_PRIVATE true: a private object,
 * which only a logged-in user may make (PKCS#11 2.40 §5.7).  The peer is
 * the Tang public key's own point (any valid point will do). */
static CK_RV derive_private(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS pc = CKO_PUBLIC_KEY, kc = CKO_PRIVATE_KEY, sc = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_EC, gt = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE fp[] = { { CKA_CLASS, &pc, sizeof pc }, { CKA_KEY_TYPE, &kt, sizeof kt } };
	CK_ATTRIBUTE fk[] = { { CKA_CLASS, &kc, sizeof kc }, { CKA_KEY_TYPE, &kt, sizeof kt } };
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE, out;
	CK_ULONG n = 0;
	uint8_t *point = NULL;
	CK_ULONG point_len = 0;
	CK_RV rv;

	REQUIRE_RV(P->C_FindObjectsInit(s, fp, 2), CKR_OK);
	REQUIRE_RV(P->C_FindObjects(s, &pub, 1, &n), CKR_OK);
	REQUIRE_RV(P->C_FindObjectsFinal(s), CKR_OK);
	REQUIRE(n == 1);
	REQUIRE_RV(P->C_FindObjectsInit(s, fk, 2), CKR_OK);
	REQUIRE_RV(P->C_FindObjects(s, &priv, 1, &n), CKR_OK);
	REQUIRE_RV(P->C_FindObjectsFinal(s), CKR_OK);
	REQUIRE(n == 1);
	REQUIRE_RV(tp_attr(s, pub, CKA_EC_POINT, &point, &point_len), CKR_OK);

	CK_ECDH1_DERIVE_PARAMS ep = { CKD_NULL, 0, NULL, point_len, point };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &ep, sizeof ep };
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &sc, sizeof sc }, { CKA_KEY_TYPE, &gt, sizeof gt },
			     { CKA_PRIVATE, &yes, 1 } };
	rv = P->C_DeriveKey(s, &m, priv, t, 3, &out);
	if (rv == CKR_OK)
		CHECK(tp_attr_bool(s, out, CKA_PRIVATE) == 1);
	free(point);
	return rv;
}

static void lifecycle(void)
{
	CK_SESSION_HANDLE s, ro;
	CK_SESSION_INFO si;
	CK_UTF8CHAR label[32];
	CK_OBJECT_HANDLE hk = 0, hd = 0, hc = 0, hg = 0, hgs = 0, htmp = 0, h = 0;
	CK_FLAGS f;
	char *log;
	int n;

	tp_case_begin("uninitialized store");
	init();
	f = token_flags();
	CHECKF(f == (CKF_RNG | CKF_LOGIN_REQUIRED), "flags 0x%lx", (unsigned long)f);
	s = open_rw();
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_USER_PIN_NOT_INITIALIZED);
	CHECK(find_label(s, "x", NULL) == 0);
	CHECK_RV(make_data(s, "x", "y", true, false, &h), CKR_TEMPLATE_INCONSISTENT);
	pad32(label, "tang");
	CHECK_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)SO_PIN, strlen(SO_PIN), label), CKR_SESSION_EXISTS);
	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	tp_case_end();

	tp_case_begin("C_InitToken");
	pad32(label, "other");
	CHECK_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)SO_PIN, strlen(SO_PIN), label), CKR_ARGUMENTS_BAD);
	log = log_text();
	CHECK(tp_contains_ci(log, "label \"other\" refused: the label comes from the configuration"));
	free(log);
	pad32(label, "tang");
	CHECK_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)"12", 2, label), CKR_PIN_LEN_RANGE);
	CHECK_RV(P->C_InitToken(slot, NULL, 0, label), CKR_ARGUMENTS_BAD);
	CHECK(access(store_dir, F_OK) != 0);  /* nothing created by refusals */
	init_token(SO_PIN);
	f = token_flags();
	CHECKF(f == (CKF_RNG | CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED), "flags 0x%lx",
	       (unsigned long)f);
	tp_case_end();

	tp_case_begin("SO login and C_InitPIN");
	ro = tp_open(slot);
	s = open_rw();
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_SESSION_READ_ONLY_EXISTS);
	CHECK_RV(P->C_CloseSession(ro), CKR_OK);
	CHECK_RV(login(s, CKU_SO, "wrong-so"), CKR_PIN_INCORRECT);
	CHECK(token_flags() & CKF_SO_PIN_COUNT_LOW);
	CHECK_RV(login(s, CKU_SO, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)USER_PIN, 4), CKR_USER_NOT_LOGGED_IN);
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_OK);
	CHECK(!(token_flags() & CKF_SO_PIN_COUNT_LOW));
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.state == CKS_RW_SO_FUNCTIONS);
	CHECK_RV(P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro),
		 CKR_SESSION_READ_WRITE_SO_EXISTS);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)"12", 2), CKR_PIN_LEN_RANGE);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)USER_PIN, 4), CKR_OK);
	/* The SO changes the SO PIN (C_SetPIN in an SO session), and back. */
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)"bad-old", 7, (CK_UTF8CHAR *)"so-new-2", 8),
		 CKR_PIN_INCORRECT);
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)SO_PIN, strlen(SO_PIN), (CK_UTF8CHAR *)"so-new-2", 8),
		 CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_PIN_INCORRECT);
	CHECK_RV(login(s, CKU_SO, "so-new-2"), CKR_OK);
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)"so-new-2", 8, (CK_UTF8CHAR *)SO_PIN, strlen(SO_PIN)),
		 CKR_OK);
	f = token_flags();
	CHECKF(f == (CKF_RNG | CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED),
	       "flags 0x%lx", (unsigned long)f);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
	tp_case_end();

	tp_case_begin("user login and objects");
	CHECK_RV(derive_private(s), CKR_USER_NOT_LOGGED_IN);
	CHECK_RV(login(s, CKU_USER, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_OK);
	CHECK_RV(derive_private(s), CKR_OK);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.state == CKS_RW_USER_FUNCTIONS);
	CHECK_RV(make_secret(s, "k-priv", V1, 32, true, true, &hk), CKR_OK);
	CHECK_RV(make_data(s, "d-pub", "hello", true, false, &hd), CKR_OK);
	CHECK_RV(make_data(s, "tmp", "gone soon", true, false, &htmp), CKR_OK);
	{
		CK_OBJECT_CLASS c = CKO_CERTIFICATE;
		CK_CERTIFICATE_TYPE ct = CKC_X_509, bad = CKC_X_509_ATTR_CERT;
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &c, sizeof c }, { CKA_CERTIFICATE_TYPE, &ct, sizeof ct },
			{ CKA_TOKEN, &yes, 1 }, { CKA_LABEL, "c-pub", 5 },
			{ CKA_VALUE, "\x30\x03\x02\x01\x01", 5 }, { CKA_SUBJECT, "\x30\x00", 2 },
		};
		CHECK_RV(P->C_CreateObject(s, t, 6, &hc), CKR_OK);
		CHECK(tp_attr_bool(s, hc, CKA_PRIVATE) == 0);
		CHECK(tp_attr_bool(s, hc, CKA_TRUSTED) == 0);
		CHECK_RV(P->C_CreateObject(s, t, 5, &h), CKR_TEMPLATE_INCOMPLETE);
		t[1].pValue = &bad;
		CHECK_RV(P->C_CreateObject(s, t, 6, &h), CKR_ATTRIBUTE_VALUE_INVALID);
	}
	{
		CK_MECHANISM m = { CKM_AES_KEY_GEN, NULL, 0 };
		CK_ULONG len = 32;
		CK_ATTRIBUTE t[] = { { CKA_VALUE_LEN, &len, sizeof len }, { CKA_TOKEN, &yes, 1 },
				     { CKA_LABEL, "gen", 3 } };
		CK_MECHANISM g = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };
		CK_ULONG glen = 20;
		CK_ATTRIBUTE gt[] = { { CKA_VALUE_LEN, &glen, sizeof glen }, { CKA_EXTRACTABLE, &yes, 1 },
				      { CKA_SENSITIVE, &no, 1 } };
		uint8_t *v = NULL;
		CK_ULONG vl = 0;

		CHECK_RV(P->C_GenerateKey(s, &m, t, 3, &hg), CKR_OK);
		CHECK(tp_attr_ulong(s, hg, CKA_CLASS) == CKO_SECRET_KEY);
		CHECK(tp_attr_ulong(s, hg, CKA_KEY_TYPE) == CKK_AES);
		CHECK(tp_attr_ulong(s, hg, CKA_VALUE_LEN) == 32);
		CHECK(tp_attr_ulong(s, hg, CKA_KEY_GEN_MECHANISM) == CKM_AES_KEY_GEN);
		CHECK(tp_attr_bool(s, hg, CKA_LOCAL) == 1);
		CHECK(tp_attr_bool(s, hg, CKA_PRIVATE) == 1);  /* the store token's default */
		CHECK(tp_attr_bool(s, hg, CKA_ALWAYS_SENSITIVE) == 1);
		CHECK(tp_attr_bool(s, hg, CKA_NEVER_EXTRACTABLE) == 1);
		CHECK_RV(tp_attr(s, hg, CKA_VALUE, &v, &vl), CKR_ATTRIBUTE_SENSITIVE);
		CHECK_RV(P->C_GenerateKey(s, &g, gt, 3, &hgs), CKR_OK);
		CHECK(tp_attr_bool(s, hgs, CKA_TOKEN) == 0);
		CHECK(tp_attr_bool(s, hgs, CKA_ALWAYS_SENSITIVE) == 0);
		CHECK(tp_attr_bool(s, hgs, CKA_NEVER_EXTRACTABLE) == 0);
		CHECK_RV(tp_attr(s, hgs, CKA_VALUE, &v, &vl), CKR_OK);
		CHECK(vl == 20);
		free(v);
	}
	objects_negative(s);
	tp_case_end();

	tp_case_begin("set, copy, destroy, size");
	{
		CK_ATTRIBUTE lab = { CKA_LABEL, "k-renamed", 9 };
		CK_ATTRIBUTE sens_t = { CKA_SENSITIVE, &yes, 1 }, sens_f = { CKA_SENSITIVE, &no, 1 };
		CK_ATTRIBUTE ext_t = { CKA_EXTRACTABLE, &yes, 1 }, ext_f = { CKA_EXTRACTABLE, &no, 1 };
		CK_ATTRIBUTE tok = { CKA_TOKEN, &no, 1 }, val = { CKA_VALUE, (void *)V1, 16 };
		CK_ATTRIBUTE copy_t[] = { { CKA_TOKEN, &no, 1 }, { CKA_LABEL, "copy", 4 } };
		CK_ATTRIBUTE nocopy = { CKA_COPYABLE, &no, 1 };
		CK_OBJECT_HANDLE hs = 0, hcopy = 0;
		CK_ULONG size = 0;

		CHECK_RV(P->C_SetAttributeValue(s, hk, &lab, 1), CKR_OK);
		CHECK(find_label(s, "k-renamed", &h) == 1 && h == hk);
		CHECK(find_label(s, "k-priv", NULL) == 0);
		CHECK_RV(P->C_SetAttributeValue(s, hk, &tok, 1), CKR_ATTRIBUTE_READ_ONLY);
		CHECK_RV(P->C_SetAttributeValue(s, hk, &val, 1), CKR_ATTRIBUTE_READ_ONLY);
		/* Sticky attributes on a session copy. */
		CHECK_RV(P->C_CopyObject(s, hk, copy_t, 2, &hs), CKR_OK);
		CHECK(value_is(s, hs, V1, 32));
		CHECK(tp_attr_bool(s, hs, CKA_TOKEN) == 0);
		CHECK_RV(P->C_SetAttributeValue(s, hs, &sens_t, 1), CKR_OK);
		CHECK_RV(P->C_SetAttributeValue(s, hs, &sens_f, 1), CKR_ATTRIBUTE_READ_ONLY);
		CHECK_RV(P->C_SetAttributeValue(s, hs, &ext_f, 1), CKR_OK);
		CHECK_RV(P->C_SetAttributeValue(s, hs, &ext_t, 1), CKR_ATTRIBUTE_READ_ONLY);
		CHECK_RV(P->C_SetAttributeValue(s, hs, &nocopy, 1), CKR_OK);
		CHECK_RV(P->C_CopyObject(s, hs, NULL, 0, &hcopy), CKR_ACTION_PROHIBITED);
		CHECK_RV(P->C_GetObjectSize(s, hk, &size), CKR_OK);
		CHECK(size > 32 && size != CK_UNAVAILABLE_INFORMATION);
		CHECK_RV(P->C_DestroyObject(s, htmp), CKR_OK);
		CHECK(find_label(s, "tmp", NULL) == 0);
		CHECK_RV(P->C_DestroyObject(s, htmp), CKR_OBJECT_HANDLE_INVALID);
	}
	/* Read-only sessions: no changes to token objects, no C_SetPIN. */
	ro = tp_open(slot);
	CHECK_RV(P->C_SetPIN(ro, (CK_UTF8CHAR *)USER_PIN, 4, (CK_UTF8CHAR *)"5555", 4),
		 CKR_SESSION_READ_ONLY);
	CHECK_RV(make_data(ro, "ro", "x", true, false, &h), CKR_SESSION_READ_ONLY);
	CHECK_RV(make_data(ro, "ro-session", "x", false, false, &h), CKR_OK);
	CHECK_RV(P->C_DestroyObject(ro, hd), CKR_SESSION_READ_ONLY);
	{
		CK_ATTRIBUTE lab = { CKA_LABEL, "no", 2 };

		CHECK_RV(P->C_SetAttributeValue(ro, hd, &lab, 1), CKR_SESSION_READ_ONLY);
	}
	CHECK_RV(P->C_CloseSession(ro), CKR_OK);
	tp_case_end();

	tp_case_begin("another process sees the objects");
	CHECK(in_child(child_sees, NULL));
	tp_case_end();

	tp_case_begin("PIN counter across processes");
	n = 3;
	CHECK(in_child(child_wrong_pins, &n));
	f = token_flags();
	CHECKF((f & CKF_USER_PIN_COUNT_LOW) && !(f & (CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)),
	       "flags 0x%lx", (unsigned long)f);
	n = MAX_TRIES - 1 - 3;
	CHECK(in_child(child_wrong_pins, &n));
	f = token_flags();
	CHECKF((f & CKF_USER_PIN_FINAL_TRY) && !(f & CKF_USER_PIN_LOCKED), "flags 0x%lx",
	       (unsigned long)f);
	CHECK(in_child(child_locked, NULL));
	f = token_flags();
	CHECKF(f & CKF_USER_PIN_LOCKED, "flags 0x%lx", (unsigned long)f);
	tp_case_end();

	tp_case_begin("the SO resets the user PIN, objects survive");
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK(find_label(s, "k-renamed", NULL) == 0);
	CHECK_RV(P->C_GetAttributeValue(s, hk, &(CK_ATTRIBUTE){ CKA_LABEL, NULL, 0 }, 1),
		 CKR_OBJECT_HANDLE_INVALID);
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_OK);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)"4321", 4), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	f = token_flags();
	CHECKF(!(f & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)),
	       "flags 0x%lx", (unsigned long)f);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_PIN_INCORRECT);
	CHECK_RV(login(s, CKU_USER, "4321"), CKR_OK);
	CHECK(find_label(s, "k-renamed", &h) == 1 && value_is(s, h, V1, 32));
	CHECK(find_label(s, "gen", NULL) == 1);
	/* C_SetPIN: the user's own PIN. */
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)"0000", 4, (CK_UTF8CHAR *)"5678", 4), CKR_PIN_INCORRECT);
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)"4321", 4, (CK_UTF8CHAR *)"56", 2), CKR_PIN_LEN_RANGE);
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)"4321", 4, (CK_UTF8CHAR *)"5678", 4), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(login(s, CKU_USER, "4321"), CKR_PIN_INCORRECT);
	CHECK_RV(login(s, CKU_USER, "5678"), CKR_OK);
	tp_case_end();

	tp_case_begin("closing the last session logs out");
	CHECK_RV(P->C_CloseAllSessions(slot), CKR_OK);
	s = open_rw();
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.state == CKS_RW_PUBLIC_SESSION);
	CHECK(find_label(s, "k-renamed", NULL) == 0);
	CHECK(find_label(s, "d-pub", NULL) == 1);
	tp_case_end();

	tp_case_begin("re-initialization needs the SO PIN and wipes the objects");
	CHECK_RV(P->C_CloseAllSessions(slot), CKR_OK);
	pad32(label, "tang");
	CHECK_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)"not-the-so", 10, label), CKR_PIN_INCORRECT);
	init_token(SO_PIN);
	s = open_rw();
	CHECK(find_label(s, "d-pub", NULL) == 0);
	CHECK(!(token_flags() & CKF_USER_PIN_INITIALIZED));
	tp_case_end();
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- outage ---------------------------------------------------------- */

#define LEASE 8 /* generous: "within the lease" must hold on a loaded machine */

static volatile int probing;
static double probe_worst;
static int probe_rounds;

/* Calls that never need the network, while another thread waits for Tang. */
static void *prober(void *arg)
{
	(void)arg;
	while (__atomic_load_n(&probing, __ATOMIC_SEQ_CST)) {
		CK_TOKEN_INFO ti;
		CK_SESSION_HANDLE s2 = 0;
		CK_SESSION_INFO si;
		double t0 = tp_now(), dt;
		bool ok = P->C_GetTokenInfo(slot, &ti) == CKR_OK &&
			  P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2) == CKR_OK &&
			  P->C_GetSessionInfo(s2, &si) == CKR_OK && P->C_CloseSession(s2) == CKR_OK;

		dt = tp_now() - t0;
		if (!ok)
			dt = 99;
		if (dt > probe_worst)
			probe_worst = dt;
		probe_rounds++;
		usleep(20000);
	}
	return NULL;
}

static void outage(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0, h2 = 0;
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_ATTRIBUTE by_class = { CKA_CLASS, &data, sizeof data };
	CK_SESSION_INFO si;
	int posts;

	init();
	init_token(SO_PIN);
	s = open_rw();
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_OK);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)USER_PIN, 4), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(make_data(s, "o", "value-o", true, false, &h), CKR_OK);
	sleep(LEASE + 1);

	tp_case_begin("within the lease Tang is not needed");
	posts = tp_server_posts();
	CHECK(find_label(s, "o", &h2) == 1 && h2 == h);  /* recovers R: one exchange */
	CHECK(tp_server_posts() == posts + 1);
	tp_tang("stop");
	CHECK(value_is(s, h, "value-o", 7));
	CHECK(find_label(s, "o", NULL) == 1);
	tp_case_end();

	tp_case_begin("after the lease: CKR_DEVICE_ERROR");
	sleep(LEASE + 1);
	CHECK_RV(P->C_FindObjectsInit(s, &by_class, 1), CKR_DEVICE_ERROR);
	CHECK_RV(P->C_GetAttributeValue(s, h, &(CK_ATTRIBUTE){ CKA_VALUE, NULL, 0 }, 1),
		 CKR_DEVICE_ERROR);
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.ulDeviceError != 0);
	/* A PIN cannot be checked: not counted either. */
	CHECK_RV(login(s, CKU_USER, "9999"), CKR_DEVICE_ERROR);
	CHECK(!(token_flags() & CKF_USER_PIN_COUNT_LOW));
	/* Searches that cannot match a store object need no Tang. */
	{
		CK_ATTRIBUTE session_only = { CKA_TOKEN, &no, 1 };
		CK_OBJECT_HANDLE x[2];

		CHECK(tp_find(s, &session_only, 1, x, 2) == 0);
	}
	tp_case_end();

	tp_case_begin("a hanging Tang: CKR_DEVICE_ERROR within the timeout, no lock held");
	{
		int port = atoi(tp_env("TANG_PORT"));
		int hole = tp_blackhole(&port);
		pthread_t th;
		double t0 = tp_now(), dt;

		__atomic_store_n(&probing, 1, __ATOMIC_SEQ_CST);
		REQUIRE(pthread_create(&th, NULL, prober, NULL) == 0);
		CHECK_RV(P->C_FindObjectsInit(s, &by_class, 1), CKR_DEVICE_ERROR);
		dt = tp_now() - t0;
		__atomic_store_n(&probing, 0, __ATOMIC_SEQ_CST);
		pthread_join(th, NULL);
		close(hole);
		/* Correctness bounds, generous: the token's timeout is 5 s. */
		CHECKF(dt < 5.0 + 5.0, "the search took %.1f s", dt);
		CHECKF(probe_worst < 1.0 && probe_rounds > 0,
		       "C_GetTokenInfo/C_OpenSession/C_GetSessionInfo took up to %.2f s (%d rounds) during the exchange",
		       probe_worst, probe_rounds);
	}
	tp_case_end();

	tp_case_begin("Tang back: works again, same handles");
	tp_tang("start");
	CHECK(value_is(s, h, "value-o", 7));
	CHECK(find_label(s, "o", &h2) == 1 && h2 == h);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_OK);
	tp_case_end();
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- procs: 4 x 200 -------------------------------------------------- */

#define PROCS 4
#define PER_PROC 200

static void child_writer(void *arg)
{
	int id = *(int *)arg;
	CK_SESSION_HANDLE s;

	init();
	s = open_rw();
	for (int j = 0; j < PER_PROC; j++) {
		char label[32], value[32];
		CK_OBJECT_HANDLE h;

		snprintf(label, sizeof label, "p%d-%d", id, j);
		snprintf(value, sizeof value, "v%d-%d", id, j);
		CHECK_RV(make_data(s, label, value, true, false, &h), CKR_OK);
	}
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void procs(void)
{
	pid_t pids[PROCS];
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_ATTRIBUTE by_class = { CKA_CLASS, &data, sizeof data };
	CK_OBJECT_HANDLE *all = calloc(2 * PROCS * PER_PROC, sizeof(*all));
	size_t n;
	int bad = 0;

	init();
	init_token(SO_PIN);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			tp_failures = 0;
			child_writer(&i);
			_exit(tp_failures ? 1 : 0);
		}
		REQUIRE(pids[i] > 0);
	}
	for (int i = 0; i < PROCS; i++) {
		int status = 0;

		REQUIRE(waitpid(pids[i], &status, 0) == pids[i]);
		CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", i);
	}
	init();
	s = open_rw();
	n = tp_find(s, &by_class, 1, all, 2 * PROCS * PER_PROC);
	CHECKF(n == PROCS * PER_PROC, "%zu objects, expected %d", n, PROCS * PER_PROC);
	for (int i = 0; i < PROCS; i++) {
		for (int j = 0; j < PER_PROC; j += 7) {
			char label[32], value[32];
			CK_OBJECT_HANDLE h = 0;

			snprintf(label, sizeof label, "p%d-%d", i, j);
			snprintf(value, sizeof value, "v%d-%d", i, j);
			if (find_label(s, label, &h) != 1 || !value_is(s, h, value, strlen(value)))
				bad++;
		}
	}
	CHECKF(bad == 0, "%d objects missing or wrong", bad);
	free(all);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- kill -9 --------------------------------------------------------- */

static void kill9(void)
{
	int fds[2];
	pid_t pid;
	int last = -1, status = 0, bad = 0;
	CK_SESSION_HANDLE s;
	FILE *in;

	init();
	init_token(SO_PIN);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	REQUIRE(pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		init();
		s = open_rw();
		for (int j = 0;; j++) {
			char label[32], value[64];
			CK_OBJECT_HANDLE h;

			snprintf(label, sizeof label, "k%d", j);
			snprintf(value, sizeof value, "value-%d-%0*d", j, 40, j);
			if (make_data(s, label, value, true, false, &h) != CKR_OK)
				_exit(2);
			dprintf(fds[1], "%d\n", j);
		}
	}
	REQUIRE(pid > 0);
	close(fds[1]);
	in = fdopen(fds[0], "r");
	while (fscanf(in, "%d", &last) == 1 && last < 60)
		;
	kill(pid, SIGKILL);
	/* What the writer said after our read is acknowledged too. */
	while (fscanf(in, "%d", &last) == 1)
		;
	fclose(in);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	tp_note("writer killed after %d acknowledged objects", last + 1);

	init();
	s = open_rw();
	for (int j = 0; j <= last; j++) {
		char label[32], value[64];
		CK_OBJECT_HANDLE h = 0;

		snprintf(label, sizeof label, "k%d", j);
		snprintf(value, sizeof value, "value-%d-%0*d", j, 40, j);
		if (find_label(s, label, &h) != 1 || !value_is(s, h, value, strlen(value)))
			bad++;
	}
	CHECKF(bad == 0, "%d acknowledged objects missing or torn", bad);
	/* The store still takes writes (a writer's leftovers are swept). */
	{
		CK_OBJECT_HANDLE h;

		CHECK_RV(make_data(s, "after", "x", true, false, &h), CKR_OK);
	}
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- "pin": false ---------------------------------------------------- */

static void child_nopin(void *arg)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0;

	(void)arg;
	init();
	s = open_rw();
	CHECK(find_label(s, "secret", NULL) == 0);
	CHECK_RV(login(s, CKU_USER, NULL), CKR_OK);
	CHECK(find_label(s, "secret", &h) == 1 && value_is(s, h, V1, 16));
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void nopin(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0;
	CK_FLAGS f;
	const CK_FLAGS base = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_PROTECTED_AUTHENTICATION_PATH;
	char *log;

	init();
	f = token_flags();
	CHECKF(f == base, "flags 0x%lx", (unsigned long)f);
	init_token(NULL);  /* the SO PIN may be empty too */
	f = token_flags();
	CHECKF(f == (base | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED), "flags 0x%lx",
	       (unsigned long)f);
	s = open_rw();
	CHECK_RV(make_secret(s, "secret", V1, 16, true, true, &h), CKR_USER_NOT_LOGGED_IN);
	CHECK_RV(login(s, CKU_USER, NULL), CKR_OK);
	CHECK_RV(make_secret(s, "secret", V1, 16, true, true, &h), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK(find_label(s, "secret", NULL) == 0);
	/* Barbican always sends a PIN: ignored, said once. */
	CHECK_RV(login(s, CKU_USER, "barbican-pin"), CKR_OK);
	CHECK(find_label(s, "secret", &h) == 1 && value_is(s, h, V1, 16));
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(login(s, CKU_USER, "other"), CKR_OK);
	log = log_text();
	{
		int count = 0;

		for (const char *p = log; p && (p = strstr(p, "PIN given to C_Login is ignored")); p++)
			count++;
		CHECKF(count == 1, "the ignored PIN was logged %d times", count);
	}
	free(log);
	CHECK_RV(P->C_SetPIN(s, (CK_UTF8CHAR *)"a", 1, (CK_UTF8CHAR *)"bbbb", 4),
		 CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(login(s, CKU_SO, NULL), CKR_OK);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)"1234", 4), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK(in_child(child_nopin, NULL));
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- read-only store ------------------------------------------------- */

static void child_readonly(void *arg)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0, h2;
	CK_UTF8CHAR label[32];

	(void)arg;
	REQUIRE(setgid(65534) == 0 && setuid(65534) == 0);
	setenv("TANG_PKCS11_LOG", "stderr", 1);
	init();
	CHECK(token_flags() & CKF_WRITE_PROTECTED);
	CHECK(token_flags() & CKF_TOKEN_INITIALIZED);
	s = open_rw();
	CHECK(find_label(s, "pub", &h) == 1 && value_is(s, h, "public", 6));
	CHECK_RV(make_data(s, "new", "x", true, false, &h2), CKR_TOKEN_WRITE_PROTECTED);
	CHECK_RV(make_data(s, "new", "x", false, false, &h2), CKR_OK);
	CHECK_RV(P->C_DestroyObject(s, h), CKR_TOKEN_WRITE_PROTECTED);
	/* A wrong PIN is refused but cannot be counted here. */
	CHECK_RV(login(s, CKU_USER, "9999"), CKR_PIN_INCORRECT);
	CHECK(!(token_flags() & CKF_USER_PIN_COUNT_LOW));
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_OK);
	CHECK(find_label(s, "priv", &h) == 1 && value_is(s, h, V1, 32));
	CHECK_RV(P->C_CloseAllSessions(slot), CKR_OK);
	pad32(label, "tang");
	CHECK_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)SO_PIN, strlen(SO_PIN), label),
		 CKR_TOKEN_WRITE_PROTECTED);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void chmod_tree(const char *dir, mode_t dmode, mode_t fmode)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		char path[8192];

		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
			chmod(path, fmode);
		}
		free(names[i]);
	}
	free(names);
	chmod(dir, dmode);
}

static void readonly(void)
{
	char base[] = "/tmp/tp-ro.XXXXXX";
	uint8_t before[32], after[32];
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h;
	char cmd[4200];

	if (geteuid() != 0)
		tp_skip("the read-only case runs the reader as nobody: needs root");
	REQUIRE(mkdtemp(base) != NULL);
	chmod(base, 0755);
	write_conf(base, "readonly", "");
	chmod(conf_path, 0644);
	init();
	init_token(SO_PIN);
	s = open_rw();
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_OK);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)USER_PIN, 4), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(make_data(s, "pub", "public", true, false, &h), CKR_OK);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_OK);
	CHECK_RV(make_secret(s, "priv", V1, 32, true, true, &h), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	/* Readable by everyone, writable by its owner only (root). */
	chmod_tree(store_dir, 0755, 0644);
	store_digest(store_dir, before);
	CHECK(in_child(child_readonly, NULL));
	store_digest(store_dir, after);
	CHECK_MEM(after, 32, before, 32, "store files after the read-only process");
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	CHECK(system(cmd) == 0);
}

/* ---- damaged and newer stores ---------------------------------------- */

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	REQUIRE(fd >= 0);
	REQUIRE(write(fd, b, n) == (ssize_t)n);
	close(fd);
}

/* The store must be refused and left as it is. */
static void refused(const char *what, bool at_open)
{
	uint8_t before[32], after[32];
	CK_SESSION_HANDLE s = 0;
	CK_UTF8CHAR label[32];
	CK_FLAGS f;
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_ATTRIBUTE by_class = { CKA_CLASS, &data, sizeof data };

	tp_case_begin(what);
	store_digest(store_dir, before);
	init();
	f = token_flags();  /* C_GetTokenInfo still answers */
	if (at_open) {
		CHECKF((f & CKF_TOKEN_INITIALIZED) && (f & CKF_WRITE_PROTECTED), "flags 0x%lx",
		       (unsigned long)f);
		CHECK_RV(P->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
			 CKR_TOKEN_NOT_RECOGNIZED);
	} else {
		/* Only R can tell (its MAC): the first use refuses it. */
		s = open_rw();
		CHECK_RV(P->C_FindObjectsInit(s, &by_class, 1), CKR_TOKEN_NOT_RECOGNIZED);
		CHECK_RV(P->C_CloseSession(s), CKR_OK);
		CHECK_RV(P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s),
			 CKR_TOKEN_NOT_RECOGNIZED);
	}
	pad32(label, "tang");
	CHECK_RV(P->C_InitToken(slot, (CK_UTF8CHAR *)SO_PIN, strlen(SO_PIN), label),
		 CKR_TOKEN_NOT_RECOGNIZED);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	store_digest(store_dir, after);
	CHECK_MEM(after, 32, before, 32, "store files after the refusal");
	tp_case_end();
}

static void damaged(void)
{
	char meta[4200];
	uint8_t *orig, *copy;
	size_t len;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h;
	char *log;

	init();
	init_token(SO_PIN);
	s = open_rw();
	CHECK_RV(make_data(s, "keep", "kept", true, false, &h), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	snprintf(meta, sizeof meta, "%s/metadata", store_dir);
	len = tp_file_size(meta);
	orig = (uint8_t *)tp_read_file(meta, 0);
	REQUIRE(orig && len > 100);
	copy = malloc(len);

	write_bytes(meta, orig, len / 2);
	refused("truncated metadata", true);

	memcpy(copy, orig, len);
	copy[4] = 2;  /* format version 2 (u16 little-endian after "TPKS") */
	write_bytes(meta, copy, len);
	refused("newer format", true);
	log = log_text();
	CHECK(tp_contains_ci(log, "newer format"));
	free(log);

	memcpy(copy, orig, len);
	/* A byte of the first wrapped key (header 8, store id 16, counters
	 * 12, kdf and count 4, kind 1, salt 16, nonce 12): covered by the MAC
	 * only, so only R can tell. */
	copy[8 + 16 + 12 + 4 + 1 + 16 + 12 + 5] ^= 0x01;
	write_bytes(meta, copy, len);
	refused("metadata that does not authenticate", false);

	tp_case_begin("the intact store works again");
	write_bytes(meta, orig, len);
	init();
	s = open_rw();
	CHECK(find_label(s, "keep", &h) == 1 && value_is(s, h, "kept", 4));
	CHECK_RV(make_data(s, "victim", "to be damaged", true, false, &h), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_case_end();

	tp_case_begin("a damaged object file: that object is skipped, the rest works");
	{
		struct dirent **names = NULL;
		int n = scandir(store_dir, &names, NULL, alphasort), damaged_files = 0;

		/* Damage the object file of "victim" (found by trying: the
		 * names say nothing), never that of "keep". */
		for (int i = 0; i < n; i++) {
			char path[8192];
			uint8_t *b;
			size_t bl;

			if (strlen(names[i]->d_name) == 32 && damaged_files == 0) {
				snprintf(path, sizeof path, "%s/%s", store_dir, names[i]->d_name);
				bl = tp_file_size(path);
				b = (uint8_t *)tp_read_file(path, 0);
				REQUIRE(b && bl > 60);
				b[bl - 20] ^= 0x40;  /* in the ciphertext or tag */
				write_bytes(path, b, bl);
				init();
				s = open_rw();
				if (find_label(s, "victim", NULL) == 0) {
					damaged_files++;
					CHECK(find_label(s, "keep", &h) == 1 && value_is(s, h, "kept", 4));
					CHECK_RV(make_data(s, "after", "x", true, false, &h), CKR_OK);
					CHECK(find_label(s, "after", NULL) == 1);
				} else {
					b[bl - 20] ^= 0x40;  /* it was "keep": repair */
					write_bytes(path, b, bl);
				}
				CHECK_RV(P->C_Finalize(NULL), CKR_OK);
				free(b);
			}
			free(names[i]);
		}
		free(names);
		CHECK(damaged_files == 1);
		log = log_text();
		CHECK(tp_contains_ci(log, "does not open"));
		free(log);
	}
	tp_case_end();
	free(orig);
	free(copy);
}

/* ---- threads --------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 50

static void *thread_worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	CK_SESSION_HANDLE s = 0;
	int bad = 0;

	if (P->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
		return (void *)1;
	for (int j = 0; j < PER_THREAD; j++) {
		char label[32], value[32];
		CK_OBJECT_HANDLE h = 0, h2 = 0;
		CK_TOKEN_INFO ti;

		snprintf(label, sizeof label, "t%d-%d", id, j);
		snprintf(value, sizeof value, "value-%d-%d", id, j);
		CK_RV rv = make_data(s, label, value, true, false, &h);

		if (rv != CKR_OK) {
			printf("# thread %d: C_CreateObject %s\n", id, tp_rv_name(rv));
			bad++;
		}
		if (find_label(s, label, &h2) != 1 || h2 != h) {
			printf("# thread %d: %s not found\n", id, label);
			bad++;
		}
		if (!value_is(s, h, value, strlen(value))) {
			printf("# thread %d: %s: wrong value\n", id, label);
			bad++;
		}
		bad += P->C_GetTokenInfo(slot, &ti) != CKR_OK;
		if (j % 5 == 4 && (rv = P->C_DestroyObject(s, h)) != CKR_OK) {
			printf("# thread %d: C_DestroyObject %s\n", id, tp_rv_name(rv));
			bad++;
		}
	}
	P->C_CloseSession(s);
	return (void *)(intptr_t)bad;
}

/* Searches racing writes: finder threads sync the store's objects into
 * the handle table all the time (C_FindObjectsInit lists the store, then
 * merges the list) while creator threads create, read, find and destroy
 * token objects.  A list taken before a create (or a destroy) and merged
 * after it must not undo it: the new object keeps the handle
 * C_CreateObject returned, a destroyed one does not come back. */
#define FINDERS 3
#define CREATORS 3
#define PER_CREATOR 40
static int finders_stop;

static void *finder(void *arg)
{
	CK_SESSION_HANDLE s = 0;
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_ATTRIBUTE t = { CKA_CLASS, &data, sizeof data };
	intptr_t bad = 0;

	(void)arg;
	if (P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
		return (void *)1;
	while (!__atomic_load_n(&finders_stop, __ATOMIC_ACQUIRE)) {
		CK_OBJECT_HANDLE h[64];
		CK_ULONG got = 0;
		CK_RV rv = P->C_FindObjectsInit(s, &t, 1);

		if (rv != CKR_OK) {
			printf("# finder: C_FindObjectsInit %s\n", tp_rv_name(rv));
			bad++;
			continue;
		}
		rv = P->C_FindObjects(s, h, 64, &got);
		if (rv != CKR_OK) {
			printf("# finder: C_FindObjects %s\n", tp_rv_name(rv));
			bad++;
		}
		P->C_FindObjectsFinal(s);
	}
	P->C_CloseSession(s);
	return (void *)bad;
}

static void *creator(void *arg)
{
	int id = (int)(intptr_t)arg;
	CK_SESSION_HANDLE s = 0;
	intptr_t bad = 0;

	if (P->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
		return (void *)1;
	for (int j = 0; j < PER_CREATOR; j++) {
		char label[32], value[32];
		CK_OBJECT_HANDLE h = 0, h2 = 0;
		CK_RV rv;

		snprintf(label, sizeof label, "r%d-%d", id, j);
		snprintf(value, sizeof value, "race-%d-%d", id, j);
		rv = make_data(s, label, value, true, false, &h);
		if (rv != CKR_OK) {
			printf("# creator %d: C_CreateObject %s\n", id, tp_rv_name(rv));
			bad++;
			continue;
		}
		if (!value_is(s, h, value, strlen(value))) {
			printf("# creator %d: %s: value not readable through its handle\n", id, label);
			bad++;
		}
		if (find_label(s, label, &h2) != 1 || h2 != h) {
			printf("# creator %d: %s not found under its handle\n", id, label);
			bad++;
		}
		rv = P->C_DestroyObject(s, h);
		if (rv != CKR_OK) {
			printf("# creator %d: %s: C_DestroyObject %s\n", id, label, tp_rv_name(rv));
			bad++;
		}
		if (find_label(s, label, NULL) != 0) {
			printf("# creator %d: %s found after C_DestroyObject\n", id, label);
			bad++;
		}
	}
	P->C_CloseSession(s);
	return (void *)bad;
}

static void sync_race(void)
{
	pthread_t f[FINDERS], c[CREATORS];
	CK_SESSION_HANDLE s;
	int bad = 0;

	tp_case_begin("searches racing creates and destroys: no handle lost, nothing resurrected");
	s = open_rw();
	__atomic_store_n(&finders_stop, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < FINDERS; i++)
		REQUIRE(pthread_create(&f[i], NULL, finder, NULL) == 0);
	for (int i = 0; i < CREATORS; i++)
		REQUIRE(pthread_create(&c[i], NULL, creator, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < CREATORS; i++) {
		void *r = NULL;

		pthread_join(c[i], &r);
		bad += (int)(intptr_t)r;
	}
	__atomic_store_n(&finders_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < FINDERS; i++) {
		void *r = NULL;

		pthread_join(f[i], &r);
		bad += (int)(intptr_t)r;
	}
	CHECKF(bad == 0, "%d failed calls in the threads", bad);
	/* Every creator destroyed what it made. */
	for (int i = 0; i < CREATORS; i++) {
		char label[32];

		snprintf(label, sizeof label, "r%d-0", i);
		CHECK(find_label(s, label, NULL) == 0);
	}
	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	tp_case_end();
}

/* Several threads of one process use the store at once, with a lease of
 * 0 s running out under them all the time (ASan/valgrind find races on
 * memory; the calls must not fail for it). */
/* Eight logins at once, user and SO alternating, each on its own RW
 * session: exactly one succeeds, every other one says who is logged in
 * (CKR_USER_ALREADY_LOGGED_IN / CKR_USER_ANOTHER_ALREADY_LOGGED_IN), and
 * the session state is the winner's. */
#define RACERS 8
static CK_SESSION_HANDLE racer_session[RACERS];
static CK_RV racer_rv[RACERS];

static void *racer(void *arg)
{
	int i = (int)(intptr_t)arg;

	racer_rv[i] = login(racer_session[i], i % 2 ? CKU_SO : CKU_USER, i % 2 ? SO_PIN : USER_PIN);
	return NULL;
}

static void login_race(void)
{
	pthread_t th[RACERS];
	int ok = 0, winner = -1;
	CK_SESSION_INFO si;

	tp_case_begin("user and SO logging in at once: one wins, the others say who");
	for (int i = 0; i < RACERS; i++)
		racer_session[i] = open_rw();
	CHECK_RV(login(racer_session[0], CKU_SO, SO_PIN), CKR_OK);
	CHECK_RV(P->C_InitPIN(racer_session[0], (CK_UTF8CHAR *)USER_PIN, strlen(USER_PIN)), CKR_OK);
	CHECK_RV(P->C_Logout(racer_session[0]), CKR_OK);
	for (int i = 0; i < RACERS; i++)
		REQUIRE(pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < RACERS; i++)
		if (racer_rv[i] == CKR_OK) {
			ok++;
			winner = i;
		}
	CHECKF(ok == 1, "%d logins succeeded", ok);
	for (int i = 0; i < RACERS && winner >= 0; i++) {
		bool same = i % 2 == winner % 2;

		if (i != winner)
			CHECKF(racer_rv[i] == (same ? CKR_USER_ALREADY_LOGGED_IN
						    : CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
			       "racer %d (%s): %s", i, i % 2 ? "SO" : "user", tp_rv_name(racer_rv[i]));
	}
	if (winner >= 0) {
		CHECK_RV(P->C_GetSessionInfo(racer_session[0], &si), CKR_OK);
		CHECK(si.state == (winner % 2 ? CKS_RW_SO_FUNCTIONS : CKS_RW_USER_FUNCTIONS));
		CHECK_RV(P->C_Logout(racer_session[0]), CKR_OK);
	}
	for (int i = 0; i < RACERS; i++)
		CHECK_RV(P->C_CloseSession(racer_session[i]), CKR_OK);
	tp_case_end();
}

static void threads(void)
{
	pthread_t th[THREADS];
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_ATTRIBUTE by_class = { CKA_CLASS, &data, sizeof data };
	CK_OBJECT_HANDLE all[THREADS * PER_THREAD];
	int bad = 0;

	int posts;

	init();
	init_token(SO_PIN);
	s = open_rw();
	posts = tp_server_posts();
	for (int i = 0; i < THREADS; i++)
		REQUIRE(pthread_create(&th[i], NULL, thread_worker, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < THREADS; i++) {
		void *r = NULL;

		pthread_join(th[i], &r);
		bad += (int)(intptr_t)r;
	}
	CHECKF(bad == 0, "%d failed calls in the threads", bad);
	/* The lease (0 s) really ran out while the threads ran (forced after
	 * TP_LEASE_GRACE when calls overlap all the time). */
	tp_note("%d recoveries of the root secret", tp_server_posts() - posts);
	CHECK(tp_server_posts() - posts >= 2);
	CHECK(tp_find(s, &by_class, 1, all, THREADS * PER_THREAD) ==
	      THREADS * (PER_THREAD - PER_THREAD / 5));
	sync_race();
	login_race();
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- random templates -------------------------------------------------- */

/* Thousands of random templates (types the rules know and some they do
 * not, right and wrong sizes, NULL values) through every call that takes
 * one: each returns a documented CK_RV, none crashes (run it under ASan),
 * and whatever was created can be read back and destroyed. */
static const CK_ATTRIBUTE_TYPE fuzz_types[] = {
	CKA_CLASS, CKA_KEY_TYPE, CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE,
	CKA_DESTROYABLE, CKA_LABEL, CKA_ID, CKA_VALUE, CKA_VALUE_LEN, CKA_SENSITIVE,
	CKA_EXTRACTABLE, CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP,
	CKA_UNWRAP, CKA_DERIVE, CKA_START_DATE, CKA_END_DATE, CKA_LOCAL,
	CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_KEY_GEN_MECHANISM, CKA_TRUSTED,
	CKA_WRAP_WITH_TRUSTED, CKA_APPLICATION, CKA_OBJECT_ID, CKA_CERTIFICATE_TYPE,
	CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_URL, CKA_CHECK_VALUE,
	CKA_MODULUS, CKA_EC_POINT, CKA_WRAP_TEMPLATE, CKA_ALLOWED_MECHANISMS, 0x80001234UL,
};

static bool documented(CK_RV rv)
{
	switch (rv) {
	case CKR_OK: case CKR_ATTRIBUTE_TYPE_INVALID: case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_ATTRIBUTE_READ_ONLY: case CKR_TEMPLATE_INCOMPLETE:
	case CKR_TEMPLATE_INCONSISTENT: case CKR_USER_NOT_LOGGED_IN:
	case CKR_ACTION_PROHIBITED: case CKR_ARGUMENTS_BAD: case CKR_OBJECT_HANDLE_INVALID:
	case CKR_MECHANISM_INVALID:
		return true;
	}
	return false;
}

static void templates(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE made[64];
	int n_made = 0, bad = 0, ok = 0;
	CK_ULONG ulongs[4] = { CKO_SECRET_KEY, CKO_DATA, CKK_AES, 32 };
	uint8_t bytes[64];
	CK_MECHANISM mechs[2] = { { CKM_AES_KEY_GEN, NULL, 0 }, { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 } };

	init();
	init_token(SO_PIN);
	s = open_rw();
	CHECK_RV(login(s, CKU_SO, SO_PIN), CKR_OK);
	CHECK_RV(P->C_InitPIN(s, (CK_UTF8CHAR *)USER_PIN, 4), CKR_OK);
	CHECK_RV(P->C_Logout(s), CKR_OK);
	CHECK_RV(login(s, CKU_USER, USER_PIN), CKR_OK);
	srand(4242);
	memset(bytes, 0x41, sizeof bytes);
	for (int round = 0; round < 3000; round++) {
		CK_ATTRIBUTE t[8];
		CK_ULONG n = (CK_ULONG)(rand() % 8);
		CK_OBJECT_HANDLE h = 0;
		CK_RV rv;

		for (CK_ULONG i = 0; i < n; i++) {
			int r = rand() % 10;

			t[i].type = fuzz_types[rand() % (int)(sizeof fuzz_types / sizeof fuzz_types[0])];
			if (i == 0 && rand() % 3)
				t[i].type = CKA_CLASS;
			if (r < 4) {
				t[i].pValue = &ulongs[rand() % 4];
				t[i].ulValueLen = sizeof(CK_ULONG);
			} else if (r < 7) {
				t[i].pValue = rand() % 2 ? (void *)&yes : (void *)&no;
				t[i].ulValueLen = 1;
			} else if (r < 9) {
				t[i].pValue = bytes;
				t[i].ulValueLen = (CK_ULONG)(rand() % 40);
			} else {
				t[i].pValue = NULL;
				t[i].ulValueLen = (CK_ULONG)(rand() % 3);
			}
			/* Mostly session objects: the store is not the point. */
			if (t[i].type == CKA_TOKEN && rand() % 8)
				t[i].pValue = &no;
		}
		switch (round % 4) {
		case 0:
		case 1:
			rv = P->C_CreateObject(s, t, n, &h);
			break;
		case 2:
			rv = P->C_GenerateKey(s, &mechs[rand() % 2], t, n, &h);
			break;
		default:
			rv = n_made ? P->C_SetAttributeValue(s, made[rand() % n_made], t, n)
				    : P->C_CreateObject(s, t, n, &h);
			if (n_made && rand() % 2)
				rv = P->C_CopyObject(s, made[rand() % n_made], t, n, &h);
			break;
		}
		if (!documented(rv)) {
			if (bad++ < 10)
				printf("# round %d: CK_RV %s\n", round, tp_rv_name(rv));
		}
		if (rv == CKR_OK && h) {
			ok++;
			if (n_made < 64)
				made[n_made++] = h;
			else
				CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
		}
	}
	CHECKF(bad == 0, "%d calls returned an undocumented CK_RV", bad);
	tp_note("%d calls made an object", ok);
	CHECK(ok > 20);
	for (int i = 0; i < n_made; i++) {
		CK_ULONG size = 0;
		CK_RV rv = P->C_GetObjectSize(s, made[i], &size);

		/* A copy to a token object, or a destroyable=false one, may stay. */
		CHECKF(rv == CKR_OK, "C_GetObjectSize: %s", tp_rv_name(rv));
		rv = P->C_DestroyObject(s, made[i]);
		CHECKF(rv == CKR_OK || rv == CKR_ACTION_PROHIBITED, "C_DestroyObject: %s",
		       tp_rv_name(rv));
	}
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

/* ---- rotation ------------------------------------------------------- */

/* tangd-rotate-keys: the store's root secret was sealed to a key the
 * server now hides; a fresh process (pinned to the new signing key)
 * still opens the store (the JWE carries its own advertisement). */
static void rotate(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0;
	char cmd[4400], thp[64], text[8192];

	init();
	init_token(SO_PIN);
	s = open_rw();
	CHECK_RV(make_data(s, "before-rotation", "still here", true, false, &h), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	snprintf(cmd, sizeof cmd, "/usr/libexec/tangd-rotate-keys -d \"%s\" >/dev/null 2>&1",
		 tp_env("TANG_DB"));
	REQUIRE(system(cmd) == 0);
	REQUIRE(tp_signing_thp(thp));
	REQUIRE(strcmp(thp, tp_env("TANG_THP")) != 0);
	snprintf(text, sizeof text,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" },"
		 " \"store\": \"%s\", \"timeout\": 5 } ] }\n", tp_env("TANG_URL"), thp, store_dir);
	tp_write_file(conf_path, text);
	{
		/* No unsealing in C_Initialize, C_GetTokenInfo, C_OpenSession:
		 * the first search asks Tang, once. */
		int posts = tp_server_posts();

		init();
		CHECK(token_flags() & CKF_TOKEN_INITIALIZED);
		s = open_rw();
		CHECK(tp_server_posts() == posts);
		CHECK(find_label(s, "before-rotation", &h) == 1 && value_is(s, h, "still here", 10));
		CHECK(tp_server_posts() == posts + 1);
	}
	/* Re-initializing seals a new root secret to the new key. */
	CHECK_RV(P->C_CloseAllSessions(slot), CKR_OK);
	init_token(SO_PIN);
	s = open_rw();
	CHECK(find_label(s, "before-rotation", NULL) == 0);
	CHECK_RV(make_data(s, "after-rotation", "new", true, false, &h), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	init();
	s = open_rw();
	CHECK(find_label(s, "after-rotation", &h) == 1 && value_is(s, h, "new", 3));
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	const char *extra = "";

	setvbuf(stdout, NULL, _IONBF, 0);
	if (strcmp(mode, "outage") == 0)
		extra = "\"lease\": 8";
	else if (strcmp(mode, "nopin") == 0)
		extra = "\"pin\": false";
	else if (strcmp(mode, "threads") == 0)
		extra = "\"lease\": 0";
	if (strcmp(mode, "readonly") != 0)
		write_conf(tp_env("TANG_TMP"), mode, extra);
	tp_load();
	if (strcmp(mode, "lifecycle") == 0)
		lifecycle();
	else if (strcmp(mode, "outage") == 0)
		outage();
	else if (strcmp(mode, "procs") == 0)
		procs();
	else if (strcmp(mode, "kill") == 0)
		kill9();
	else if (strcmp(mode, "nopin") == 0)
		nopin();
	else if (strcmp(mode, "readonly") == 0)
		readonly();
	else if (strcmp(mode, "damaged") == 0)
		damaged();
	else if (strcmp(mode, "threads") == 0)
		threads();
	else if (strcmp(mode, "rotate") == 0)
		rotate();
	else if (strcmp(mode, "templates") == 0)
		templates();
	else {
		printf("usage: tp-store lifecycle|outage|procs|kill|nopin|readonly|damaged|threads|rotate|templates\n");
		return 2;
	}
	return tp_exit();
}
