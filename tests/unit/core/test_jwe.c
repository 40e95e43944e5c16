/* Contract tests of CKM_TANG_JWE (docs/jwe.md), through the module's entry
 * points (dlopen $TANG_PKCS11_MODULE).
 *
 * Offline (suite unit): the token's advertisement is the signed file
 * data/adv.jws and its URL a loopback port that refuses connections, so
 * any request fails with CKR_DEVICE_ERROR: a CKR_ENCRYPTED_DATA_INVALID /
 * CKR_WRAPPED_KEY_INVALID (or a successful length query) proves the check
 * happened before any request.  Encryption needs no network at all.
 *
 * --live (suite tang, under tests/fixtures/with-tangd): module encrypt and
 * wrap -> `clevis decrypt`; `clevis encrypt tang` -> module decrypt and
 * unwrap; the number of POST /rec requests ($TANG_SERVER_LOG) for length
 * queries, short buffers, multi-part and tamperings; a JWE whose key was
 * rotated away, then deleted (404). */
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <p11-kit/pkcs11.h>

#include "tang-pkcs11.h"

static CK_FUNCTION_LIST *f;
static int failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

#define CHECK_RV(call, want) \
	do { \
		CK_RV r_ = (call); \
		if (r_ != (CK_RV)(want)) { \
			fprintf(stderr, "%s:%d: %s = 0x%lx, want %s (0x%lx)\n", __FILE__, __LINE__, \
				#call, (unsigned long)r_, #want, (unsigned long)(want)); \
			failures++; \
		} \
	} while (0)

static CK_MECHANISM jwe_mech = { CKM_TANG_JWE, NULL, 0 };
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;

/* ---- text helpers ---------------------------------------------------- */

static char *b64u_enc(const unsigned char *in, size_t n)
{
	char *out = malloc(4 * (n / 3 + 2) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

static unsigned char *b64u_dec(const char *in, size_t n, size_t *out_len)
{
	char *tmp = malloc(n + 4);
	unsigned char *out = malloc(n + 4);
	size_t m = n;
	int len;

	memcpy(tmp, in, n);
	while (m % 4)
		tmp[m++] = '=';
	for (size_t i = 0; i < m; i++)
		tmp[i] = tmp[i] == '-' ? '+' : tmp[i] == '_' ? '/' : tmp[i];
	len = m ? EVP_DecodeBlock(out, (unsigned char *)tmp, (int)m) : 0;
	free(tmp);
	if (len < 0) {
		free(out);
		return NULL;
	}
	*out_len = (size_t)len - (n % 4 == 2 ? 2 : n % 4 == 3 ? 1 : 0);
	out[*out_len] = '\0';
	return out;
}

/* s with the first occurrence of old replaced by new (malloc'd). */
static char *replace(const char *s, const char *old, const char *new)
{
	const char *p = strstr(s, old);
	char *out;

	if (!p) {
		fprintf(stderr, "replace: \"%.40s\" not found\n", old);
		failures++;
		return strdup(s);
	}
	out = malloc(strlen(s) - strlen(old) + strlen(new) + 1);
	sprintf(out, "%.*s%s%s", (int)(p - s), s, new, p + strlen(old));
	return out;
}

/* The five parts of a compact JWE (copies). */
typedef struct parts {
	char *p[5];
} parts;

static parts split(const char *jwe)
{
	parts x = { { NULL } };
	const char *s = jwe;

	for (int i = 0; i < 5; i++) {
		const char *dot = i < 4 ? strchr(s, '.') : s + strlen(s);

		if (!dot) {
			fprintf(stderr, "split: not 5 parts\n");
			exit(1);
		}
		x.p[i] = strndup(s, (size_t)(dot - s));
		s = dot + 1;
	}
	return x;
}

static void parts_free(parts *x)
{
	for (int i = 0; i < 5; i++)
		free(x->p[i]);
}

static char *join(const parts *x)
{
	size_t n = 5;
	char *out;

	for (int i = 0; i < 5; i++)
		n += strlen(x->p[i]);
	out = malloc(n);
	sprintf(out, "%s.%s.%s.%s.%s", x->p[0], x->p[1], x->p[2], x->p[3], x->p[4]);
	return out;
}

static char *header_of(const char *jwe)
{
	parts x = split(jwe);
	size_t n = 0;
	char *h = (char *)b64u_dec(x.p[0], strlen(x.p[0]), &n);

	parts_free(&x);
	return h;
}

/* jwe with its protected header text replaced by hdr (re-encoded). */
static char *with_header(const char *jwe, const char *hdr)
{
	parts x = split(jwe);
	char *out;

	free(x.p[0]);
	x.p[0] = b64u_enc((const unsigned char *)hdr, strlen(hdr));
	out = join(&x);
	parts_free(&x);
	return out;
}

/* jwe with its header edited: the first old replaced by new. */
static char *edit_header(const char *jwe, const char *old, const char *new)
{
	char *h = header_of(jwe), *h2 = replace(h, old, new), *out = with_header(jwe, h2);

	free(h);
	free(h2);
	return out;
}

static char *with_part(const char *jwe, int i, const char *text)
{
	parts x = split(jwe);
	char *out;

	free(x.p[i]);
	x.p[i] = strdup(text);
	out = join(&x);
	parts_free(&x);
	return out;
}

/* Char `at` of part i changed to another base64url char. */
static char *flip_part(const char *jwe, int i, size_t at)
{
	parts x = split(jwe);
	char *out;

	x.p[i][at] = x.p[i][at] == 'A' ? 'B' : 'A';
	out = join(&x);
	parts_free(&x);
	return out;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, fp) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	fclose(fp);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (!fp || (len && fwrite(data, 1, len, fp) != len) || fclose(fp) != 0) {
		perror(path);
		exit(1);
	}
}

static bool file_contains(const char *path, const char *needle)
{
	char *text = read_file(path, NULL);
	bool found = text && strstr(text, needle);

	free(text);
	return found;
}

/* ---- PKCS#11 helpers ---------------------------------------------- */

static CK_SESSION_HANDLE open_session(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;

	CHECK_RV(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	return h;
}

static CK_OBJECT_HANDLE find_class(CK_SESSION_HANDLE s, CK_OBJECT_CLASS klass)
{
	CK_ATTRIBUTE t = { CKA_CLASS, &klass, sizeof(klass) };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;

	CHECK_RV(f->C_FindObjectsInit(s, &t, 1), CKR_OK);
	CHECK_RV(f->C_FindObjects(s, &h, 1, &n), CKR_OK);
	CHECK_RV(f->C_FindObjectsFinal(s), CKR_OK);
	CHECK(n == 1);
	return h;
}

/* A module-made JWE of data (single-part, two calls). */
static char *encrypt(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, const void *data, size_t len)
{
	CK_ULONG n = 0;
	char *out;

	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, pub), CKR_OK);
	CHECK_RV(f->C_Encrypt(s, (CK_BYTE *)data, len, NULL, &n), CKR_OK);
	out = malloc(n + 1);
	CHECK_RV(f->C_Encrypt(s, (CK_BYTE *)data, len, (CK_BYTE *)out, &n), CKR_OK);
	out[n] = '\0';
	return out;
}

/* One C_Decrypt with a big enough buffer; returns its CK_RV. */
static CK_RV decrypt(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, const char *jwe,
		     unsigned char *out, CK_ULONG *out_len)
{
	CK_RV rv = f->C_DecryptInit(s, &jwe_mech, priv);

	if (rv != CKR_OK)
		return rv;
	return f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), out, out_len);
}

static CK_RV decrypt_rv(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, const char *jwe)
{
	static unsigned char buf[128 * 1024];
	CK_ULONG n = sizeof(buf);

	return decrypt(s, priv, jwe, buf, &n);
}

static CK_RV unwrap_rv(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, const char *jwe,
		       CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

	return f->C_UnwrapKey(s, &jwe_mech, priv, (CK_BYTE *)jwe, strlen(jwe), tmpl, n,
			      out ? out : &h);
}

/* ---- offline ------------------------------------------------------ */

static char tmpdir[256], conf_path[600], log_path[600], adv_path[600];
static char exp_kid[64], exp_sigthp[64], exc_s1[64];
static int refused_port;

static void read_expected(const char *dir)
{
	char path[600], key[32], val[300];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/expected.txt", dir);
	fp = fopen(path, "r");
	if (!fp) {
		perror(path);
		exit(1);
	}
	while (fscanf(fp, "%31s %299s", key, val) == 2) {
		if (strcmp(key, "kid") == 0)
			snprintf(exp_kid, sizeof(exp_kid), "%.63s", val);
		else if (strcmp(key, "sigthp") == 0)
			snprintf(exp_sigthp, sizeof(exp_sigthp), "%.63s", val);
	}
	fclose(fp);
}

/* S1 thumbprint of data/exc.pub.jwk, computed here from its members. */
static void exchange_s1(const char *dir)
{
	char path[600], *text, *x, *y, input[512];
	unsigned char md[20];
	unsigned int md_len = 0;
	char *b64;

	snprintf(path, sizeof(path), "%s/exc.pub.jwk", dir);
	text = read_file(path, NULL);
	x = strstr(text, "\"x\":\"") + 5;
	y = strstr(text, "\"y\":\"") + 5;
	snprintf(input, sizeof(input), "{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"%.*s\",\"y\":\"%.*s\"}",
		 (int)(strchr(x, '"') - x), x, (int)(strchr(y, '"') - y), y);
	EVP_Digest(input, strlen(input), md, &md_len, EVP_sha1(), NULL);
	b64 = b64u_enc(md, md_len);
	snprintf(exc_s1, sizeof(exc_s1), "%s", b64);
	free(b64);
	free(text);
}

static void write_config(void)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "{ \"tokens\": [\n"
		 "  { \"label\": \"unit\", \"tang\": { \"url\": \"http://127.0.0.1:%d\", \"adv\": \"%s\" }, \"timeout\": 2 },\n"
		 "  { \"label\": \"other\", \"tang\": { \"url\": \"http://127.0.0.1:%d/other\", \"adv\": \"%s\" } }\n"
		 "] }\n", refused_port, adv_path, refused_port, adv_path);
	snprintf(conf_path, sizeof(conf_path), "%s/jwe.conf", tmpdir);
	write_bytes(conf_path, text, strlen(text));
}

static void init_offline(void)
{
	CK_C_INITIALIZE_ARGS args;
	char reserved[700];

	memset(&args, 0, sizeof(args));
	snprintf(reserved, sizeof(reserved), "config=%s", conf_path);
	args.flags = CKF_OS_LOCKING_OK;
	args.pReserved = reserved;
	CHECK_RV(f->C_Initialize(&args), CKR_OK);
}

static void test_mechanism_info(void)
{
	CK_MECHANISM_TYPE list[64];
	CK_MECHANISM_INFO mi;
	CK_ULONG n = 64;
	bool found = false;

	init_offline();
	CHECK_RV(f->C_GetMechanismList(1, list, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++)
		found |= list[i] == CKM_TANG_JWE;
	CHECK(found);
	CHECK_RV(f->C_GetMechanismInfo(1, CKM_TANG_JWE, &mi), CKR_OK);
	CHECK(mi.flags == (CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP));
	CHECK(mi.ulMinKeySize == 256 && mi.ulMaxKeySize == 521);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void test_init_rules(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;
	CK_MECHANISM aes = { CKM_AES_CBC, NULL, 0 }, ecdh = { CKM_ECDH1_DERIVE, NULL, 0 };
	CK_BYTE param[4] = { 0 };
	CK_MECHANISM with_param = { CKM_TANG_JWE, param, sizeof(param) };
	CK_BYTE buf[64];
	CK_ULONG n = sizeof(buf);

	init_offline();
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);

	CHECK_RV(f->C_EncryptInit(s, NULL, pub), CKR_ARGUMENTS_BAD);
	/* A soft-key mechanism on a Tang key. */
	CHECK_RV(f->C_EncryptInit(s, &aes, pub), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(f->C_EncryptInit(s, &ecdh, pub), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_EncryptInit(s, &with_param, pub), CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, priv), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, 999999), CKR_KEY_HANDLE_INVALID);
	CHECK_RV(f->C_EncryptInit(999999, &jwe_mech, pub), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_Encrypt(s, buf, 1, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_EncryptUpdate(s, buf, 1, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_EncryptFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, pub), CKR_OK);
	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, pub), CKR_OPERATION_ACTIVE);

	CHECK_RV(f->C_DecryptInit(s, &aes, priv), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(f->C_DecryptInit(s, &with_param, priv), CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, pub), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, 999999), CKR_KEY_HANDLE_INVALID);
	CHECK_RV(f->C_Decrypt(s, buf, 1, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DecryptUpdate(s, buf, 1, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DecryptFinal(s, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OK);
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OPERATION_ACTIVE);
	/* An error other than a length question ends the operation. */
	CHECK_RV(f->C_Decrypt(s, NULL, 5, buf, &n), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_Decrypt(s, buf, 1, buf, &n), CKR_OPERATION_NOT_INITIALIZED);
	/* Closing the session ends its operations (and frees them). */
	CHECK_RV(f->C_CloseSession(s), CKR_OK);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

/* The header exactly as clevis 19 writes it, byte for byte. */
static void check_header(const char *jwe, const char *url)
{
	char *h = header_of(jwe), prefix[256], suffix[128];
	char *adv = read_file(adv_path, NULL);
	size_t n;

	snprintf(prefix, sizeof(prefix), "{\"alg\":\"ECDH-ES\",\"clevis\":{\"pin\":\"tang\",\"tang\":{\"adv\":{\"keys\":[{\"alg\":\"");
	CHECK(strncmp(h, prefix, strlen(prefix)) == 0);
	snprintf(prefix, sizeof(prefix), "]},\"url\":\"%s\"}},\"enc\":\"A256GCM\",\"epk\":{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"", url);
	CHECK(strstr(h, prefix) != NULL);
	snprintf(suffix, sizeof(suffix), "\"},\"kid\":\"%s\"}", exp_kid);
	n = strlen(h);
	CHECK(n > strlen(suffix) && strcmp(h + n - strlen(suffix), suffix) == 0);
	/* epk: 66-byte coordinates = 88 chars each. */
	{
		const char *x = strstr(h, "\"epk\":{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"");
		const char *xv = x ? x + strlen("\"epk\":{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"") : NULL;

		CHECK(xv && strchr(xv, '"') - xv == 88);
		CHECK(xv && strncmp(strchr(xv, '"'), "\",\"y\":\"", 7) == 0 &&
		      strchr(strchr(xv, '"') + 7, '"') - (strchr(xv, '"') + 7) == 88);
	}
	CHECK(strchr(h, ' ') == NULL && strchr(h, '\n') == NULL);
	free(adv);
	free(h);
}

static void check_shape(const char *jwe, size_t pt_len)
{
	parts x = split(jwe);
	size_t n = strlen(jwe);

	CHECK(strlen(x.p[1]) == 0);
	CHECK(strlen(x.p[2]) == 16);
	CHECK(strlen(x.p[4]) == 22);
	CHECK(strlen(x.p[3]) == (pt_len * 4 + 2) / 3);
	CHECK(n && jwe[n - 1] != '\n');
	parts_free(&x);
}

static void test_encrypt_offline(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub;
	char url[64], *jwe, *jwe2;
	CK_BYTE data[100], out[8192], small[10];
	CK_ULONG n = 0, n2, len;

	memset(data, 0x5a, sizeof(data));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", refused_port);
	init_offline();
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);

	/* Length query and a short buffer keep the operation; the JWE
	 * delivered afterwards has the announced length. */
	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, pub), CKR_OK);
	CHECK_RV(f->C_Encrypt(s, data, sizeof(data), NULL, &n), CKR_OK);
	len = n;
	n2 = sizeof(small);
	CHECK_RV(f->C_Encrypt(s, data, sizeof(data), small, &n2), CKR_BUFFER_TOO_SMALL);
	CHECK(n2 == len);
	CHECK_RV(f->C_EncryptUpdate(s, data, 1, out, &n2), CKR_OPERATION_ACTIVE);
	n = sizeof(out);
	CHECK_RV(f->C_Encrypt(s, data, sizeof(data), out, &n), CKR_OK);
	CHECK(n == len);
	CHECK_RV(f->C_Encrypt(s, data, sizeof(data), out, &n), CKR_OPERATION_NOT_INITIALIZED);
	jwe = strndup((char *)out, n);
	check_shape(jwe, sizeof(data));
	check_header(jwe, url);

	/* Multi-part: the same length; Update with a NULL buffer consumes nothing. */
	CHECK_RV(f->C_EncryptInit(s, &jwe_mech, pub), CKR_OK);
	n = 99;
	CHECK_RV(f->C_EncryptUpdate(s, data, 40, out, &n), CKR_OK);
	CHECK(n == 0);
	CHECK_RV(f->C_EncryptUpdate(s, data, 40, NULL, &n), CKR_OK);
	CHECK(n == 0);
	n = 0;
	CHECK_RV(f->C_EncryptUpdate(s, data + 40, 60, out, &n), CKR_OK);
	CHECK_RV(f->C_Encrypt(s, data, 1, out, &n), CKR_OPERATION_ACTIVE);
	n = 0;
	CHECK_RV(f->C_EncryptFinal(s, NULL, &n), CKR_OK);
	CHECK(n == len);
	n2 = 5;
	CHECK_RV(f->C_EncryptFinal(s, small, &n2), CKR_BUFFER_TOO_SMALL);
	n = sizeof(out);
	CHECK_RV(f->C_EncryptFinal(s, out, &n), CKR_OK);
	CHECK(n == len);
	jwe2 = strndup((char *)out, n);
	CHECK(strcmp(jwe, jwe2) != 0);   /* fresh epk and IV each time */
	check_shape(jwe2, sizeof(data));
	free(jwe2);

	/* Empty plaintext: the 4th part is empty. */
	jwe2 = encrypt(s, pub, "", 0);
	CHECK(strstr(jwe2, "..") && strstr(strstr(jwe2, "..") + 2, ".."));
	check_shape(jwe2, 0);
	free(jwe2);

	/* The second token's URL (a path) goes verbatim into its JWEs. */
	{
		CK_SESSION_HANDLE s2 = open_session(2);
		CK_OBJECT_HANDLE pub2 = find_class(s2, CKO_PUBLIC_KEY);
		char url2[80];

		snprintf(url2, sizeof(url2), "%s/other", url);
		jwe2 = encrypt(s2, pub2, "x", 1);
		check_header(jwe2, url2);
		free(jwe2);
	}
	free(jwe);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

/* An EC point on P-256 as a JWK. */
static char *p256_epk(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char pt[65];
	size_t len = 0;
	char *x, *y, *out = malloc(300);

	EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len);
	CHECK(len == 65);
	x = b64u_enc(pt + 1, 32);
	y = b64u_enc(pt + 33, 32);
	snprintf(out, 300, "\"epk\":{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
	free(x);
	free(y);
	EVP_PKEY_free(k);
	return out;
}

/* The epk member text of a header. */
static char *epk_member(const char *jwe)
{
	char *h = header_of(jwe), *e = strstr(h, "\"epk\":{"), *out;

	out = strndup(e, (size_t)(strchr(e, '}') - e + 1));
	free(h);
	return out;
}

typedef struct tamper {
	const char *name;
	char *jwe;
	bool local;        /* detectable without the network */
} tamper;

#define MAX_TAMPER 48

/* Every locally detectable defect, and a few that are not (they need the
 * exchange to show: tag, ciphertext, IV, header bytes).  kid_hint: the
 * signing key's thumbprint (S256). */
static size_t tamperings(const char *jwe, const char *sigthp, tamper *t)
{
	size_t n = 0, len = strlen(jwe);
	char *h = header_of(jwe), *tmp, *epk = epk_member(jwe), *p256 = p256_epk(), big[200];
	char kid_member[100];
	parts x = split(jwe);

	snprintf(kid_member, sizeof(kid_member), "\"kid\":\"%s\"", exp_kid);
#define T(nm, j, loc) do { t[n].name = (nm); t[n].jwe = (j); t[n].local = (loc); n++; } while (0)
	T("four parts", strndup(jwe, (size_t)(strrchr(jwe, '.') - jwe)), true);
	tmp = malloc(len + 8);
	sprintf(tmp, "%s.AAAA", jwe);
	T("six parts", tmp, true);
	tmp = malloc(len + 8);
	sprintf(tmp, "%s.", jwe);
	T("trailing dot", tmp, true);
	T("truncated tag", strndup(jwe, len - 3), true);
	T("truncated to the header", strndup(jwe, strlen(x.p[0])), true);
	T("empty", strdup(""), true);
	tmp = malloc(len + 2);
	sprintf(tmp, " %s", jwe);
	T("leading space", tmp, true);
	T("encrypted_key not empty", with_part(jwe, 1, "AAAA"), true);
	T("IV of 11 bytes", with_part(jwe, 2, "AAAAAAAAAAAAAAA"), true);
	T("IV of 16 bytes", with_part(jwe, 2, "AAAAAAAAAAAAAAAAAAAAAA"), true);
	T("tag of 15 bytes", with_part(jwe, 4, "AAAAAAAAAAAAAAAAAAAA"), true);
	T("tag with padding", with_part(jwe, 4, "AAAAAAAAAAAAAAAAAAAAAA=="), true);
	T("IV with '+'", with_part(jwe, 2, "AAAAAAAAAAAAAAA+"), true);
	T("tag with non-canonical bits", with_part(jwe, 4, "AAAAAAAAAAAAAAAAAAAAAB"), true);
	T("ciphertext not base64url", with_part(jwe, 3, "A/A"), true);
	T("header not base64url", with_part(jwe, 0, "e30*"), true);
	T("header not JSON", with_header(jwe, "{\"alg\":"), true);
	T("header a JSON array", with_header(jwe, "[1,2]"), true);
	T("header with a duplicate member", edit_header(jwe, "{\"alg\":\"ECDH-ES\",", "{\"alg\":\"ECDH-ES\",\"alg\":\"ECDH-ES\","), true);
	T("alg ECDH-ES+A128KW", edit_header(jwe, "\"alg\":\"ECDH-ES\"", "\"alg\":\"ECDH-ES+A128KW\""), true);
	T("alg dir", edit_header(jwe, "\"alg\":\"ECDH-ES\"", "\"alg\":\"dir\""), true);
	T("enc A128GCM", edit_header(jwe, "\"enc\":\"A256GCM\"", "\"enc\":\"A128GCM\""), true);
	T("zip", edit_header(jwe, "{\"alg\"", "{\"zip\":\"DEF\",\"alg\""), true);
	T("crit", edit_header(jwe, "{\"alg\"", "{\"crit\":[\"exp\"],\"exp\":1,\"alg\""), true);
	T("apu not base64url", edit_header(jwe, "{\"alg\"", "{\"apu\":\"a+b\",\"alg\""), true);
	T("pin sss", edit_header(jwe, "\"pin\":\"tang\"", "\"pin\":\"sss\""), true);
	T("pin tpm2", edit_header(jwe, "\"pin\":\"tang\"", "\"pin\":\"tpm2\""), true);
	T("no clevis", edit_header(jwe, "\"clevis\":", "\"clevisx\":"), true);
	snprintf(big, sizeof(big), "\"url\":\"http://127.0.0.1:%d/elsewhere\"", refused_port);
	tmp = strstr(h, "\"url\":\"");
	{
		char old[200];

		snprintf(old, sizeof(old), "%.*s", (int)(strchr(tmp + 7, '"') - tmp + 1), tmp);
		T("another server (path)", edit_header(jwe, old, big), true);
		T("another server (host)", edit_header(jwe, old, "\"url\":\"http://example.com\""), true);
		snprintf(big, sizeof(big), "\"url\":\"https://127.0.0.1:%d\"", refused_port);
		T("another server (scheme)", edit_header(jwe, old, big), true);
		T("no url", edit_header(jwe, old, "\"urlx\":\"x\""), true);
	}
	T("unknown kid", edit_header(jwe, kid_member, "\"kid\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""), true);
	snprintf(big, sizeof(big), "\"kid\":\"%s\"", sigthp);
	T("kid of the signing key", edit_header(jwe, kid_member, big), true);
	T("no kid", edit_header(jwe, kid_member, "\"kidx\":1"), true);
	T("no adv", edit_header(jwe, "\"adv\":", "\"advx\":"), true);
	{
		size_t at = strlen("\"epk\":{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"");
		char *e2 = strdup(epk), *e3 = strdup(epk);

		e2[at + 20] = e2[at + 20] == 'A' ? 'B' : 'A';
		T("epk off its curve", edit_header(jwe, epk, e2), true);
		memmove(e3 + at, e3 + at + 1, strlen(e3 + at));   /* 87 chars: 65 bytes */
		T("epk with a short coordinate", edit_header(jwe, epk, e3), true);
		free(e2);
		free(e3);
	}
	T("epk on P-256", edit_header(jwe, epk, p256), true);
	T("no epk", edit_header(jwe, epk, "\"epkx\":{}"), true);
	T("header larger than 64 KiB", NULL, true);
	{
		char *pad = malloc(70000), *hdr2;

		memset(pad, ' ', 69999);
		pad[69999] = '\0';
		hdr2 = malloc(strlen(h) + 70001);
		sprintf(hdr2, "{%s%s", pad, h + 1);
		t[n - 1].jwe = with_header(jwe, hdr2);
		free(hdr2);
		free(pad);
	}
	/* Only the exchange shows these: the tag does not verify. */
	T("tag flipped", flip_part(jwe, 4, 3), false);
	T("IV flipped", flip_part(jwe, 2, 3), false);
	if (strlen(x.p[3]) > 2)
		T("ciphertext flipped", flip_part(jwe, 3, 1), false);
	tmp = malloc(strlen(h) + 2);
	sprintf(tmp, "{ %s", h + 1);
	T("header re-serialised (same JSON)", with_header(jwe, tmp), false);
	free(tmp);
#undef T
	parts_free(&x);
	free(p256);
	free(epk);
	free(h);
	return n;
}

static void tamper_free(tamper *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].jwe);
}

static void test_decrypt_offline(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_INFO si;
	CK_BYTE data[33], out[64], small[4];
	CK_ULONG n, n2;
	tamper t[MAX_TAMPER];
	size_t nt;
	char *jwe, *tmp;

	memset(data, 7, sizeof(data));
	init_offline();
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);
	jwe = encrypt(s, pub, data, sizeof(data));

	/* The length needs no exchange (the server is unreachable): plaintext
	 * length = ciphertext length; the operation stays. */
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OK);
	n = 0;
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), NULL, &n), CKR_OK);
	CHECK(n == sizeof(data));
	n2 = sizeof(small);
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), small, &n2), CKR_BUFFER_TOO_SMALL);
	CHECK(n2 == sizeof(data));
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OPERATION_ACTIVE);
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)jwe, 3, out, &n2), CKR_OPERATION_ACTIVE);
	n = sizeof(out);
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), out, &n), CKR_DEVICE_ERROR);
	CHECK_RV(f->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.ulDeviceError == TANG_PKCS11_DEVERR_UNREACHABLE);
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), out, &n), CKR_OPERATION_NOT_INITIALIZED);

	/* Multi-part: Update buffers (no output); Final decides. */
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OK);
	n = 5;
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)jwe, 10, out, &n), CKR_OK);
	CHECK(n == 0);
	n = 5;
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)jwe + 10, 10, NULL, &n), CKR_OK);  /* query only */
	CHECK(n == 0);
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)jwe + 10, strlen(jwe) - 10, out, &n), CKR_OK);
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)"\n", 1, out, &n), CKR_OK);   /* tolerated */
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, 3, out, &n), CKR_OPERATION_ACTIVE);
	n = 0;
	CHECK_RV(f->C_DecryptFinal(s, NULL, &n), CKR_OK);
	CHECK(n == sizeof(data));
	n2 = 1;
	CHECK_RV(f->C_DecryptFinal(s, small, &n2), CKR_BUFFER_TOO_SMALL);
	n = sizeof(out);
	CHECK_RV(f->C_DecryptFinal(s, out, &n), CKR_DEVICE_ERROR);
	CHECK_RV(f->C_DecryptFinal(s, out, &n), CKR_OPERATION_NOT_INITIALIZED);

	/* A malformed multi-part JWE ends the operation at Final. */
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OK);
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)jwe, 20, out, &n), CKR_OK);
	n = sizeof(out);
	CHECK_RV(f->C_DecryptFinal(s, NULL, &n), CKR_ENCRYPTED_DATA_INVALID);
	CHECK_RV(f->C_DecryptFinal(s, NULL, &n), CKR_OPERATION_NOT_INITIALIZED);

	/* Accepted locally (they reach the network): trailing whitespace, an
	 * S1 kid, the configured URL in another spelling. */
	tmp = malloc(strlen(jwe) + 4);
	sprintf(tmp, "%s \r\n", jwe);
	CHECK_RV(decrypt_rv(s, priv, tmp), CKR_DEVICE_ERROR);
	free(tmp);
	{
		char kid_old[80], kid_new[80], old_url[80], new_url[80];

		snprintf(kid_old, sizeof(kid_old), "\"kid\":\"%s\"", exp_kid);
		snprintf(kid_new, sizeof(kid_new), "\"kid\":\"%s\"", exc_s1);
		tmp = edit_header(jwe, kid_old, kid_new);
		CHECK_RV(decrypt_rv(s, priv, tmp), CKR_DEVICE_ERROR);
		free(tmp);
		snprintf(old_url, sizeof(old_url), "\"url\":\"http://127.0.0.1:%d\"", refused_port);
		snprintf(new_url, sizeof(new_url), "\"url\":\"HTTP://127.0.0.1:%d/\"", refused_port);
		tmp = edit_header(jwe, old_url, new_url);
		CHECK_RV(decrypt_rv(s, priv, tmp), CKR_DEVICE_ERROR);
		free(tmp);
	}

	/* Every local defect: the documented CK_RV, before any request. */
	nt = tamperings(jwe, exp_sigthp, t);
	for (size_t i = 0; i < nt; i++) {
		CK_RV want = t[i].local ? CKR_ENCRYPTED_DATA_INVALID : CKR_DEVICE_ERROR;
		CK_RV got = decrypt_rv(s, priv, t[i].jwe);

		if (got != want) {
			fprintf(stderr, "decrypt tampering \"%s\": 0x%lx, want 0x%lx\n", t[i].name,
				(unsigned long)got, (unsigned long)want);
			failures++;
		}
		want = t[i].local ? CKR_WRAPPED_KEY_INVALID : CKR_DEVICE_ERROR;
		got = unwrap_rv(s, priv, t[i].jwe, NULL, 0, NULL);
		if (got != want) {
			fprintf(stderr, "unwrap tampering \"%s\": 0x%lx, want 0x%lx\n", t[i].name,
				(unsigned long)got, (unsigned long)want);
			failures++;
		}
	}
	tamper_free(t, nt);
	CHECK(file_contains(log_path, "sss JWE"));
	CHECK(file_contains(log_path, "bound to another server"));
	CHECK(file_contains(log_path, "does not allow deriveKey"));
	CHECK(file_contains(log_path, "protected header larger than 64 KiB"));
	CHECK(file_contains(log_path, "epk is on P-256, the server key on P-521"));
	CHECK(file_contains(log_path, "more than five parts"));

	/* A JWE of the second token (URL .../other) is not the first's. */
	{
		CK_SESSION_HANDLE s2 = open_session(2);
		char *jwe2 = encrypt(s2, find_class(s2, CKO_PUBLIC_KEY), "x", 1);

		CHECK_RV(decrypt_rv(s, priv, jwe2), CKR_ENCRYPTED_DATA_INVALID);
		CHECK_RV(decrypt_rv(s2, find_class(s2, CKO_PRIVATE_KEY), jwe2), CKR_DEVICE_ERROR);
		free(jwe2);
	}
	free(jwe);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void test_unwrap_offline(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv, h = CK_INVALID_HANDLE;
	CK_KEY_TYPE aes = CKK_AES;
	CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
	CK_ULONG len16 = 16, len5 = 5;
	CK_BYTE value[4] = { 1, 2, 3, 4 }, out[64];
	CK_ULONG n = sizeof(out);
	CK_BYTE param[2] = { 0 };
	CK_MECHANISM with_param = { CKM_TANG_JWE, param, sizeof(param) };
	CK_MECHANISM ecdh = { CKM_ECDH1_DERIVE, NULL, 0 };
	char *jwe5, *jwe0;

	init_offline();
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);
	jwe5 = encrypt(s, pub, "12345", 5);
	jwe0 = encrypt(s, pub, "", 0);
	{
		CK_ATTRIBUTE aes_t[] = { { CKA_KEY_TYPE, &aes, sizeof(aes) } };
		CK_ATTRIBUTE len_t[] = { { CKA_VALUE_LEN, &len16, sizeof(len16) } };
		CK_ATTRIBUTE len5_t[] = { { CKA_VALUE_LEN, &len5, sizeof(len5) } };
		CK_ATTRIBUTE token_t[] = { { CKA_TOKEN, &yes, sizeof(yes) } };
		CK_ATTRIBUTE class_t[] = { { CKA_CLASS, &priv_class, sizeof(priv_class) } };
		CK_ATTRIBUTE value_t[] = { { CKA_VALUE, value, sizeof(value) } };
		CK_ATTRIBUTE bogus_t[] = { { CKA_MODULUS, value, sizeof(value) } };
		CK_ATTRIBUTE ok_t[] = { { CKA_CLASS, &secret_class, sizeof(secret_class) },
					{ CKA_VALUE_LEN, &len5, sizeof(len5) } };

		CHECK_RV(unwrap_rv(s, priv, jwe0, NULL, 0, &h), CKR_WRAPPED_KEY_LEN_RANGE);
		CHECK_RV(unwrap_rv(s, priv, jwe5, aes_t, 1, &h), CKR_WRAPPED_KEY_LEN_RANGE);
		CHECK_RV(unwrap_rv(s, priv, jwe5, len_t, 1, &h), CKR_TEMPLATE_INCONSISTENT);
		CHECK_RV(unwrap_rv(s, priv, jwe5, token_t, 1, &h), CKR_TEMPLATE_INCONSISTENT);
		CHECK_RV(unwrap_rv(s, priv, jwe5, class_t, 1, &h), CKR_TEMPLATE_INCONSISTENT);
		CHECK_RV(unwrap_rv(s, priv, jwe5, value_t, 1, &h), CKR_ATTRIBUTE_READ_ONLY);
		CHECK_RV(unwrap_rv(s, priv, jwe5, bogus_t, 1, &h), CKR_ATTRIBUTE_TYPE_INVALID);
		CHECK_RV(unwrap_rv(s, priv, jwe5, len5_t, 1, &h), CKR_DEVICE_ERROR);
		CHECK_RV(unwrap_rv(s, priv, jwe5, ok_t, 2, &h), CKR_DEVICE_ERROR);
		CHECK(h == CK_INVALID_HANDLE);
		CHECK_RV(f->C_UnwrapKey(s, &jwe_mech, pub, (CK_BYTE *)jwe5, strlen(jwe5), NULL, 0, &h),
			 CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
		CHECK_RV(f->C_UnwrapKey(s, &jwe_mech, 999999, (CK_BYTE *)jwe5, strlen(jwe5), NULL, 0, &h),
			 CKR_UNWRAPPING_KEY_HANDLE_INVALID);
		CHECK_RV(f->C_UnwrapKey(s, &with_param, priv, (CK_BYTE *)jwe5, strlen(jwe5), NULL, 0, &h),
			 CKR_MECHANISM_PARAM_INVALID);
		CHECK_RV(f->C_UnwrapKey(s, &ecdh, priv, (CK_BYTE *)jwe5, strlen(jwe5), NULL, 0, &h),
			 CKR_MECHANISM_INVALID);
		CHECK_RV(f->C_UnwrapKey(s, &jwe_mech, priv, (CK_BYTE *)jwe5, strlen(jwe5), NULL, 0, NULL),
			 CKR_ARGUMENTS_BAD);
	}
	/* Wrap: only secret keys, only with the public key. */
	CHECK_RV(f->C_WrapKey(s, &jwe_mech, priv, pub, out, &n), CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
	CHECK_RV(f->C_WrapKey(s, &jwe_mech, 999999, pub, out, &n), CKR_WRAPPING_KEY_HANDLE_INVALID);
	CHECK_RV(f->C_WrapKey(s, &jwe_mech, pub, 999999, out, &n), CKR_KEY_HANDLE_INVALID);
	CHECK_RV(f->C_WrapKey(s, &jwe_mech, pub, priv, out, &n), CKR_KEY_NOT_WRAPPABLE);
	CHECK_RV(f->C_WrapKey(s, &with_param, pub, priv, out, &n), CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(f->C_WrapKey(s, &ecdh, pub, priv, out, &n), CKR_MECHANISM_INVALID);
	free(jwe5);
	free(jwe0);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

/* ---- live (under with-tangd) ------------------------------------- */

static const char *tang_url, *tang_thp, *server_log, *module_log, *tang_tmp, *tang_db;

static int posts(void)
{
	char *log;
	int n = 0;

	usleep(150 * 1000);    /* tangd logs after it answered */
	log = read_file(server_log, NULL);
	for (char *p = log; p && (p = strstr(p, "POST")) != NULL; p += 4)
		n++;
	free(log);
	return n;
}

static void fill(unsigned char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

/* `clevis encrypt tang` of data; the JWE text (malloc'd). */
static char *clevis_encrypt(const void *data, size_t len)
{
	char in[600], out[600], cmd[2048];
	char *jwe;

	snprintf(in, sizeof(in), "%s/pt.bin", tang_tmp);
	snprintf(out, sizeof(out), "%s/clevis.jwe", tang_tmp);
	write_bytes(in, data, len);
	snprintf(cmd, sizeof(cmd), "clevis encrypt tang '{\"url\":\"%s\",\"thp\":\"%s\"}' < %s > %s",
		 tang_url, tang_thp, in, out);
	CHECK(system(cmd) == 0);
	jwe = read_file(out, NULL);
	return jwe ? jwe : strdup("");
}

/* `clevis decrypt` of jwe: true iff it printed exactly data. */
static bool clevis_decrypts_to(const char *jwe, const void *data, size_t len)
{
	char in[600], out[600], cmd[2048], *got;
	size_t got_len = 0;
	bool ok;

	snprintf(in, sizeof(in), "%s/module.jwe", tang_tmp);
	snprintf(out, sizeof(out), "%s/clevis.out", tang_tmp);
	write_bytes(in, jwe, strlen(jwe));
	snprintf(cmd, sizeof(cmd), "clevis decrypt < %s > %s", in, out);
	ok = system(cmd) == 0;
	got = read_file(out, &got_len);
	ok = ok && got && got_len == len && (len == 0 || memcmp(got, data, len) == 0);
	free(got);
	return ok;
}

static void live_interop(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv)
{
	static const size_t sizes[] = { 0, 1, 32, 4096, 65537 };
	unsigned char *data = malloc(65537), *out = malloc(65537 + 16);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i];
		char *jwe;
		CK_ULONG n = 65537 + 16;

		fill(data, len, (unsigned)i);
		/* module -> clevis */
		jwe = encrypt(s, pub, data, len);
		if (!clevis_decrypts_to(jwe, data, len)) {
			fprintf(stderr, "clevis decrypt of a module JWE of %zu bytes failed\n", len);
			failures++;
		}
		free(jwe);
		/* clevis -> module */
		jwe = clevis_encrypt(data, len);
		CHECK_RV(decrypt(s, priv, jwe, out, &n), CKR_OK);
		if (n != len || (len && memcmp(out, data, len) != 0)) {
			fprintf(stderr, "module decrypt of a clevis JWE of %zu bytes: wrong plaintext\n", len);
			failures++;
		}
		free(jwe);
	}
	free(data);
	free(out);
}

static CK_OBJECT_HANDLE unwrap_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, const char *jwe,
				     CK_KEY_TYPE type, bool extractable)
{
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &secret_class, sizeof(secret_class) },
		{ CKA_KEY_TYPE, &type, sizeof(type) },
		{ CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_EXTRACTABLE, extractable ? &yes : &no, sizeof(CK_BBOOL) },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

	CHECK_RV(unwrap_rv(s, priv, jwe, t, 4, &h), CKR_OK);
	return h;
}

static void live_unwrap_wrap(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv)
{
	static const size_t sizes[] = { 1, 32 };
	unsigned char data[32], value[64];

	for (size_t i = 0; i < 2; i++) {
		size_t len = sizes[i];
		char *jwe, *wrapped;
		CK_OBJECT_HANDLE h;
		CK_ULONG vl = 0, wl = 0, wl2;
		CK_ATTRIBUTE a = { CKA_VALUE, value, sizeof(value) };
		CK_ATTRIBUTE vlen = { CKA_VALUE_LEN, &vl, sizeof(vl) };

		fill(data, len, 40 + (unsigned)i);
		jwe = clevis_encrypt(data, len);
		h = unwrap_value(s, priv, jwe, len == 32 ? CKK_AES : CKK_GENERIC_SECRET, true);
		CHECK_RV(f->C_GetAttributeValue(s, h, &a, 1), CKR_OK);
		CHECK(a.ulValueLen == len && memcmp(value, data, len) == 0);
		CHECK_RV(f->C_GetAttributeValue(s, h, &vlen, 1), CKR_OK);
		CHECK(vl == len);

		/* Wrap it back: the two-call convention, then clevis opens it. */
		CHECK_RV(f->C_WrapKey(s, &jwe_mech, pub, h, NULL, &wl), CKR_OK);
		wl2 = 10;
		wrapped = malloc(wl + 1);
		CHECK_RV(f->C_WrapKey(s, &jwe_mech, pub, h, (CK_BYTE *)wrapped, &wl2), CKR_BUFFER_TOO_SMALL);
		CHECK(wl2 == wl);
		CHECK_RV(f->C_WrapKey(s, &jwe_mech, pub, h, (CK_BYTE *)wrapped, &wl), CKR_OK);
		wrapped[wl] = '\0';
		CHECK(clevis_decrypts_to(wrapped, data, len));
		free(wrapped);

		/* Not extractable: not wrappable. */
		h = unwrap_value(s, priv, jwe, CKK_GENERIC_SECRET, false);
		wl = 0;
		CHECK_RV(f->C_WrapKey(s, &jwe_mech, pub, h, NULL, &wl), CKR_KEY_UNEXTRACTABLE);
		free(jwe);
	}
}

/* A length query and a short buffer cost no request; the delivery one. */
static void live_one_exchange(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv)
{
	unsigned char data[300], out[300], small[8];
	char *jwe;
	CK_ULONG n;
	int before;

	fill(data, sizeof(data), 9);
	jwe = clevis_encrypt(data, sizeof(data));
	before = posts();
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OK);
	n = 0;
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), NULL, &n), CKR_OK);
	CHECK(n == sizeof(data));
	n = sizeof(small);
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), small, &n), CKR_BUFFER_TOO_SMALL);
	n = sizeof(out);
	CHECK_RV(f->C_Decrypt(s, (CK_BYTE *)jwe, strlen(jwe), out, &n), CKR_OK);
	CHECK(n == sizeof(data) && memcmp(out, data, n) == 0);
	CHECK(posts() == before + 1);

	/* Multi-part, in pieces, with a trailing newline as a file has it. */
	before = posts();
	CHECK_RV(f->C_DecryptInit(s, &jwe_mech, priv), CKR_OK);
	for (size_t off = 0, len = strlen(jwe); off < len; off += 100) {
		n = 0;
		CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)jwe + off, len - off < 100 ? len - off : 100,
					    out, &n), CKR_OK);
		CHECK(n == 0);
	}
	CHECK_RV(f->C_DecryptUpdate(s, (CK_BYTE *)"\n", 1, out, &n), CKR_OK);
	n = 0;
	CHECK_RV(f->C_DecryptFinal(s, NULL, &n), CKR_OK);
	CHECK(n == sizeof(data));
	n = 3;
	CHECK_RV(f->C_DecryptFinal(s, small, &n), CKR_BUFFER_TOO_SMALL);
	memset(out, 0, sizeof(out));
	n = sizeof(out);
	CHECK_RV(f->C_DecryptFinal(s, out, &n), CKR_OK);
	CHECK(n == sizeof(data) && memcmp(out, data, n) == 0);
	CHECK(posts() == before + 1);

	/* Unwrap of an empty plaintext: refused before any request. */
	{
		unsigned char v[1] = { 0 };
		char *k = clevis_encrypt(v, 0);

		before = posts();
		CHECK_RV(unwrap_rv(s, priv, k, NULL, 0, NULL), CKR_WRAPPED_KEY_LEN_RANGE);
		CHECK(posts() == before);
		free(k);
	}
	free(jwe);
}

static void live_tamperings(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv)
{
	unsigned char data[40], out[64];
	char *jwe, *sigthp = strdup(tang_thp);
	tamper t[MAX_TAMPER];
	size_t nt;
	int before;

	fill(data, sizeof(data), 3);
	jwe = clevis_encrypt(data, sizeof(data));
	{
		/* The expected kid is the JWE's own. */
		char *h = header_of(jwe), *k = strstr(h, "\"kid\":\"") + 7;

		snprintf(exp_kid, sizeof(exp_kid), "%.*s", (int)(strchr(k, '"') - k), k);
		free(h);
	}
	nt = tamperings(jwe, sigthp, t);
	for (size_t i = 0; i < nt; i++) {
		CK_ULONG n = sizeof(out);
		CK_RV got;

		before = posts();
		memset(out, 0, sizeof(out));
		got = decrypt(s, priv, t[i].jwe, out, &n);
		if (got != CKR_ENCRYPTED_DATA_INVALID) {
			fprintf(stderr, "live tampering \"%s\": 0x%lx, want CKR_ENCRYPTED_DATA_INVALID\n",
				t[i].name, (unsigned long)got);
			failures++;
		}
		/* No plaintext escapes, and local defects cost no request. */
		CHECK(memcmp(out, data, 8) != 0);
		if (posts() != before + (t[i].local ? 0 : 1)) {
			fprintf(stderr, "live tampering \"%s\": wrong number of requests\n", t[i].name);
			failures++;
		}
		got = unwrap_rv(s, priv, t[i].jwe, NULL, 0, NULL);
		if (got != CKR_WRAPPED_KEY_INVALID) {
			fprintf(stderr, "live unwrap tampering \"%s\": 0x%lx\n", t[i].name, (unsigned long)got);
			failures++;
		}
	}
	tamper_free(t, nt);
	CHECK(file_contains(module_log, "authentication tag mismatch"));
	free(sigthp);
	free(jwe);
}

/* Rotation: an old JWE still recovers (S from its header); once the
 * hidden key file is gone, the server says 404: CKR_DEVICE_ERROR, unknown
 * key in the log and ulDeviceError. */
static void live_rotation(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv)
{
	unsigned char data[16], out[16];
	char *jwe, cmd[1200];
	CK_ULONG n = sizeof(out);
	CK_SESSION_INFO si;

	fill(data, sizeof(data), 77);
	jwe = clevis_encrypt(data, sizeof(data));
	snprintf(cmd, sizeof(cmd), "/usr/libexec/tangd-rotate-keys -d '%s' >/dev/null 2>&1", tang_db);
	CHECK(system(cmd) == 0);
	CHECK_RV(decrypt(s, priv, jwe, out, &n), CKR_OK);
	CHECK(n == sizeof(data) && memcmp(out, data, n) == 0);
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/.*.jwk", tang_db);
	CHECK(system(cmd) == 0);
	n = sizeof(out);
	CHECK_RV(decrypt(s, priv, jwe, out, &n), CKR_DEVICE_ERROR);
	CHECK_RV(f->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.ulDeviceError == TANG_PKCS11_DEVERR_UNKNOWN_KEY);
	CHECK(file_contains(module_log, "unknown key"));
	free(jwe);
}

static int test_live(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;

	tang_url = getenv("TANG_URL");
	tang_thp = getenv("TANG_THP");
	server_log = getenv("TANG_SERVER_LOG");
	module_log = getenv("TANG_PKCS11_LOG");
	tang_tmp = getenv("TANG_TMP");
	tang_db = getenv("TANG_DB");
	if (!tang_url || !tang_thp || !server_log || !module_log || !tang_tmp || !tang_db) {
		fprintf(stderr, "--live runs under tests/fixtures/with-tangd\n");
		return 1;
	}
	if (system("command -v clevis >/dev/null") != 0) {
		fprintf(stderr, "clevis is missing\n");
		return getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77;
	}
	CHECK_RV(f->C_Initialize(NULL), CKR_OK);
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);
#define RUN(t) do { fprintf(stderr, "-- %s\n", #t); t; } while (0)
	RUN(live_interop(s, pub, priv));
	RUN(live_unwrap_wrap(s, pub, priv));
	RUN(live_one_exchange(s, priv));
	RUN(live_tamperings(s, priv));
	RUN(live_rotation(s, priv));
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	return 0;
}

int main(int argc, char **argv)
{
	const char *module = getenv("TANG_PKCS11_MODULE");
	const char *src = getenv("TP_SOURCE_ROOT");
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	char data_dir[400];
	int fd, rc = 0;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	void *dl;

	if (!module || !src) {
		fprintf(stderr, "TANG_PKCS11_MODULE and TP_SOURCE_ROOT must be set\n");
		return 1;
	}
	dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	get_list = dl ? (CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList") : NULL;
	if (!get_list || get_list(&f) != CKR_OK) {
		fprintf(stderr, "cannot load %s\n", module);
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "--live") == 0) {
		rc = test_live();
		fprintf(stderr, "%d failure(s)\n", failures);
		return rc ? rc : failures ? 1 : 0;
	}

	snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/core/data", src);
	snprintf(adv_path, sizeof(adv_path), "%s/adv.jws", data_dir);
	read_expected(data_dir);
	exchange_s1(data_dir);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tp-jwe.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(log_path, sizeof(log_path), "%s/module.log", tmpdir);
	setenv("TANG_PKCS11_LOG", log_path, 1);
	unsetenv("TANG_PKCS11_CONF");
	/* Bound, not listening: connections are refused. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
		return 1;
	refused_port = ntohs(a.sin_port);
	write_config();

	RUN(test_mechanism_info());
	RUN(test_init_rules());
	RUN(test_encrypt_offline());
	RUN(test_decrypt_offline());
	RUN(test_unwrap_offline());

	close(fd);
	if (failures == 0 && !getenv("TP_KEEP_LOG")) {
		unlink(conf_path);
		unlink(log_path);
		rmdir(tmpdir);
	} else {
		fprintf(stderr, "module log kept in %s\n", log_path);
	}
	fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
