/* tp_test: helpers shared by the end-to-end tests (see tp_test.h). */
#include "tp_test.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

int tp_failures;
int tp_checks;
CK_FUNCTION_LIST_PTR P;
void *tp_dl;

static const char *case_name;
static int case_failures;

/* ---- results -------------------------------------------------------- */

const char *tp_rv_name(CK_RV rv)
{
	static __thread char buf[32];
	switch (rv) {
#define N(x) case x: return #x
	N(CKR_OK); N(CKR_CANCEL); N(CKR_HOST_MEMORY); N(CKR_SLOT_ID_INVALID);
	N(CKR_GENERAL_ERROR); N(CKR_FUNCTION_FAILED); N(CKR_ARGUMENTS_BAD);
	N(CKR_NO_EVENT); N(CKR_NEED_TO_CREATE_THREADS); N(CKR_CANT_LOCK);
	N(CKR_ATTRIBUTE_READ_ONLY); N(CKR_ATTRIBUTE_SENSITIVE);
	N(CKR_ATTRIBUTE_TYPE_INVALID); N(CKR_ATTRIBUTE_VALUE_INVALID);
	N(CKR_ACTION_PROHIBITED); N(CKR_DATA_INVALID); N(CKR_DATA_LEN_RANGE);
	N(CKR_DEVICE_ERROR); N(CKR_DEVICE_MEMORY); N(CKR_DEVICE_REMOVED);
	N(CKR_ENCRYPTED_DATA_INVALID); N(CKR_ENCRYPTED_DATA_LEN_RANGE);
	N(CKR_FUNCTION_CANCELED); N(CKR_FUNCTION_NOT_PARALLEL);
	N(CKR_FUNCTION_NOT_SUPPORTED); N(CKR_KEY_HANDLE_INVALID);
	N(CKR_KEY_SIZE_RANGE); N(CKR_KEY_TYPE_INCONSISTENT);
	N(CKR_KEY_NOT_NEEDED); N(CKR_KEY_CHANGED); N(CKR_KEY_NEEDED);
	N(CKR_KEY_INDIGESTIBLE); N(CKR_KEY_FUNCTION_NOT_PERMITTED);
	N(CKR_KEY_NOT_WRAPPABLE); N(CKR_KEY_UNEXTRACTABLE);
	N(CKR_MECHANISM_INVALID); N(CKR_MECHANISM_PARAM_INVALID);
	N(CKR_OBJECT_HANDLE_INVALID); N(CKR_OPERATION_ACTIVE);
	N(CKR_OPERATION_NOT_INITIALIZED); N(CKR_PIN_INCORRECT);
	N(CKR_PIN_INVALID); N(CKR_PIN_LEN_RANGE); N(CKR_PIN_EXPIRED);
	N(CKR_PIN_LOCKED); N(CKR_SESSION_CLOSED); N(CKR_SESSION_COUNT);
	N(CKR_SESSION_HANDLE_INVALID); N(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	N(CKR_SESSION_READ_ONLY); N(CKR_SESSION_EXISTS);
	N(CKR_SESSION_READ_ONLY_EXISTS); N(CKR_SESSION_READ_WRITE_SO_EXISTS);
	N(CKR_SIGNATURE_INVALID); N(CKR_SIGNATURE_LEN_RANGE);
	N(CKR_TEMPLATE_INCOMPLETE); N(CKR_TEMPLATE_INCONSISTENT);
	N(CKR_TOKEN_NOT_PRESENT); N(CKR_TOKEN_NOT_RECOGNIZED);
	N(CKR_TOKEN_WRITE_PROTECTED); N(CKR_UNWRAPPING_KEY_HANDLE_INVALID);
	N(CKR_UNWRAPPING_KEY_SIZE_RANGE); N(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
	N(CKR_USER_ALREADY_LOGGED_IN); N(CKR_USER_NOT_LOGGED_IN);
	N(CKR_USER_PIN_NOT_INITIALIZED); N(CKR_USER_TYPE_INVALID);
	N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN); N(CKR_USER_TOO_MANY_TYPES);
	N(CKR_WRAPPED_KEY_INVALID); N(CKR_WRAPPED_KEY_LEN_RANGE);
	N(CKR_WRAPPING_KEY_HANDLE_INVALID); N(CKR_WRAPPING_KEY_SIZE_RANGE);
	N(CKR_WRAPPING_KEY_TYPE_INCONSISTENT); N(CKR_RANDOM_SEED_NOT_SUPPORTED);
	N(CKR_RANDOM_NO_RNG); N(CKR_DOMAIN_PARAMS_INVALID);
	N(CKR_CURVE_NOT_SUPPORTED); N(CKR_BUFFER_TOO_SMALL);
	N(CKR_SAVED_STATE_INVALID); N(CKR_INFORMATION_SENSITIVE);
	N(CKR_STATE_UNSAVEABLE); N(CKR_CRYPTOKI_NOT_INITIALIZED);
	N(CKR_CRYPTOKI_ALREADY_INITIALIZED); N(CKR_MUTEX_BAD);
	N(CKR_MUTEX_NOT_LOCKED); N(CKR_FUNCTION_REJECTED);
#undef N
	}
	snprintf(buf, sizeof buf, "CKR_0x%lx", (unsigned long)rv);
	return buf;
}

void tp_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	/* __FILE__ is the path meson gave the compiler: keep the base name. */
	const char *base = strrchr(file, '/');
	__atomic_add_fetch(&tp_failures, 1, __ATOMIC_SEQ_CST);
	case_failures++;
	flockfile(stdout);
	printf("FAIL %s:%d: ", base ? base + 1 : file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	funlockfile(stdout);
	fflush(stdout);
}

void tp_note(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void tp_case_begin(const char *name)
{
	case_name = name;
	case_failures = 0;
	printf("# --- %s\n", name);
	fflush(stdout);
}

void tp_case_end(void)
{
	printf("%s - %s\n", case_failures ? "not ok" : "ok", case_name ? case_name : "?");
	fflush(stdout);
	case_name = NULL;
}

int tp_exit(void)
{
	printf("# %d checks, %d failed\n", tp_checks, tp_failures);
	fflush(stdout);
	return tp_failures ? 1 : 0;
}

bool tp_ci(void)
{
	const char *ci = getenv("CI");
	return ci && strcmp(ci, "true") == 0;
}

void tp_skip(const char *why)
{
	printf("# SKIP: %s\n", why);
	fflush(stdout);
	if (tp_ci()) {
		printf("FAIL: CI=true: a skip is a failure here\n");
		exit(1);
	}
	exit(77);
}

bool tp_check_mem(const char *file, int line, const void *got, size_t got_len,
		  const void *want, size_t want_len, const char *what)
{
	TP_COUNT_CHECK();
	if (got_len == want_len && memcmp(got, want, got_len) == 0)
		return true;
	char *g = malloc(2 * got_len + 1), *w = malloc(2 * want_len + 1);
	tp_hex(got, got_len, g);
	tp_hex(want, want_len, w);
	tp_fail(file, line, "%s differs:\n  got  (%zu) %s\n  want (%zu) %s", what,
		got_len, g, want_len, w);
	free(g);
	free(w);
	return false;
}

/* ---- the module ----------------------------------------------------- */

const char *tp_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		printf("FAIL: environment variable %s is not set "
		       "(run under tests/fixtures/with-tangd, through meson test)\n", name);
		exit(1);
	}
	return v;
}

void tp_load(void)
{
	const char *path = tp_env("TANG_PKCS11_MODULE");
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);

	tp_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!tp_dl) {
		printf("FAIL: dlopen(%s): %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&gfl = dlsym(tp_dl, "C_GetFunctionList");
	if (!gfl) {
		printf("FAIL: C_GetFunctionList is not exported\n");
		exit(1);
	}
	REQUIRE_RV(gfl(&P), CKR_OK);
	REQUIRE(P != NULL);
}

CK_RV tp_initialize(const char *reserved)
{
	if (!reserved)
		return P->C_Initialize(NULL);
	static CK_C_INITIALIZE_ARGS args;
	memset(&args, 0, sizeof args);
	args.flags = CKF_OS_LOCKING_OK;
	args.pReserved = (void *)reserved;
	return P->C_Initialize(&args);
}

void tp_unpad(const CK_UTF8CHAR *in, size_t n, char *out)
{
	memcpy(out, in, n);
	out[n] = 0;
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = 0;
}

CK_SLOT_ID tp_slot(const char *label)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	REQUIRE_RV(P->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		char l[33];
		if (P->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		tp_unpad(ti.label, 32, l);
		if (strcmp(l, label) == 0)
			return slots[i];
	}
	tp_fail(__FILE__, __LINE__, "no token labelled \"%s\" among %lu slots", label,
		(unsigned long)n);
	exit(tp_exit());
}

CK_SESSION_HANDLE tp_open(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	REQUIRE_RV(P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
	REQUIRE(s != CK_INVALID_HANDLE);
	return s;
}

size_t tp_find(CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
	       CK_OBJECT_HANDLE *out, size_t max)
{
	CK_RV rv;
	size_t total = 0;
	rv = P->C_FindObjectsInit(s, tmpl, n);
	if (rv != CKR_OK) {
		tp_fail(__FILE__, __LINE__, "C_FindObjectsInit: %s", tp_rv_name(rv));
		return (size_t)-1;
	}
	for (;;) {
		CK_OBJECT_HANDLE h[4];
		CK_ULONG got = 0;
		rv = P->C_FindObjects(s, h, 4, &got);
		if (rv != CKR_OK) {
			tp_fail(__FILE__, __LINE__, "C_FindObjects: %s", tp_rv_name(rv));
			P->C_FindObjectsFinal(s);
			return (size_t)-1;
		}
		if (got == 0)
			break;
		for (CK_ULONG i = 0; i < got; i++) {
			if (total < max)
				out[total] = h[i];
			total++;
		}
	}
	rv = P->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		tp_fail(__FILE__, __LINE__, "C_FindObjectsFinal: %s", tp_rv_name(rv));
	return total;
}

CK_OBJECT_HANDLE tp_find_key(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const uint8_t id[32])
{
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_ID, (void *)id, 32 },
	};
	CK_OBJECT_HANDLE h[4];
	size_t n = tp_find(s, t, 2, h, 4);
	if (n == (size_t)-1 || n == 0)
		return CK_INVALID_HANDLE;
	CHECKF(n == 1, "%zu objects of class %lu with one CKA_ID, expected 1", n,
	       (unsigned long)cls);
	return h[0];
}

CK_RV tp_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t,
	      uint8_t **val, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { t, NULL, 0 };
	CK_RV rv = P->C_GetAttributeValue(s, o, &a, 1);
	*val = NULL;
	*len = a.ulValueLen;
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
		tp_fail(__FILE__, __LINE__, "attribute 0x%lx: CKR_OK with "
			"CK_UNAVAILABLE_INFORMATION", (unsigned long)t);
		return CKR_GENERAL_ERROR;
	}
	a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1);
	rv = P->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

CK_ULONG tp_attr_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t)
{
	CK_ULONG v = (CK_ULONG)-1;
	CK_ATTRIBUTE a = { t, &v, sizeof v };
	CK_RV rv = P->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK || a.ulValueLen != sizeof v) {
		tp_fail(__FILE__, __LINE__, "attribute 0x%lx: %s, length %lu",
			(unsigned long)t, tp_rv_name(rv), (unsigned long)a.ulValueLen);
		return (CK_ULONG)-1;
	}
	return v;
}

int tp_attr_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t)
{
	CK_BBOOL v = 2;
	CK_ATTRIBUTE a = { t, &v, sizeof v };
	CK_RV rv = P->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK || a.ulValueLen != sizeof v) {
		tp_fail(__FILE__, __LINE__, "attribute 0x%lx: %s, length %lu",
			(unsigned long)t, tp_rv_name(rv), (unsigned long)a.ulValueLen);
		return -1;
	}
	return v == CK_TRUE ? 1 : v == CK_FALSE ? 0 : -1;
}

CK_RV tp_derive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, ck_ec_kdf_t kdf,
		const uint8_t *shared, size_t shared_len,
		const uint8_t *peer, size_t peer_len,
		CK_KEY_TYPE key_type, CK_ULONG value_len,
		uint8_t *out, size_t *out_len)
{
	CK_ECDH1_DERIVE_PARAMS p = {
		.kdf = kdf,
		.ulSharedDataLen = shared_len,
		.pSharedData = (CK_BYTE_PTR)shared,
		.ulPublicDataLen = peer_len,
		.pPublicData = (CK_BYTE_PTR)peer,
	};
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof p };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL f = CK_FALSE, t = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_KEY_TYPE, &key_type, sizeof key_type },
		{ CKA_TOKEN, &f, sizeof f },
		{ CKA_SENSITIVE, &f, sizeof f },
		{ CKA_EXTRACTABLE, &t, sizeof t },
		{ CKA_VALUE_LEN, &value_len, sizeof value_len },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = P->C_DeriveKey(s, &m, key, tmpl, value_len ? 6 : 5, &h);
	if (rv != CKR_OK) {
		CHECKF(h == CK_INVALID_HANDLE, "failed C_DeriveKey returned a handle");
		return rv;
	}
	CHECK(h != CK_INVALID_HANDLE);

	uint8_t *v = NULL;
	CK_ULONG vl = 0;
	rv = tp_attr(s, h, CKA_VALUE, &v, &vl);
	if (rv != CKR_OK) {
		tp_fail(__FILE__, __LINE__, "CKA_VALUE of the derived key: %s", tp_rv_name(rv));
		P->C_DestroyObject(s, h);
		return CKR_GENERAL_ERROR;
	}
	memcpy(out, v, vl);
	*out_len = vl;
	free(v);
	CHECKF(tp_attr_ulong(s, h, CKA_CLASS) == CKO_SECRET_KEY, "derived CKA_CLASS");
	CHECKF(tp_attr_ulong(s, h, CKA_KEY_TYPE) == key_type, "derived CKA_KEY_TYPE");
	CK_ULONG vlen = tp_attr_ulong(s, h, CKA_VALUE_LEN);
	CHECKF(vlen == vl, "derived key: CKA_VALUE_LEN %lu but CKA_VALUE has %lu bytes",
	       (unsigned long)vlen, (unsigned long)vl);
	CHECKF(tp_attr_bool(s, h, CKA_TOKEN) == 0, "derived key is not a session object");
	CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
	return CKR_OK;
}

/* ---- base64url, hex -------------------------------------------------- */

static const char b64u[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

long tp_b64u_decode(const char *in, uint8_t *out, size_t max)
{
	size_t n = 0;
	unsigned acc = 0, bits = 0;
	for (; *in; in++) {
		const char *p = strchr(b64u, *in);
		if (!p || !*in)
			return -1;
		acc = (acc << 6) | (unsigned)(p - b64u);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= max)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (long)n;
}

void tp_b64u_encode(const uint8_t *in, size_t n, char *out)
{
	unsigned acc = 0, bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*out++ = b64u[(acc >> bits) & 63];
		}
	}
	if (bits)
		*out++ = b64u[(acc << (6 - bits)) & 63];
	*out = 0;
}

void tp_hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
	out[2 * n] = 0;
}

/* ---- the Tang server -------------------------------------------------- */

static bool get_coord(json_t *jwk, const char *name, uint8_t out[TP_P521_LEN])
{
	const char *s = json_string_value(json_object_get(jwk, name));
	return s && tp_b64u_decode(s, out, TP_P521_LEN) == TP_P521_LEN;
}

static bool load_key(const char *dir, const char *name, tp_server_key *k)
{
	memset(k, 0, sizeof *k);
	snprintf(k->path, sizeof k->path, "%s/%s", dir, name);
	json_error_t e;
	json_t *j = json_load_file(k->path, 0, &e);
	if (!j) {
		tp_fail(__FILE__, __LINE__, "%s: %s", k->path, e.text);
		return false;
	}
	const char *alg = json_string_value(json_object_get(j, "alg"));
	if (!alg || strcmp(alg, "ECMR") != 0) {
		json_decref(j);
		return false;
	}
	const char *crv = json_string_value(json_object_get(j, "crv"));
	const char *xs = json_string_value(json_object_get(j, "x"));
	const char *ys = json_string_value(json_object_get(j, "y"));
	if (!crv || strcmp(crv, "P-521") != 0 || !xs || !ys || !get_coord(j, "x", k->x) ||
	    !get_coord(j, "y", k->y) || !get_coord(j, "d", k->d)) {
		tp_fail(__FILE__, __LINE__, "%s: not a P-521 private JWK", k->path);
		json_decref(j);
		return false;
	}
	/* RFC 7638 thumbprint, computed here: it must be the file name. */
	char input[512];
	unsigned char dg[32];
	snprintf(input, sizeof input, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		 crv, xs, ys);
	EVP_Digest(input, strlen(input), dg, NULL, EVP_sha256(), NULL);
	memcpy(k->id, dg, 32);
	tp_b64u_encode(dg, 32, k->kid);
	json_decref(j);

	k->hidden = name[0] == '.';
	char expect[128];
	snprintf(expect, sizeof expect, "%s%s.jwk", k->hidden ? "." : "", k->kid);
	CHECKF(strcmp(expect, name) == 0, "key file %s: S256 thumbprint is %s", name, k->kid);
	k->pkey = tp_ec_from_raw(k->x, k->y, k->d);
	return k->pkey != NULL;
}

int tp_server_keys(tp_server_key *out, int max, bool with_hidden)
{
	const char *db = tp_env("TANG_DB");
	DIR *d = opendir(db);
	struct dirent *e;
	int n = 0;
	REQUIRE(d != NULL);
	while ((e = readdir(d)) != NULL && n < max) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".jwk") != 0)
			continue;
		if (e->d_name[0] == '.' && !with_hidden)
			continue;
		if (load_key(db, e->d_name, &out[n]))
			n++;
	}
	closedir(d);
	return n;
}

bool tp_signing_thp(char out[64])
{
	const char *db = tp_env("TANG_DB");
	DIR *d = opendir(db);
	struct dirent *e;
	bool found = false;
	REQUIRE(d != NULL);
	while (!found && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".jwk") != 0 || e->d_name[0] == '.')
			continue;
		char path[4400];
		snprintf(path, sizeof path, "%s/%s", db, e->d_name);
		json_t *j = json_load_file(path, 0, NULL);
		const char *alg = json_string_value(json_object_get(j, "alg"));
		const char *crv = json_string_value(json_object_get(j, "crv"));
		const char *x = json_string_value(json_object_get(j, "x"));
		const char *y = json_string_value(json_object_get(j, "y"));
		if (alg && strcmp(alg, "ES512") == 0 && crv && x && y) {
			char input[512];
			unsigned char dg[32];
			snprintf(input, sizeof input,
				 "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x, y);
			EVP_Digest(input, strlen(input), dg, NULL, EVP_sha256(), NULL);
			tp_b64u_encode(dg, 32, out);
			found = true;
		}
		json_decref(j);
	}
	closedir(d);
	return found;
}

void tp_server_key_free(tp_server_key *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

void tp_tang(const char *what)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "\"%s\" %s", tp_env("TANG_CTL"), what);
	int rc = system(cmd);
	REQUIRE(rc == 0);
}

int tp_server_posts(void)
{
	char *log = tp_read_file(tp_env("TANG_SERVER_LOG"), 0);
	int n = 0;
	for (char *p = log; p && (p = strstr(p, "POST")) != NULL; p += 4)
		n++;
	free(log);
	return n;
}

int tp_blackhole(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)*port) };
	socklen_t al = sizeof a;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	int i;
	for (i = 0; i < 50; i++) {
		if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0)
			break;
		usleep(100000);
	}
	REQUIRE(i < 50);
	REQUIRE(listen(fd, 64) == 0);
	REQUIRE(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

int tp_closed_port(void)
{
	int port = 0;
	int fd = tp_blackhole(&port);
	close(fd);
	return port;
}

/* ---- crypto ------------------------------------------------------------ */

EVP_PKEY *tp_ec_gen(const char *group)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
	REQUIRE(k != NULL);
	return k;
}

size_t tp_ec_point(EVP_PKEY *k, uint8_t *out, size_t max)
{
	size_t n = 0;
	if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, out, max, &n))
		return 0;
	return n;
}

EVP_PKEY *tp_ec_from_raw(const uint8_t *x, const uint8_t *y, const uint8_t *d)
{
	uint8_t pub[1 + 2 * TP_P521_LEN];
	pub[0] = 4;
	memcpy(pub + 1, x, TP_P521_LEN);
	memcpy(pub + 1 + TP_P521_LEN, y, TP_P521_LEN);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	BIGNUM *bn = d ? BN_bin2bn(d, TP_P521_LEN, NULL) : NULL;
	OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "P-521", 0);
	OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub);
	if (bn)
		OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	if (!c || EVP_PKEY_fromdata_init(c) <= 0 ||
	    EVP_PKEY_fromdata(c, &k, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
		k = NULL;
	EVP_PKEY_CTX_free(c);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(bn);
	if (!k)
		tp_fail(__FILE__, __LINE__, "cannot build a P-521 key from raw values");
	return k;
}

size_t tp_ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(priv, NULL);
	size_t n = 0;
	if (c && EVP_PKEY_derive_init(c) > 0 && EVP_PKEY_derive_set_peer(c, peer) > 0 &&
	    EVP_PKEY_derive(c, NULL, &n) > 0 && EVP_PKEY_derive(c, z, &n) > 0) {
		EVP_PKEY_CTX_free(c);
		return n;
	}
	EVP_PKEY_CTX_free(c);
	tp_fail(__FILE__, __LINE__, "local ECDH failed");
	return 0;
}

size_t tp_spki(EVP_PKEY *k, uint8_t **der)
{
	*der = NULL;
	int n = i2d_PUBKEY(k, der);
	return n > 0 ? (size_t)n : 0;
}

void tp_x963(const EVP_MD *md, const uint8_t *z, size_t zl, const uint8_t *sh,
	     size_t shl, uint8_t *out, size_t outl)
{
	/* ANSI X9.63 §5.6.3 / SEC 1 §3.6.1: K = Hash(Z || Counter || SharedInfo)
	 * for Counter = 1, 2, ... (32-bit big-endian), concatenated, truncated. */
	uint32_t counter = 1;
	size_t done = 0;
	unsigned char block[EVP_MAX_MD_SIZE];
	while (done < outl) {
		unsigned char c[4] = { (unsigned char)(counter >> 24), (unsigned char)(counter >> 16),
				       (unsigned char)(counter >> 8), (unsigned char)counter };
		unsigned int bl = 0;
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_DigestInit_ex(ctx, md, NULL);
		EVP_DigestUpdate(ctx, z, zl);
		EVP_DigestUpdate(ctx, c, 4);
		if (shl)
			EVP_DigestUpdate(ctx, sh, shl);
		EVP_DigestFinal_ex(ctx, block, &bl);
		EVP_MD_CTX_free(ctx);
		size_t take = outl - done < bl ? outl - done : bl;
		memcpy(out + done, block, take);
		done += take;
		counter++;
	}
}

bool tp_x963_ossl(const char *digest, const uint8_t *z, size_t zl, const uint8_t *sh,
		  size_t shl, uint8_t *out, size_t outl)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "X963KDF", NULL);
	EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[4], *q = p;
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, zl);
	if (shl)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)sh, shl);
	*q = OSSL_PARAM_construct_end();
	bool ok = c && EVP_KDF_derive(c, out, outl, p) > 0;
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
	return ok;
}

/* ---- files, time ------------------------------------------------------ */

double tp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *tp_read_file(const char *path, size_t offset)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	if (offset)
		fseek(f, (long)offset, SEEK_SET);
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (cap - n < 2048)
			buf = realloc(buf, cap *= 2);
	}
	buf[n] = 0;
	fclose(f);
	return buf;
}

size_t tp_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

void tp_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

int tp_count_lines(const char *text)
{
	int n = 0;
	bool blank = true;
	for (const char *p = text; p && *p; p++) {
		if (*p == '\n') {
			if (!blank)
				n++;
			blank = true;
		} else if (!isspace((unsigned char)*p)) {
			blank = false;
		}
	}
	if (!blank)
		n++;
	return n;
}

bool tp_contains_ci(const char *hay, const char *needle)
{
	return hay && strcasestr(hay, needle) != NULL;
}
