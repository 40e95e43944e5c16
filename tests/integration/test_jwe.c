/* tp-jwe: CKM_TANG_JWE against real clevis and tangd.
 *
 *   tp-jwe clevis-in     `clevis encrypt tang` -> C_Decrypt (single and
 *                        multi-part) and C_UnwrapKey, 0/1/32/4096/65537 bytes
 *   tp-jwe clevis-out    C_Encrypt (single and multi-part) and C_WrapKey of
 *                        an ECDH-derived secret -> `clevis decrypt`
 *   tp-jwe rotate        a JWE made before tangd-rotate-keys recovers
 *                        afterwards, in this process and in a fresh one
 *   tp-jwe unknown-kid   the JWE's key deleted from the server:
 *                        CKR_DEVICE_ERROR, log "unknown key (HTTP 404)"
 *   tp-jwe tamper        every tampering: the documented CK_RV, no
 *                        plaintext, no key, and no POST when detectable
 *                        locally
 *   tp-jwe hostile       a server answering /rec with a valid but wrong
 *                        point (tests/fixtures/hostile-rec-server): tag
 *                        failure, CKR_ENCRYPTED_DATA_INVALID
 *
 * Expected plaintexts are random bytes given to clevis; expected secrets
 * of wrapped keys are computed here with OpenSSL from the server's key
 * file.  Runs under tests/fixtures/with-tangd. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

#define SENTINEL 0xA5

static const char *tmpdir;
static char *self_path;

/* ---- processes and files ------------------------------------------------ */

/* Runs argv with stdin/stdout/stderr from/to files (NULL: /dev/null);
 * returns the exit status, or -1. */
static int run(char *const argv[], const char *in, const char *out, const char *err)
{
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int fi = open(in ? in : "/dev/null", O_RDONLY);
		int fo = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fi < 0 || fo < 0 || fe < 0)
			_exit(126);
		dup2(fi, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *path_in_tmp(const char *name)
{
	static char buf[8][4200];
	static int i;
	char *p = buf[i++ % 8];
	snprintf(p, 4200, "%s/%s", tmpdir, name);
	return p;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	REQUIRE(f != NULL);
	REQUIRE(n == 0 || fwrite(p, 1, n, f) == n);
	REQUIRE(fclose(f) == 0);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
	char *s = tp_read_file(path, 0);
	if (!s)
		return NULL;
	*n = tp_file_size(path);
	return (uint8_t *)s;
}

static char *clevis_cfg(const char *url)
{
	static char cfg[1024];
	snprintf(cfg, sizeof cfg, "{\"url\":\"%s\",\"thp\":\"%s\"}", url, tp_env("TANG_THP"));
	return cfg;
}

/* `clevis encrypt tang CFG` of n bytes; returns the JWE (NUL terminated). */
static char *clevis_encrypt(const char *cfg, const uint8_t *pt, size_t n)
{
	char *in = path_in_tmp("clevis.in"), *out = path_in_tmp("clevis.jwe");
	char *err = path_in_tmp("clevis.err");
	write_bytes(in, pt, n);
	char *argv[] = { "clevis", "encrypt", "tang", (char *)cfg, NULL };
	int rc = run(argv, in, out, err);
	if (rc != 0) {
		char *e = tp_read_file(err, 0);
		tp_fail(__FILE__, __LINE__, "clevis encrypt tang exited %d: %s", rc, e ? e : "");
		free(e);
		exit(tp_exit());
	}
	size_t len;
	char *jwe = (char *)read_bytes(out, &len);
	REQUIRE(jwe && len > 100 && strlen(jwe) == len);
	return jwe;
}

/* `clevis decrypt` of a JWE; returns its exit status, plaintext in *pt. */
static int clevis_decrypt(const uint8_t *jwe, size_t len, uint8_t **pt, size_t *n)
{
	char *in = path_in_tmp("cd.jwe"), *out = path_in_tmp("cd.out");
	char *err = path_in_tmp("cd.err");
	write_bytes(in, jwe, len);
	unlink(err);
	char *argv[] = { "clevis", "decrypt", NULL };
	int rc = run(argv, in, out, err);
	*pt = read_bytes(out, n);
	if (rc != 0) {
		char *e = tp_read_file(err, 0);
		tp_note("clevis decrypt exited %d: %s", rc, e ? e : "");
		free(e);
	}
	return rc;
}

/* ---- the module ---------------------------------------------------------- */

static CK_MECHANISM jwe_mech = { CKM_TANG_JWE, NULL, 0 };

/* The Tang key pair of the current exchange key of the server. */
static void tang_keys(CK_SESSION_HANDLE s, tp_server_key *k, CK_OBJECT_HANDLE *priv,
		      CK_OBJECT_HANDLE *pub)
{
	REQUIRE(tp_server_keys(k, 1, false) == 1);
	*priv = tp_find_key(s, CKO_PRIVATE_KEY, k->id);
	*pub = tp_find_key(s, CKO_PUBLIC_KEY, k->id);
	REQUIRE(*priv != CK_INVALID_HANDLE);
	REQUIRE(*pub != CK_INVALID_HANDLE);
}

static CK_SESSION_HANDLE start(void)
{
	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	CK_SLOT_ID slot = tp_slot("tang");
	CK_MECHANISM_INFO mi;
	REQUIRE_RV(P->C_GetMechanismInfo(slot, CKM_TANG_JWE, &mi), CKR_OK);
	CHECKF((mi.flags & (CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP)) ==
		       (CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP),
	       "CKM_TANG_JWE flags 0x%lx lack encrypt/decrypt/wrap/unwrap",
	       (unsigned long)mi.flags);
	return tp_open(slot);
}

/* Single-part C_Decrypt with the two-call convention.  On success *out
 * holds the plaintext; on failure the output buffer must be untouched. */
static CK_RV decrypt1(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const void *jwe, size_t len,
		      uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	CK_RV rv = P->C_DecryptInit(s, &jwe_mech, key);
	if (rv != CKR_OK)
		return rv;
	CK_ULONG n = 0;
	rv = P->C_Decrypt(s, (CK_BYTE_PTR)jwe, len, NULL, &n);
	if (rv != CKR_OK)
		return rv;
	CK_ULONG cap = n;
	uint8_t *buf = malloc(cap + 16);
	REQUIRE(buf);
	memset(buf, SENTINEL, cap + 16);
	if (n > 0) {
		/* One byte short: CKR_BUFFER_TOO_SMALL (or the error), the
		 * operation stays active, nothing written. */
		CK_ULONG small = 0;
		rv = P->C_Decrypt(s, (CK_BYTE_PTR)jwe, len, buf, &small);
		if (rv != CKR_BUFFER_TOO_SMALL) {
			CHECKF(rv != CKR_OK, "C_Decrypt with a 0-byte buffer returned CKR_OK");
			for (size_t i = 0; i < cap + 16; i++)
				if (buf[i] != SENTINEL) {
					tp_fail(__FILE__, __LINE__,
						"failed C_Decrypt (%s) wrote into the buffer",
						tp_rv_name(rv));
					break;
				}
			free(buf);
			return rv;
		}
		CHECKF(small >= 1, "CKR_BUFFER_TOO_SMALL gave length %lu", (unsigned long)small);
	}
	n = cap;
	rv = P->C_Decrypt(s, (CK_BYTE_PTR)jwe, len, buf, &n);
	if (rv != CKR_OK) {
		for (size_t i = 0; i < cap + 16; i++)
			if (buf[i] != SENTINEL) {
				tp_fail(__FILE__, __LINE__, "failed C_Decrypt (%s) wrote into the buffer",
					tp_rv_name(rv));
				break;
			}
		free(buf);
		return rv;
	}
	CHECKF(n <= cap, "C_Decrypt: length %lu above the announced %lu", (unsigned long)n,
	       (unsigned long)cap);
	/* The operation is finished: another C_Decrypt is not initialized. */
	CK_ULONG again = 0;
	CHECK_RV(P->C_Decrypt(s, (CK_BYTE_PTR)jwe, len, NULL, &again), CKR_OPERATION_NOT_INITIALIZED);
	*out = buf;
	*out_len = n;
	return CKR_OK;
}

/* Multi-part: the JWE in chunks of `chunk` bytes; updates release nothing
 * (the tag is checked at the end), C_DecryptFinal gives the plaintext. */
static CK_RV decrypt_multi(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const void *jwe,
			   size_t len, size_t chunk, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	CK_RV rv = P->C_DecryptInit(s, &jwe_mech, key);
	if (rv != CKR_OK)
		return rv;
	uint8_t scratch[64];
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		CK_ULONG ol = sizeof scratch;
		memset(scratch, SENTINEL, sizeof scratch);
		rv = P->C_DecryptUpdate(s, (CK_BYTE_PTR)jwe + off, n, scratch, &ol);
		if (rv != CKR_OK)
			return rv;
		CHECKF(ol == 0, "C_DecryptUpdate released %lu bytes before the tag was checked",
		       (unsigned long)ol);
	}
	CK_ULONG n = 0;
	rv = P->C_DecryptFinal(s, NULL, &n);
	if (rv != CKR_OK)
		return rv;
	uint8_t *buf = malloc(n + 16);
	REQUIRE(buf);
	memset(buf, SENTINEL, n + 16);
	CK_ULONG cap = n;
	rv = P->C_DecryptFinal(s, buf, &n);
	if (rv != CKR_OK) {
		for (size_t i = 0; i < cap + 16; i++)
			if (buf[i] != SENTINEL) {
				tp_fail(__FILE__, __LINE__,
					"failed C_DecryptFinal (%s) wrote into the buffer",
					tp_rv_name(rv));
				break;
			}
		free(buf);
		return rv;
	}
	*out = buf;
	*out_len = n;
	return CKR_OK;
}

static size_t count_secret_keys(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof cls } };
	CK_OBJECT_HANDLE h[64];
	return tp_find(s, t, 1, h, 64);
}

/* C_UnwrapKey into a generic secret (session, not sensitive, extractable);
 * reads CKA_VALUE back and destroys the key. */
static CK_RV unwrap(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const void *jwe, size_t len,
		    uint8_t **value, size_t *value_len)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL f = CK_FALSE, t = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_TOKEN, &f, sizeof f },
		{ CKA_SENSITIVE, &f, sizeof f },
		{ CKA_EXTRACTABLE, &t, sizeof t },
	};
	*value = NULL;
	*value_len = 0;
	size_t before = count_secret_keys(s);
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = P->C_UnwrapKey(s, &jwe_mech, key, (CK_BYTE_PTR)jwe, len, tmpl, 5, &h);
	if (rv != CKR_OK) {
		CHECKF(h == CK_INVALID_HANDLE, "failed C_UnwrapKey (%s) returned a handle",
		       tp_rv_name(rv));
		CHECKF(count_secret_keys(s) == before, "failed C_UnwrapKey (%s) left a key",
		       tp_rv_name(rv));
		return rv;
	}
	REQUIRE(h != CK_INVALID_HANDLE);
	uint8_t *v = NULL;
	CK_ULONG vl = 0;
	CHECK_RV(tp_attr(s, h, CKA_VALUE, &v, &vl), CKR_OK);
	CHECKF(tp_attr_ulong(s, h, CKA_CLASS) == CKO_SECRET_KEY, "unwrapped CKA_CLASS");
	CHECKF(tp_attr_ulong(s, h, CKA_KEY_TYPE) == CKK_GENERIC_SECRET, "unwrapped CKA_KEY_TYPE");
	CHECKF(tp_attr_ulong(s, h, CKA_VALUE_LEN) == vl, "unwrapped CKA_VALUE_LEN %lu, value %lu",
	       (unsigned long)tp_attr_ulong(s, h, CKA_VALUE_LEN), (unsigned long)vl);
	CHECKF(tp_attr_bool(s, h, CKA_TOKEN) == 0, "unwrapped key is a token object");
	CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
	*value = v;
	*value_len = vl;
	return CKR_OK;
}

static CK_RV encrypt1(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, const uint8_t *pt, size_t n,
		      char **jwe, size_t *len)
{
	CK_RV rv = P->C_EncryptInit(s, &jwe_mech, pub);
	if (rv != CKR_OK)
		return rv;
	CK_ULONG l = 0;
	rv = P->C_Encrypt(s, (CK_BYTE_PTR)pt, n, NULL, &l);
	if (rv != CKR_OK)
		return rv;
	char *buf = malloc(l + 1);
	REQUIRE(buf);
	CK_ULONG small = 10;
	CHECK_RV(P->C_Encrypt(s, (CK_BYTE_PTR)pt, n, (CK_BYTE_PTR)buf, &small),
		 CKR_BUFFER_TOO_SMALL);
	CK_ULONG cap = l;
	rv = P->C_Encrypt(s, (CK_BYTE_PTR)pt, n, (CK_BYTE_PTR)buf, &l);
	if (rv != CKR_OK) {
		free(buf);
		return rv;
	}
	CHECK(l <= cap);
	buf[l] = 0;
	*jwe = buf;
	*len = l;
	return CKR_OK;
}

static CK_RV encrypt_multi(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, const uint8_t *pt,
			   size_t n, size_t chunk, char **jwe, size_t *len)
{
	CK_RV rv = P->C_EncryptInit(s, &jwe_mech, pub);
	if (rv != CKR_OK)
		return rv;
	size_t cap = 2 * n + 200000, used = 0;
	char *buf = malloc(cap);
	REQUIRE(buf);
	for (size_t off = 0; off < n; off += chunk) {
		size_t m = n - off < chunk ? n - off : chunk;
		CK_ULONG ol = 0;
		rv = P->C_EncryptUpdate(s, (CK_BYTE_PTR)pt + off, m, NULL, &ol);
		if (rv == CKR_OK) {
			REQUIRE(used + ol < cap);
			rv = P->C_EncryptUpdate(s, (CK_BYTE_PTR)pt + off, m,
						(CK_BYTE_PTR)buf + used, &ol);
		}
		if (rv != CKR_OK) {
			free(buf);
			return rv;
		}
		used += ol;
	}
	CK_ULONG ol = 0;
	rv = P->C_EncryptFinal(s, NULL, &ol);
	if (rv == CKR_OK) {
		REQUIRE(used + ol < cap);
		rv = P->C_EncryptFinal(s, (CK_BYTE_PTR)buf + used, &ol);
	}
	if (rv != CKR_OK) {
		free(buf);
		return rv;
	}
	used += ol;
	buf[used] = 0;
	*jwe = buf;
	*len = used;
	return CKR_OK;
}

/* ---- JWE text ---------------------------------------------------------- */

typedef struct {
	char *part[5];
} jwe_parts;

static void split(const char *jwe, jwe_parts *p)
{
	const char *s = jwe;
	for (int i = 0; i < 5; i++) {
		const char *e = strchr(s, '.');
		if (i == 4)
			e = s + strlen(s);
		REQUIRE(e != NULL);
		p->part[i] = strndup(s, (size_t)(e - s));
		s = e + 1;
	}
}

static char *join(const jwe_parts *p)
{
	size_t n = 5;
	for (int i = 0; i < 5; i++)
		n += strlen(p->part[i]);
	char *out = malloc(n);
	REQUIRE(out);
	snprintf(out, n, "%s.%s.%s.%s.%s", p->part[0], p->part[1], p->part[2], p->part[3],
		 p->part[4]);
	return out;
}

static void free_parts(jwe_parts *p)
{
	for (int i = 0; i < 5; i++)
		free(p->part[i]);
}

static char *b64u_text(const char *b64)
{
	size_t n = strlen(b64);
	uint8_t *buf = malloc(n + 1);
	long l = tp_b64u_decode(b64, buf, n);
	REQUIRE(l >= 0);
	buf[l] = 0;
	return (char *)buf;
}

static char *text_b64u(const char *text)
{
	size_t n = strlen(text);
	char *out = malloc(n * 4 / 3 + 8);
	tp_b64u_encode((const uint8_t *)text, n, out);
	return out;
}

static void flip_bit(char **b64, size_t byte)
{
	uint8_t buf[70000];
	long n = tp_b64u_decode(*b64, buf, sizeof buf);
	REQUIRE(n > (long)byte);
	buf[byte] ^= 0x01;
	char *out = malloc((size_t)n * 4 / 3 + 8);
	tp_b64u_encode(buf, (size_t)n, out);
	free(*b64);
	*b64 = out;
}

/* The header as JSON; set it back (compact, sorted, as jose writes). */
static json_t *header_json(const jwe_parts *p)
{
	char *t = b64u_text(p->part[0]);
	json_t *j = json_loads(t, 0, NULL);
	free(t);
	REQUIRE(j);
	return j;
}

static void set_header(jwe_parts *p, json_t *j, size_t flags)
{
	char *t = json_dumps(j, flags);
	REQUIRE(t);
	free(p->part[0]);
	p->part[0] = text_b64u(t);
	free(t);
}

static json_t *jwk_of(EVP_PKEY *k, const char *crv, size_t coord)
{
	uint8_t pt[1 + 2 * 66];
	size_t n = tp_ec_point(k, pt, sizeof pt);
	REQUIRE(n == 1 + 2 * coord);
	char x[100], y[100];
	tp_b64u_encode(pt + 1, coord, x);
	tp_b64u_encode(pt + 1 + coord, coord, y);
	return json_pack("{s:s,s:s,s:s,s:s}", "crv", crv, "kty", "EC", "x", x, "y", y);
}

/* ---- clevis-in ------------------------------------------------------------- */

static const size_t SIZES[] = { 0, 1, 32, 4096, 65537 };

static void mode_clevis_in(void)
{
	CK_SESSION_HANDLE s = start();
	tp_server_key k;
	CK_OBJECT_HANDLE priv, pub;
	tang_keys(s, &k, &priv, &pub);
	const char *cfg = clevis_cfg(tp_env("TANG_URL"));

	for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
		size_t n = SIZES[i];
		char name[64];
		snprintf(name, sizeof name, "clevis-in %zu bytes", n);
		tp_case_begin(name);
		uint8_t *pt = malloc(n + 1);
		REQUIRE(RAND_bytes(pt, (int)n + 1) == 1);
		char *jwe = clevis_encrypt(cfg, pt, n);
		size_t jl = strlen(jwe);

		int posts = tp_server_posts();
		uint8_t *out;
		size_t ol;
		CK_RV rv = decrypt1(s, priv, jwe, jl, &out, &ol);
		CHECK_RV(rv, CKR_OK);
		if (rv == CKR_OK)
			CHECK_MEM(out, ol, pt, n, "C_Decrypt plaintext");
		free(out);
		usleep(100000);
		CHECKF(tp_server_posts() > posts, "C_Decrypt made no POST /rec");

		/* Multi-part, in odd chunks, and with a trailing newline. */
		rv = decrypt_multi(s, priv, jwe, jl, 97, &out, &ol);
		CHECK_RV(rv, CKR_OK);
		if (rv == CKR_OK)
			CHECK_MEM(out, ol, pt, n, "C_DecryptUpdate/Final plaintext");
		free(out);
		char *nl = malloc(jl + 2);
		memcpy(nl, jwe, jl);
		memcpy(nl + jl, "\n", 2);
		rv = decrypt1(s, priv, nl, jl + 1, &out, &ol);
		CHECKF(rv == CKR_OK, "C_Decrypt of the JWE + newline: %s", tp_rv_name(rv));
		if (rv == CKR_OK)
			CHECK_MEM(out, ol, pt, n, "C_Decrypt plaintext (JWE + newline)");
		free(out);
		free(nl);

		/* Unwrap: the plaintext becomes the key's value. */
		rv = unwrap(s, priv, jwe, jl, &out, &ol);
		if (n == 0) {
			CHECK_RV(rv, CKR_WRAPPED_KEY_LEN_RANGE);
		} else {
			CHECK_RV(rv, CKR_OK);
			if (rv == CKR_OK)
				CHECK_MEM(out, ol, pt, n, "C_UnwrapKey CKA_VALUE");
		}
		free(out);
		free(jwe);
		free(pt);
		tp_case_end();
	}
	tp_server_key_free(&k);
	P->C_Finalize(NULL);
}

/* ---- clevis-out ------------------------------------------------------------ */

static void check_produced(const char *jwe, const tp_server_key *k)
{
	jwe_parts p;
	split(jwe, &p);
	CHECKF(strlen(p.part[1]) == 0, "encrypted_key is not empty");
	CHECKF(strlen(p.part[2]) == 16, "IV is not 12 bytes");
	CHECKF(strlen(p.part[4]) == 22, "tag is not 16 bytes");
	json_t *h = header_json(&p);
	CHECKF(json_is_string(json_object_get(h, "alg")) &&
		       strcmp(json_string_value(json_object_get(h, "alg")), "ECDH-ES") == 0,
	       "alg is not ECDH-ES");
	CHECKF(json_is_string(json_object_get(h, "enc")) &&
		       strcmp(json_string_value(json_object_get(h, "enc")), "A256GCM") == 0,
	       "enc is not A256GCM");
	const char *kid = json_string_value(json_object_get(h, "kid"));
	CHECKF(kid && strcmp(kid, k->kid) == 0, "kid %s, want %s", kid ? kid : "(none)", k->kid);
	json_t *c = json_object_get(h, "clevis");
	const char *pin = json_string_value(json_object_get(c, "pin"));
	CHECKF(pin && strcmp(pin, "tang") == 0, "clevis.pin is not tang");
	const char *url = json_string_value(json_object_get(json_object_get(c, "tang"), "url"));
	CHECKF(url && strcmp(url, tp_env("TANG_URL")) == 0, "clevis.tang.url %s", url ? url : "-");
	CHECKF(json_is_array(json_object_get(
		       json_object_get(json_object_get(c, "tang"), "adv"), "keys")),
	       "clevis.tang.adv.keys missing");
	json_decref(h);
	free_parts(&p);
}

static void mode_clevis_out(void)
{
	CK_SESSION_HANDLE s = start();
	tp_server_key k;
	CK_OBJECT_HANDLE priv, pub;
	tang_keys(s, &k, &priv, &pub);

	for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
		size_t n = SIZES[i];
		char name[64];
		snprintf(name, sizeof name, "clevis-out %zu bytes", n);
		tp_case_begin(name);
		uint8_t *pt = malloc(n + 1);
		REQUIRE(RAND_bytes(pt, (int)n + 1) == 1);
		for (int multi = 0; multi < 2; multi++) {
			int posts = tp_server_posts();
			char *jwe = NULL;
			size_t jl = 0;
			CK_RV rv = multi ? encrypt_multi(s, pub, pt, n, 1000, &jwe, &jl)
					 : encrypt1(s, pub, pt, n, &jwe, &jl);
			CHECKF(rv == CKR_OK, "%s of %zu bytes: %s",
			       multi ? "C_EncryptUpdate/Final" : "C_Encrypt", n, tp_rv_name(rv));
			if (rv != CKR_OK)
				continue;
			CHECKF(tp_server_posts() == posts, "C_Encrypt made a POST (must be offline)");
			CHECKF(strlen(jwe) == jl, "the JWE contains a NUL byte");
			check_produced(jwe, &k);
			uint8_t *got = NULL;
			size_t gl = 0;
			int rc = clevis_decrypt((uint8_t *)jwe, jl, &got, &gl);
			CHECKF(rc == 0, "clevis decrypt of the module's JWE exited %d", rc);
			if (rc == 0)
				CHECK_MEM(got, gl, pt, n, "clevis decrypt of C_Encrypt's JWE");
			free(got);
			/* And back through the module. */
			uint8_t *back;
			size_t bl;
			rv = decrypt1(s, priv, jwe, jl, &back, &bl);
			CHECK_RV(rv, CKR_OK);
			if (rv == CKR_OK)
				CHECK_MEM(back, bl, pt, n, "C_Decrypt of C_Encrypt's JWE");
			free(back);
			free(jwe);
		}
		free(pt);
		tp_case_end();
	}

	/* C_WrapKey of a secret derived with CKM_ECDH1_DERIVE: its value is
	 * x(s·C), computed here from the server's key file. */
	tp_case_begin("wrap an ECDH-derived secret");
	EVP_PKEY *peer = tp_ec_gen("P-521");
	uint8_t raw[1 + 2 * 66], z[66];
	REQUIRE(tp_ec_point(peer, raw, sizeof raw) == sizeof raw);
	REQUIRE(tp_ecdh(k.pkey, peer, z) == 66);
	CK_ECDH1_DERIVE_PARAMS dp = { .kdf = CKD_NULL, .ulPublicDataLen = sizeof raw,
				      .pPublicData = raw };
	CK_MECHANISM dm = { CKM_ECDH1_DERIVE, &dp, sizeof dp };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_TOKEN, &f, sizeof f },
		{ CKA_EXTRACTABLE, &t, sizeof t },
	};
	CK_OBJECT_HANDLE sec = CK_INVALID_HANDLE;
	REQUIRE_RV(P->C_DeriveKey(s, &dm, priv, tmpl, 4, &sec), CKR_OK);
	CK_ULONG wl = 0;
	CK_RV rv = P->C_WrapKey(s, &jwe_mech, pub, sec, NULL, &wl);
	CHECK_RV(rv, CKR_OK);
	if (rv == CKR_OK) {
		char *w = malloc(wl + 1);
		CK_ULONG cap = wl;
		rv = P->C_WrapKey(s, &jwe_mech, pub, sec, (CK_BYTE_PTR)w, &wl);
		CHECK_RV(rv, CKR_OK);
		if (rv == CKR_OK) {
			CHECK(wl <= cap);
			w[wl] = 0;
			check_produced(w, &k);
			uint8_t *got = NULL;
			size_t gl = 0;
			int rc = clevis_decrypt((uint8_t *)w, wl, &got, &gl);
			CHECKF(rc == 0, "clevis decrypt of the wrapped key exited %d", rc);
			if (rc == 0)
				CHECK_MEM(got, gl, z, 66, "clevis decrypt of C_WrapKey's JWE");
			free(got);
			uint8_t *v;
			size_t vl;
			rv = unwrap(s, priv, w, wl, &v, &vl);
			CHECK_RV(rv, CKR_OK);
			if (rv == CKR_OK)
				CHECK_MEM(v, vl, z, 66, "C_UnwrapKey of C_WrapKey's JWE");
			free(v);
		}
		free(w);
	}
	/* A secret that may not leave the token cannot be wrapped. */
	CK_OBJECT_HANDLE sec2 = CK_INVALID_HANDLE;
	tmpl[3].pValue = &f;
	REQUIRE_RV(P->C_DeriveKey(s, &dm, priv, tmpl, 4, &sec2), CKR_OK);
	wl = 0;
	CHECK_RV(P->C_WrapKey(s, &jwe_mech, pub, sec2, NULL, &wl), CKR_KEY_UNEXTRACTABLE);
	EVP_PKEY_free(peer);
	tp_case_end();

	tp_server_key_free(&k);
	P->C_Finalize(NULL);
}

/* ---- rotation and unknown kid --------------------------------------------- */

static void rotate_server(void)
{
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "/usr/libexec/tangd-rotate-keys -d \"%s\" >/dev/null 2>&1",
		 tp_env("TANG_DB"));
	REQUIRE(system(cmd) == 0);
	/* The configuration pins the new signing key: the old one no longer
	 * signs a payload it is part of (test_derive.c rotate shows that). */
	char thp[64], conf[1024];
	REQUIRE(tp_signing_thp(thp));
	REQUIRE(strcmp(thp, tp_env("TANG_THP")) != 0);
	snprintf(conf, sizeof conf,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", "
		 "\"thp\": \"%s\" }, \"timeout\": 5 } ] }\n", tp_env("TANG_URL"), thp);
	tp_write_file(tp_env("TANG_PKCS11_CONF"), conf);
}

/* Decrypt (and unwrap) JWE file argv[2], expect argv[3] (hex) bytes;
 * a fresh process: the module sees only the rotated server. */
static void mode_rotate_child(const char *jwe_path, const char *pt_path)
{
	CK_SESSION_HANDLE s = start();
	tp_server_key k;
	CK_OBJECT_HANDLE priv, pub;
	tang_keys(s, &k, &priv, &pub);
	size_t jl, n;
	uint8_t *jwe = read_bytes(jwe_path, &jl), *pt = read_bytes(pt_path, &n);
	REQUIRE(jwe && pt);
	uint8_t *out;
	size_t ol;
	CK_RV rv = decrypt1(s, priv, jwe, jl, &out, &ol);
	CHECK_RV(rv, CKR_OK);
	if (rv == CKR_OK)
		CHECK_MEM(out, ol, pt, n, "fresh process: old JWE after rotation");
	free(out);
	rv = unwrap(s, priv, jwe, jl, &out, &ol);
	CHECK_RV(rv, CKR_OK);
	if (rv == CKR_OK)
		CHECK_MEM(out, ol, pt, n, "fresh process: unwrap of old JWE after rotation");
	free(out);
	free(jwe);
	free(pt);
	tp_server_key_free(&k);
	P->C_Finalize(NULL);
}

static int run_child(const char *mode, const char *a, const char *b)
{
	char *argv[] = { self_path, (char *)mode, (char *)a, (char *)b, NULL };
	char *log = path_in_tmp("child.out");
	int rc = run(argv, NULL, log, log);
	char *t = tp_read_file(log, 0);
	if (t) {
		printf("  [child %s]\n%s", mode, t);
		free(t);
	}
	return rc;
}

static void mode_rotate(void)
{
	tp_server_key old;
	REQUIRE(tp_server_keys(&old, 1, false) == 1);
	uint8_t pt[32];
	REQUIRE(RAND_bytes(pt, sizeof pt) == 1);
	char *jwe = clevis_encrypt(clevis_cfg(tp_env("TANG_URL")), pt, sizeof pt);
	char *jp = path_in_tmp("old.jwe"), *pp = path_in_tmp("old.pt");
	write_bytes(jp, jwe, strlen(jwe));
	write_bytes(pp, pt, sizeof pt);

	tp_case_begin("before rotation");
	CK_SESSION_HANDLE s = start();
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, old.id);
	REQUIRE(priv != CK_INVALID_HANDLE);
	uint8_t *out;
	size_t ol;
	CK_RV rv = decrypt1(s, priv, jwe, strlen(jwe), &out, &ol);
	CHECK_RV(rv, CKR_OK);
	if (rv == CKR_OK)
		CHECK_MEM(out, ol, pt, sizeof pt, "before rotation");
	free(out);
	tp_case_end();

	rotate_server();
	tp_server_key now;
	REQUIRE(tp_server_keys(&now, 1, false) == 1);
	REQUIRE(memcmp(now.id, old.id, 32) != 0);

	tp_case_begin("after rotation, same process");
	rv = decrypt1(s, priv, jwe, strlen(jwe), &out, &ol);
	CHECK_RV(rv, CKR_OK);
	if (rv == CKR_OK)
		CHECK_MEM(out, ol, pt, sizeof pt, "after rotation, same process");
	free(out);
	P->C_Finalize(NULL);
	tp_case_end();

	tp_case_begin("after rotation, fresh process");
	char *log = tp_read_file(tp_env("TANG_SERVER_LOG"), 0);
	size_t off = log ? strlen(log) : 0;
	free(log);
	CHECKF(run_child("rotate-child", jp, pp) == 0, "the fresh process failed");
	log = tp_read_file(tp_env("TANG_SERVER_LOG"), off);
	char want[128];
	snprintf(want, sizeof want, "POST /rec/%s => 200", old.kid);
	CHECKF(log && strstr(log, want), "the server log lacks \"%s\":\n%s", want, log ? log : "");
	free(log);
	tp_case_end();
	free(jwe);
	tp_server_key_free(&old);
	tp_server_key_free(&now);
}

static void mode_unknown_kid(void)
{
	tp_server_key old;
	REQUIRE(tp_server_keys(&old, 1, false) == 1);
	uint8_t pt[32];
	REQUIRE(RAND_bytes(pt, sizeof pt) == 1);
	char *jwe = clevis_encrypt(clevis_cfg(tp_env("TANG_URL")), pt, sizeof pt);
	rotate_server();
	char hidden[4400];
	snprintf(hidden, sizeof hidden, "%s/.%s.jwk", tp_env("TANG_DB"), old.kid);
	REQUIRE(unlink(hidden) == 0);

	CK_SESSION_HANDLE s = start();
	tp_server_key k;
	CK_OBJECT_HANDLE priv, pub;
	tang_keys(s, &k, &priv, &pub);
	const char *logpath = tp_env("TANG_PKCS11_LOG");
	size_t off = tp_file_size(logpath);

	tp_case_begin("decrypt: key gone");
	uint8_t *out;
	size_t ol;
	CK_RV rv = decrypt1(s, priv, jwe, strlen(jwe), &out, &ol);
	CHECK_RV(rv, CKR_DEVICE_ERROR);
	free(out);
	CK_SESSION_INFO si;
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECKF(si.ulDeviceError == TANG_PKCS11_DEVERR_UNKNOWN_KEY, "ulDeviceError %lu, want %lu",
	       (unsigned long)si.ulDeviceError, (unsigned long)TANG_PKCS11_DEVERR_UNKNOWN_KEY);
	char *log = tp_read_file(logpath, off);
	CHECKF(log && strstr(log, "unknown key (HTTP 404)"),
	       "the module log lacks \"unknown key (HTTP 404)\":\n%s", log ? log : "(empty)");
	CHECKF(log && strstr(log, old.kid), "the module log does not name the kid %s", old.kid);
	free(log);
	tp_case_end();

	tp_case_begin("unwrap: key gone");
	rv = unwrap(s, priv, jwe, strlen(jwe), &out, &ol);
	CHECK_RV(rv, CKR_DEVICE_ERROR);
	free(out);
	tp_case_end();

	tp_case_begin("multi-part: key gone");
	rv = decrypt_multi(s, priv, jwe, strlen(jwe), 500, &out, &ol);
	CHECK_RV(rv, CKR_DEVICE_ERROR);
	free(out);
	tp_case_end();

	free(jwe);
	tp_server_key_free(&k);
	tp_server_key_free(&old);
	P->C_Finalize(NULL);
}

/* ---- tampering --------------------------------------------------------------- */

typedef struct {
	const char *name;
	bool local; /* detectable without the server: no POST allowed */
} tamper_t;

static char *tampered(const char *jwe, const char *name)
{
	jwe_parts p;
	split(jwe, &p);
	char *out = NULL;
	if (strcmp(name, "tag bit") == 0) {
		flip_bit(&p.part[4], 0);
	} else if (strcmp(name, "last tag bit") == 0) {
		flip_bit(&p.part[4], 15);
	} else if (strcmp(name, "ciphertext bit") == 0) {
		flip_bit(&p.part[3], 5);
	} else if (strcmp(name, "IV bit") == 0) {
		flip_bit(&p.part[2], 0);
	} else if (strcmp(name, "header byte") == 0) {
		/* One character of the adv's signing key (x), re-encoded: the
		 * header is still valid JSON naming the same server and kid. */
		char *t = b64u_text(p.part[0]);
		char *es = strstr(t, "\"ES512\"");
		REQUIRE(es);
		char *x = strstr(es, "\"x\":\"");
		REQUIRE(x);
		x += 5 + 10;
		*x = *x == 'A' ? 'B' : 'A';
		free(p.part[0]);
		p.part[0] = text_b64u(t);
		free(t);
	} else if (strcmp(name, "header re-serialised") == 0) {
		json_t *h = header_json(&p);
		set_header(&p, h, JSON_INDENT(1) | JSON_SORT_KEYS);
		json_decref(h);
	} else if (strcmp(name, "epk off the curve") == 0) {
		json_t *h = header_json(&p);
		json_t *epk = json_object_get(h, "epk");
		uint8_t y[66];
		REQUIRE(tp_b64u_decode(json_string_value(json_object_get(epk, "y")), y, 66) == 66);
		y[65] ^= 1;
		char yb[100];
		tp_b64u_encode(y, 66, yb);
		json_object_set_new(epk, "y", json_string(yb));
		set_header(&p, h, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(h);
	} else if (strcmp(name, "epk on P-256") == 0) {
		json_t *h = header_json(&p);
		EVP_PKEY *k = tp_ec_gen("P-256");
		json_object_set_new(h, "epk", jwk_of(k, "P-256", 32));
		EVP_PKEY_free(k);
		set_header(&p, h, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(h);
	} else if (strcmp(name, "kid of the signing key") == 0) {
		json_t *h = header_json(&p);
		char thp[64];
		REQUIRE(tp_signing_thp(thp));
		json_object_set_new(h, "kid", json_string(thp));
		set_header(&p, h, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(h);
	} else if (strcmp(name, "foreign server") == 0) {
		json_t *h = header_json(&p);
		char url[64];
		snprintf(url, sizeof url, "http://127.0.0.1:%d", tp_closed_port());
		json_object_set_new(json_object_get(json_object_get(h, "clevis"), "tang"), "url",
				    json_string(url));
		set_header(&p, h, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(h);
	} else if (strcmp(name, "unknown pin") == 0) {
		json_t *h = header_json(&p);
		json_object_set_new(json_object_get(h, "clevis"), "pin", json_string("tpm2"));
		set_header(&p, h, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(h);
	} else if (strcmp(name, "base64url with '='") == 0) {
		char *iv = malloc(strlen(p.part[2]) + 2);
		REQUIRE(iv);
		sprintf(iv, "%s=", p.part[2]);
		free(p.part[2]);
		p.part[2] = iv;
	} else if (strcmp(name, "truncated: last char") == 0) {
		char *j = join(&p);
		j[strlen(j) - 1] = 0;
		out = j;
	} else if (strcmp(name, "truncated: the tag part") == 0) {
		char *j = join(&p);
		*strrchr(j, '.') = 0;
		out = j;
	} else if (strcmp(name, "six parts") == 0) {
		char *j = join(&p);
		out = malloc(strlen(j) + 8);
		REQUIRE(out);
		sprintf(out, "%s.AAAA", j);
		free(j);
	} else {
		REQUIRE(!"unknown tampering");
	}
	if (!out)
		out = join(&p);
	free_parts(&p);
	CHECKF(strcmp(out, jwe) != 0, "tampering \"%s\" changed nothing", name);
	return out;
}

static const tamper_t TAMPERS[] = {
	{ "tag bit", false },
	{ "last tag bit", false },
	{ "ciphertext bit", false },
	{ "IV bit", false },
	{ "header byte", false },
	{ "header re-serialised", false },
	{ "epk off the curve", true },
	{ "epk on P-256", true },
	{ "kid of the signing key", true },
	{ "foreign server", true },
	{ "unknown pin", true },
	{ "base64url with '='", true },
	{ "truncated: last char", true },
	{ "truncated: the tag part", true },
	{ "six parts", true },
};

static void mode_tamper(void)
{
	CK_SESSION_HANDLE s = start();
	tp_server_key k;
	CK_OBJECT_HANDLE priv, pub;
	tang_keys(s, &k, &priv, &pub);
	uint8_t pt[32];
	REQUIRE(RAND_bytes(pt, sizeof pt) == 1);
	char *jwe = clevis_encrypt(clevis_cfg(tp_env("TANG_URL")), pt, sizeof pt);

	/* The untampered JWE recovers (so failures below are the tampering's). */
	uint8_t *out;
	size_t ol;
	REQUIRE_RV(decrypt1(s, priv, jwe, strlen(jwe), &out, &ol), CKR_OK);
	CHECK_MEM(out, ol, pt, sizeof pt, "untampered JWE");
	free(out);

	for (size_t i = 0; i < sizeof TAMPERS / sizeof TAMPERS[0]; i++) {
		const tamper_t *t = &TAMPERS[i];
		tp_case_begin(t->name);
		char *bad = tampered(jwe, t->name);
		size_t bl = strlen(bad);
		usleep(50000);
		int posts = tp_server_posts();

		CK_RV rv = decrypt1(s, priv, bad, bl, &out, &ol);
		CHECKF(rv == CKR_ENCRYPTED_DATA_INVALID, "%s: C_Decrypt: expected %s, got %s",
		       t->name, "CKR_ENCRYPTED_DATA_INVALID", tp_rv_name(rv));
		CHECKF(out == NULL, "%s: plaintext released", t->name);
		free(out);

		rv = decrypt_multi(s, priv, bad, bl, 300, &out, &ol);
		CHECKF(rv == CKR_ENCRYPTED_DATA_INVALID,
		       "%s: C_DecryptUpdate/Final: expected %s, got %s", t->name,
		       "CKR_ENCRYPTED_DATA_INVALID", tp_rv_name(rv));
		CHECKF(out == NULL, "%s: plaintext released (multi-part)", t->name);
		free(out);

		rv = unwrap(s, priv, bad, bl, &out, &ol);
		CHECKF(rv == CKR_WRAPPED_KEY_INVALID, "%s: C_UnwrapKey: expected %s, got %s",
		       t->name, "CKR_WRAPPED_KEY_INVALID", tp_rv_name(rv));
		free(out);

		if (t->local) {
			usleep(100000);
			int now = tp_server_posts();
			CHECKF(now == posts, "%s: detectable locally, but %d POST request(s) were made",
			       t->name, now - posts);
		}
		free(bad);
		tp_case_end();
	}
	/* The session is still usable afterwards. */
	REQUIRE_RV(decrypt1(s, priv, jwe, strlen(jwe), &out, &ol), CKR_OK);
	CHECK_MEM(out, ol, pt, sizeof pt, "untampered JWE after the tamperings");
	free(out);
	free(jwe);
	tp_server_key_free(&k);
	P->C_Finalize(NULL);
}

/* ---- a server that answers /rec with a wrong point -------------------------- */

static void mode_hostile(void)
{
	char fixture[4400], postlog[4400];
	snprintf(fixture, sizeof fixture, "%s/tests/fixtures/hostile-rec-server",
		 tp_env("TP_SOURCE_ROOT"));
	snprintf(postlog, sizeof postlog, "%s/hostile-posts.log", tmpdir);
	int pfd[2];
	REQUIRE(pipe(pfd) == 0);
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* Ends with this test even when it aborts (a sanitizer
		 * report): it holds meson's stderr open. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(fixture, fixture, tp_env("TANG_URL"), postlog, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	char line[32] = { 0 };
	/* The port, one line; the pipe stays open until the server ends. */
	size_t nread = 0;
	while (nread < sizeof line - 1 && !strchr(line, '\n')) {
		ssize_t r = read(pfd[0], line + nread, sizeof line - 1 - nread);
		if (r <= 0)
			break;
		nread += (size_t)r;
	}
	int port = strchr(line, '\n') ? atoi(line) : 0;
	if (port <= 0) {
		close(pfd[0]);
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		REQUIRE(!"the hostile server did not start");
	}
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);

	/* The JWE names the hostile server (made offline from the real adv). */
	char *adv_path = path_in_tmp("real-adv.jws");
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "curl -sf -o \"%s\" \"%s/adv\"", adv_path, tp_env("TANG_URL"));
	REQUIRE(system(cmd) == 0);
	char cfg[5000];
	snprintf(cfg, sizeof cfg, "{\"url\":\"%s\",\"adv\":\"%s\"}", url, adv_path);
	uint8_t pt[32];
	REQUIRE(RAND_bytes(pt, sizeof pt) == 1);
	char *jwe = clevis_encrypt(cfg, pt, sizeof pt);

	/* The module's token: the hostile URL, the real thp. */
	char *conf = path_in_tmp("hostile.conf");
	char text[5000];
	snprintf(text, sizeof text,
		 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", "
		 "\"thp\": \"%s\" }, \"timeout\": 5 } ] }\n",
		 url, tp_env("TANG_THP"));
	tp_write_file(conf, text);
	setenv("TANG_PKCS11_CONF", conf, 1);

	CK_SESSION_HANDLE s = start();
	tp_server_key k;
	CK_OBJECT_HANDLE priv, pub;
	tang_keys(s, &k, &priv, &pub);

	tp_case_begin("wrong point: C_Decrypt");
	uint8_t *out;
	size_t ol;
	CK_RV rv = decrypt1(s, priv, jwe, strlen(jwe), &out, &ol);
	CHECK_RV(rv, CKR_ENCRYPTED_DATA_INVALID);
	CHECKF(out == NULL, "plaintext released");
	free(out);
	tp_case_end();
	tp_case_begin("wrong point: C_UnwrapKey");
	rv = unwrap(s, priv, jwe, strlen(jwe), &out, &ol);
	CHECK_RV(rv, CKR_WRAPPED_KEY_INVALID);
	free(out);
	tp_case_end();
	tp_case_begin("wrong point: multi-part");
	rv = decrypt_multi(s, priv, jwe, strlen(jwe), 256, &out, &ol);
	CHECK_RV(rv, CKR_ENCRYPTED_DATA_INVALID);
	free(out);
	tp_case_end();

	char *posts = tp_read_file(postlog, 0);
	CHECKF(posts && strstr(posts, "POST /rec/"),
	       "the hostile server got no POST /rec (the tag failure must follow a recovery)");
	free(posts);
	/* Clevis itself agrees that the JWE does not open through this server. */
	uint8_t *got = NULL;
	size_t gl = 0;
	CHECKF(clevis_decrypt((uint8_t *)jwe, strlen(jwe), &got, &gl) != 0,
	       "clevis decrypt succeeded through the hostile server");
	free(got);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	free(jwe);
	tp_server_key_free(&k);
	P->C_Finalize(NULL);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	self_path = argv[0];
	tmpdir = tp_env("TANG_TMP");
	const char *mode = argc > 1 ? argv[1] : "";
	if (system("command -v clevis >/dev/null 2>&1") != 0)
		tp_skip("clevis is missing");
	if (strcmp(mode, "clevis-in") == 0)
		mode_clevis_in();
	else if (strcmp(mode, "clevis-out") == 0)
		mode_clevis_out();
	else if (strcmp(mode, "rotate") == 0)
		mode_rotate();
	else if (strcmp(mode, "rotate-child") == 0 && argc == 4)
		mode_rotate_child(argv[2], argv[3]);
	else if (strcmp(mode, "unknown-kid") == 0)
		mode_unknown_kid();
	else if (strcmp(mode, "tamper") == 0)
		mode_tamper();
	else if (strcmp(mode, "hostile") == 0)
		mode_hostile();
	else {
		printf("usage: tp-jwe clevis-in|clevis-out|rotate|unknown-kid|tamper|hostile\n");
		return 2;
	}
	return tp_exit();
}
