/* tp-secrets: secrets hygiene (issue 6, item 7), against a real tangd.
 *
 * A child process, with TANG_PKCS11_DEBUG=1:
 *   - makes a 32-byte secret S in a buffer, C_Encrypt(CKM_TANG_JWE)s it
 *     and wipes the buffer; C_Decrypt of that JWE (a /rec exchange) gives
 *     S back, compared and wiped at once;
 *   - C_UnwrapKey makes a key of S, C_WrapKey wraps it again, the key is
 *     destroyed;
 *   - C_DeriveKey(CKM_ECDH1_DERIVE): with CKD_NULL (the shared secret Z)
 *     and with CKD_SHA256_KDF (K), each value read once, kept, destroyed;
 *   - C_Finalize, then it reads its own memory (/proc/self/maps and
 *     /proc/self/mem, every readable mapping) looking for S, Z and K.
 * None may be found anywhere: the module wiped every copy it made.  Then
 * the module's debug log must not contain any of them, in hex (either
 * case) or base64url.
 *
 * The test holds each secret only masked (secret XOR random), unmasking
 * byte by byte while comparing, so its own bookkeeping leaves no copy.
 * That the scan finds a secret that is there is checked first (a control
 * copy, then wiped), so the test can fail. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

typedef struct {
	const char *name;
	uint8_t masked[66], mask[66];
	size_t len;
} secret;

static secret S, Z, K;

/* Keeps buf masked in s and wipes buf. */
static void keep(secret *s, const char *name, uint8_t *buf, size_t len)
{
	s->name = name;
	s->len = len;
	REQUIRE(RAND_bytes(s->mask, (int)len) == 1);
	for (size_t i = 0; i < len; i++)
		s->masked[i] = buf[i] ^ s->mask[i];
	OPENSSL_cleanse(buf, len);
}

static bool equals_at(const secret *s, size_t off, size_t len, const uint8_t *p)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(s->masked[off + i] ^ s->mask[off + i]))
			return false;
	return true;
}

static bool equals(const secret *s, const uint8_t *p)
{
	return equals_at(s, 0, s->len, p);
}

/* Any 16-byte window of s (at offsets 0, 8, 16, ... and the last): a freed
 * copy has its first 16 bytes overwritten by malloc's free list, the rest
 * stays. */
#define WINDOW 16
static size_t occurrences(const secret *s, const uint8_t *hay, size_t n)
{
	size_t hits = 0;
	for (size_t off = 0; off + WINDOW <= s->len;) {
		uint8_t first = s->masked[off] ^ s->mask[off];
		for (size_t i = 0; i + WINDOW <= n; i++)
			if (hay[i] == first && equals_at(s, off, WINDOW, hay + i))
				hits++;
		if (off + WINDOW == s->len)
			break;
		off = off + 8 + WINDOW <= s->len ? off + 8 : s->len - WINDOW;
	}
	return hits;
}

/* Copies of s in this process's readable memory; names where. */
static size_t scan(const secret *s, bool verbose)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	int mem = open("/proc/self/mem", O_RDONLY);
	static uint8_t buf[1 << 20];
	char line[512];
	size_t hits = 0;
	REQUIRE(maps && mem >= 0);
	while (fgets(line, sizeof line, maps)) {
		unsigned long lo, hi;
		char perms[8] = "", path[400] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %399[^\n]", &lo, &hi, perms, path) < 3)
			continue;
		if (perms[0] != 'r' || strstr(path, "[vvar]") || strstr(path, "[vsyscall]"))
			continue;
		size_t here = 0;
		/* overlapping reads so a copy across a chunk edge is seen */
		for (unsigned long a = lo; a < hi;) {
			size_t want = hi - a < sizeof buf ? hi - a : sizeof buf;
			ssize_t got = pread(mem, buf, want, (off_t)a);
			if (got <= 0)
				break;
			/* skip the scan buffer itself */
			if ((uintptr_t)buf < a + (unsigned long)got && (uintptr_t)buf + sizeof buf > a) {
				a += (unsigned long)got;
				continue;
			}
			here += occurrences(s, buf, (size_t)got);
			if ((size_t)got <= WINDOW || a + (unsigned long)got >= hi)
				a += (unsigned long)got;
			else
				a += (unsigned long)got - (WINDOW - 1);
		}
		if (here && verbose)
			printf("# %s found %zu time(s) in %s", s->name, here, line);
		hits += here;
	}
	OPENSSL_cleanse(buf, sizeof buf);
	fclose(maps);
	close(mem);
	return hits;
}

static void to_hex(const secret *s, char *out, bool upper)
{
	static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
	const char *d = upper ? up : lo;
	for (size_t i = 0; i < s->len; i++) {
		uint8_t b = s->masked[i] ^ s->mask[i];
		out[2 * i] = d[b >> 4];
		out[2 * i + 1] = d[b & 15];
	}
	out[2 * s->len] = 0;
}

/* C_DeriveKey(CKM_ECDH1_DERIVE), the value read straight into out (no
 * copy elsewhere on the test's side), the key destroyed. */
static CK_RV derive_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_ULONG kdf,
			  const uint8_t *peer, size_t peer_len, CK_KEY_TYPE kt, CK_ULONG len,
			  uint8_t *out, size_t *out_len)
{
	CK_ECDH1_DERIVE_PARAMS p = { kdf, 0, NULL, peer_len, (CK_BYTE_PTR)peer };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof p };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL f = CK_FALSE, t = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_SENSITIVE, &f, sizeof f }, { CKA_EXTRACTABLE, &t, sizeof t },
		{ CKA_VALUE_LEN, &len, sizeof len },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = P->C_DeriveKey(s, &m, key, tmpl, len ? 5 : 4, &h);
	if (rv != CKR_OK)
		return rv;
	CK_ATTRIBUTE a = { CKA_VALUE, out, 128 };
	rv = P->C_GetAttributeValue(s, h, &a, 1);
	*out_len = rv == CKR_OK ? a.ulValueLen : 0;
	CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
	return rv;
}

static int child(void)
{
	tp_server_key key;
	uint8_t buf[256];
	CK_ULONG n;
	CK_MECHANISM jwe = { CKM_TANG_JWE, NULL, 0 };

	setenv("TANG_PKCS11_DEBUG", "1", 1);
	REQUIRE(tp_server_keys(&key, 1, false) == 1);
	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(tp_slot("tang"));
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, key.id);
	CK_OBJECT_HANDLE pub = tp_find_key(s, CKO_PUBLIC_KEY, key.id);
	REQUIRE(priv && pub);

	tp_case_begin("the scan finds a secret that is there (control)");
	{
		uint8_t control[32];
		secret c;
		REQUIRE(RAND_bytes(control, sizeof control) == 1);
		uint8_t copy[32];
		memcpy(copy, control, sizeof copy);
		keep(&c, "control", copy, sizeof copy);
		CHECKF(scan(&c, false) >= 1, "the scan missed a secret in memory");
		OPENSSL_cleanse(control, sizeof control);
		CHECKF(scan(&c, true) == 0, "a wiped control secret is still found");
	}
	tp_case_end();

	/* 1. JWE: encrypt a secret, decrypt it back. */
	uint8_t *jwe1 = malloc(8192), *jwe2 = malloc(8192);
	CK_ULONG jwe1_len = 8192, jwe2_len = 8192;
	REQUIRE(jwe1 && jwe2);
	{
		uint8_t pt[32];
		REQUIRE(RAND_bytes(pt, sizeof pt) == 1);
		REQUIRE_RV(P->C_EncryptInit(s, &jwe, pub), CKR_OK);
		REQUIRE_RV(P->C_Encrypt(s, pt, sizeof pt, jwe1, &jwe1_len), CKR_OK);
		keep(&S, "the JWE plaintext / wrapped key", pt, sizeof pt);
		n = sizeof buf;
		REQUIRE_RV(P->C_DecryptInit(s, &jwe, priv), CKR_OK);
		REQUIRE_RV(P->C_Decrypt(s, jwe1, jwe1_len, buf, &n), CKR_OK);
		CHECK(n == 32 && equals(&S, buf));
		OPENSSL_cleanse(buf, sizeof buf);
	}
	/* Right away too (later allocations may reuse a forgotten copy). */
	tp_case_begin("after C_Encrypt and C_Decrypt: the plaintext is nowhere in memory");
	CHECKF(scan(&S, true) == 0, "plaintext left in memory");
	tp_case_end();
	/* 2. unwrap it into a key, wrap that key again, destroy it */
	{
		CK_OBJECT_CLASS sc = CKO_SECRET_KEY;
		CK_KEY_TYPE kt = CKK_AES;
		CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sc, sizeof sc }, { CKA_KEY_TYPE, &kt, sizeof kt },
				     { CKA_SENSITIVE, &no, sizeof no },
				     { CKA_EXTRACTABLE, &yes, sizeof yes } };
		CK_OBJECT_HANDLE h = 0;
		CHECK_RV(P->C_UnwrapKey(s, &jwe, priv, jwe1, jwe1_len, t, 4, &h), CKR_OK);
		CHECK_RV(P->C_WrapKey(s, &jwe, pub, h, jwe2, &jwe2_len), CKR_OK);
		CHECK_RV(P->C_DestroyObject(s, h), CKR_OK);
	}
	tp_case_begin("after C_UnwrapKey, C_WrapKey, C_DestroyObject: the key is nowhere in memory");
	CHECKF(scan(&S, true) == 0, "key value left in memory");
	tp_case_end();
	/* 3. derive: Z (CKD_NULL) and K (SHA-256 KDF) */
	{
		EVP_PKEY *peer = tp_ec_gen("P-521");
		uint8_t raw[133], v[128];
		size_t vl = 0;
		tp_ec_point(peer, raw, sizeof raw);
		CHECK_RV(derive_value(s, priv, CKD_NULL, raw, sizeof raw, CKK_GENERIC_SECRET, 0, v, &vl),
			 CKR_OK);
		REQUIRE(vl == 66);
		keep(&Z, "the ECDH shared secret Z", v, vl);
		CHECK_RV(derive_value(s, priv, CKD_SHA256_KDF, raw, sizeof raw, CKK_AES, 32, v, &vl),
			 CKR_OK);
		REQUIRE(vl == 32);
		keep(&K, "the derived key K", v, vl);
		EVP_PKEY_free(peer);
	}
	tp_case_begin("after C_DeriveKey and C_DestroyObject: Z and K are nowhere in memory");
	CHECKF(scan(&Z, true) == 0, "Z left in memory");
	CHECKF(scan(&K, true) == 0, "K left in memory");
	tp_case_end();
	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&key);

	const secret *all[] = { &S, &Z, &K };
	for (int i = 0; i < 3; i++) {
		char name[128];
		snprintf(name, sizeof name, "after C_Finalize: %s is nowhere in memory", all[i]->name);
		tp_case_begin(name);
		size_t hits = scan(all[i], true);
		CHECKF(hits == 0, "%s: %zu copies left in memory", all[i]->name, hits);
		tp_case_end();
	}

	tp_case_begin("the debug log names no secret (hex, HEX, base64url)");
	{
		char *log = tp_read_file(tp_env("TANG_PKCS11_LOG"), 0);
		CHECKF(log && tp_count_lines(log) > 5, "no debug log (%d lines)",
		       log ? tp_count_lines(log) : 0);
		for (int i = 0; log && i < 3; i++) {
			char hex[140], HEX[140], b64[100];
			uint8_t clear[66];
			to_hex(all[i], hex, false);
			to_hex(all[i], HEX, true);
			for (size_t j = 0; j < all[i]->len; j++)
				clear[j] = all[i]->masked[j] ^ all[i]->mask[j];
			tp_b64u_encode(clear, all[i]->len, b64);
			OPENSSL_cleanse(clear, sizeof clear);
			CHECKF(!strstr(log, hex) && !strstr(log, HEX), "%s in hex in the log",
			       all[i]->name);
			CHECKF(!strstr(log, b64), "%s in base64url in the log", all[i]->name);
			/* a prefix is enough to leak: 8 bytes */
			hex[16] = HEX[16] = b64[11] = 0;
			CHECKF(!strstr(log, hex) && !strstr(log, HEX) && !strstr(log, b64),
			       "a prefix of %s in the log", all[i]->name);
		}
		free(log);
	}
	tp_case_end();
	free(jwe1);
	free(jwe2);
	return tp_exit();
}

int main(int argc, char **argv)
{
	/* Under valgrind or a sanitizer, freed memory lives on in their
	 * quarantines and shadow mappings are terabytes: this scan is for the
	 * plain build (tools/run-sanitizers runs the rest). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	printf("SKIP: memory scan under a sanitizer\n");
	return 77;
#endif
	if (getenv("TP_UNDER_VALGRIND")) {
		printf("SKIP: memory scan under valgrind\n");
		return 77;
	}
	/* meson sets MALLOC_PERTURB_, which makes free() overwrite what it
	 * frees: it would hide a copy the module forgot to wipe.  Run again
	 * without it (glibc reads it at start). */
	if (getenv("MALLOC_PERTURB_")) {
		unsetenv("MALLOC_PERTURB_");
		execv("/proc/self/exe", argv);
		printf("# cannot re-execute without MALLOC_PERTURB_\n");
		return 1;
	}
	(void)argc;
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(child());
	int st = 0;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st)) {
		printf("# the child died: status 0x%x\n", st);
		return 1;
	}
	return WEXITSTATUS(st);
}
