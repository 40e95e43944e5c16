/* tp-bench-recovery: Tang recovery through tang-pkcs11 against clevis.
 *
 *   tests/fixtures/with-tangd build/softhsm-compare/tp-bench-recovery [N]
 *
 * Prints numbers, asserts nothing (docs/performance.md has results).
 *
 * 1. Latency, one run, interleaved (the order rotates every iteration), N
 *    iterations (default 30) of:
 *      - C_DecryptInit + C_Decrypt(CKM_TANG_JWE) of a `clevis encrypt tang`
 *        JWE (32-byte secret), two-call length convention, one recovery;
 *      - C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL) on the Tang private key
 *        (+ reading CKA_VALUE), one recovery;
 *      - `clevis decrypt` of the same JWE (fork + exec, until it exits).
 *    Every result is checked (the plaintext; the derived secret against a
 *    local ECDH with the token's public key).  Median and p90, and ratios.
 * 2. Client CPU (instructions, valgrind --tool=callgrind): one warm
 *    C_Decrypt and one warm C_DeriveKey in this program re-run under
 *    callgrind with only that call instrumented; the two P-521 scalar
 *    multiplications e·G and e·S (tp-bench-ecmul); and, with --clevis-cpu,
 *    clevis decrypt with --trace-children=yes, summed over its processes.
 *
 * Options: N (iterations), --no-cpu (skip part 2), --clevis-cpu (add
 * clevis' instructions: slow, ~1 min).  Environment: the with-tangd
 * variables, TANG_PKCS11_MODULE (default: this build's module). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <valgrind/callgrind.h>

#include "tang-pkcs11.h"

#ifndef BENCH_MODULE
#define BENCH_MODULE "tang-pkcs11.so"
#endif
#ifndef BENCH_ECMUL
#define BENCH_ECMUL "tp-bench-ecmul"
#endif

static CK_FUNCTION_LIST *P;
static CK_SESSION_HANDLE S;
static CK_OBJECT_HANDLE priv, pub;
static const char *tmp;
static char jwe_path[4200], pt_path[4200];
static uint8_t secret[32];
static char *jwe;
static size_t jwe_len;
static uint8_t peer[133], expect_z[66];

static const char *rvs(CK_RV rv)
{
	static char b[32];
	switch (rv) {
	case CKR_OK: return "CKR_OK";
	case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
	case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
	case CKR_FUNCTION_NOT_SUPPORTED: return "CKR_FUNCTION_NOT_SUPPORTED";
	}
	snprintf(b, sizeof b, "CKR_0x%lx", (unsigned long)rv);
	return b;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "tp-bench-recovery: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static const char *env(const char *n)
{
	const char *v = getenv(n);
	if (!v || !*v)
		die("%s is not set: run under tests/fixtures/with-tangd", n);
	return v;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* fork + exec with stdin/stdout from/to files; exit status or -1. */
static int run(char *const argv[], const char *in, const char *out, const char *err)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fi = open(in ? in : "/dev/null", O_RDONLY);
		int fo = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
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

static bool file_equals(const char *path, const uint8_t *want, size_t n)
{
	uint8_t buf[256];
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	size_t got = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return got == n && memcmp(buf, want, n) == 0;
}

/* ---- the module ------------------------------------------------------- */

static void load(void)
{
	const char *path = getenv("TANG_PKCS11_MODULE");
	if (!path || !*path)
		path = BENCH_MODULE;
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		die("dlopen: %s", dlerror());
	CK_C_GetFunctionList gfl;
	*(void **)&gfl = dlsym(dl, "C_GetFunctionList");
	if (!gfl || gfl(&P) != CKR_OK)
		die("%s: no C_GetFunctionList", path);
	CK_C_INITIALIZE_ARGS a = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = P->C_Initialize(&a);
	if (rv != CKR_OK)
		die("C_Initialize: %s", rvs(rv));
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	if (P->C_GetSlotList(CK_TRUE, &slot, &n) != CKR_OK || n < 1)
		die("%s", "no slot (TANG_PKCS11_CONF?)");
	if (P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &S) != CKR_OK)
		die("%s", "C_OpenSession failed");
	for (int i = 0; i < 2; i++) {
		CK_OBJECT_CLASS cls = i ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY;
		CK_KEY_TYPE kt = CKK_EC;
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt } };
		CK_OBJECT_HANDLE h = 0;
		CK_ULONG c = 0;
		P->C_FindObjectsInit(S, t, 2);
		P->C_FindObjects(S, &h, 1, &c);
		P->C_FindObjectsFinal(S);
		if (c != 1)
			die("%s", "no Tang key on the token (is tangd up?)");
		*(i ? &pub : &priv) = h;
	}
}

/* x(c·S) computed here from the token's public key (CKA_EC_POINT): what a
 * recovery of the peer C = c·G must return. */
static void make_peer(void)
{
	uint8_t ecp[140];
	CK_ATTRIBUTE a = { CKA_EC_POINT, ecp, sizeof ecp };
	if (P->C_GetAttributeValue(S, pub, &a, 1) != CKR_OK || a.ulValueLen != 136)
		die("%s", "CKA_EC_POINT of the Tang public key is not a P-521 point");
	EVP_PKEY *c = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	size_t pl = 0;
	EVP_PKEY_get_octet_string_param(c, OSSL_PKEY_PARAM_PUB_KEY, peer, sizeof peer, &pl);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "P-521", 0);
	OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, ecp + 3, 133);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
	EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *server = NULL;
	EVP_PKEY_fromdata_init(fc);
	EVP_PKEY_fromdata(fc, &server, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(c, NULL);
	size_t zl = sizeof expect_z;
	if (pl != 133 || !server || EVP_PKEY_derive_init(dc) <= 0 ||
	    EVP_PKEY_derive_set_peer(dc, server) <= 0 || EVP_PKEY_derive(dc, expect_z, &zl) <= 0 ||
	    zl != 66)
		die("%s", "local ECDH failed");
	EVP_PKEY_CTX_free(dc);
	EVP_PKEY_CTX_free(fc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_free(server);
	EVP_PKEY_free(c);
}

static CK_RV jwe_decrypt(void)
{
	CK_MECHANISM m = { CKM_TANG_JWE, NULL, 0 };
	uint8_t out[64];
	CK_ULONG n = 0;
	CK_RV rv = P->C_DecryptInit(S, &m, priv);
	if (rv == CKR_OK)
		rv = P->C_Decrypt(S, (CK_BYTE_PTR)jwe, jwe_len, NULL, &n);
	if (rv == CKR_OK && n > sizeof out)
		return CKR_GENERAL_ERROR;
	if (rv == CKR_OK)
		rv = P->C_Decrypt(S, (CK_BYTE_PTR)jwe, jwe_len, out, &n);
	if (rv == CKR_OK && (n != sizeof secret || memcmp(out, secret, n) != 0))
		return CKR_GENERAL_ERROR;
	return rv;
}

static CK_RV derive(void)
{
	CK_ECDH1_DERIVE_PARAMS p = { .kdf = CKD_NULL, .ulPublicDataLen = sizeof peer,
				     .pPublicData = peer };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof p };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL f = CK_FALSE, t = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
		{ CKA_TOKEN, &f, sizeof f },     { CKA_SENSITIVE, &f, sizeof f },
		{ CKA_EXTRACTABLE, &t, sizeof t },
	};
	CK_OBJECT_HANDLE h = 0;
	CK_RV rv = P->C_DeriveKey(S, &m, priv, tmpl, 5, &h);
	if (rv != CKR_OK)
		return rv;
	uint8_t v[80];
	CK_ATTRIBUTE a = { CKA_VALUE, v, sizeof v };
	rv = P->C_GetAttributeValue(S, h, &a, 1);
	P->C_DestroyObject(S, h);
	if (rv == CKR_OK && (a.ulValueLen != 66 || memcmp(v, expect_z, 66) != 0))
		return CKR_GENERAL_ERROR;
	return rv;
}

static bool clevis_decrypt(void)
{
	char out[4300];
	snprintf(out, sizeof out, "%s/clevis.out", tmp);
	char *argv[] = { "clevis", "decrypt", NULL };
	return run(argv, jwe_path, out, NULL) == 0 && file_equals(out, secret, sizeof secret);
}

/* ---- statistics -------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static double pct(double *v, int n, double p)
{
	int k = (int)(p * n + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static double median(double *v, int n)
{
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- callgrind ----------------------------------------------------------- */

/* Sum of the "totals:" (or "summary:") lines of callgrind output files
 * whose names start with prefix in dir; *files counts them. */
static unsigned long long cg_sum(const char *dir, const char *prefix, int *files)
{
	unsigned long long sum = 0;
	*files = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		char path[4400], line[512];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "r");
		unsigned long long v = 0, tot = 0, sum_line = 0;
		bool have_tot = false;
		while (f && fgets(line, sizeof line, f)) {
			if (sscanf(line, "totals: %llu", &tot) == 1)
				have_tot = true;
			else
				sscanf(line, "summary: %llu", &sum_line);
		}
		/* "summary:" is 0 when instrumentation started late: prefer "totals:" */
		v = have_tot ? tot : sum_line;
		if (f)
			fclose(f);
		sum += v;
		(*files)++;
	}
	if (d)
		closedir(d);
	return sum;
}

/* Instructions of `argv` under callgrind (--instr-atstart as given). */
static unsigned long long callgrind(const char *tag, char *const argv[], bool instr_atstart,
				    bool children, const char *in, int *files)
{
	char outfile[4400], instr[64];
	snprintf(outfile, sizeof outfile, "%s/cg.%s.%%p", tmp, tag);
	char of_arg[4500];
	snprintf(of_arg, sizeof of_arg, "--callgrind-out-file=%s", outfile);
	snprintf(instr, sizeof instr, "--instr-atstart=%s", instr_atstart ? "yes" : "no");
	char *vg[32] = { "valgrind", "--tool=callgrind", of_arg, instr,
			 children ? "--trace-children=yes" : "--trace-children=no" };
	int k = 5;
	for (int i = 0; argv[i] && k < 31; i++)
		vg[k++] = argv[i];
	vg[k] = NULL;
	char err[4400], prefix[128];
	snprintf(err, sizeof err, "%s/cg.%s.log", tmp, tag);
	int rc = run(vg, in, NULL, err);
	snprintf(prefix, sizeof prefix, "cg.%s.", tag);
	unsigned long long n = cg_sum(tmp, prefix, files);
	/* the log file matches the prefix too: it has no totals line */
	(*files)--;
	if (rc != 0) {
		fprintf(stderr, "  (%s under callgrind exited %d, see %s)\n", tag, rc, err);
		return 0;
	}
	return n;
}

/* In the child under callgrind: one warm call, instrumented. */
static int cg_one(const char *what)
{
	load();
	make_peer();
	CK_RV (*fn)(void) = strcmp(what, "decrypt") == 0 ? jwe_decrypt : derive;
	CK_RV rv = fn(); /* warm-up: advertisement, objects, curl */
	if (rv != CKR_OK) {
		fprintf(stderr, "%s (warm-up): %s\n", what, rvs(rv));
		return 1;
	}
	CALLGRIND_START_INSTRUMENTATION;
	rv = fn();
	CALLGRIND_STOP_INSTRUMENTATION;
	if (rv != CKR_OK) {
		fprintf(stderr, "%s: %s\n", what, rvs(rv));
		return 1;
	}
	P->C_Finalize(NULL);
	return 0;
}

static void read_inputs(void)
{
	FILE *f = fopen(jwe_path, "rb");
	if (!f)
		die("%s: cannot read", jwe_path);
	jwe = malloc(1 << 20);
	jwe_len = fread(jwe, 1, (1 << 20) - 1, f);
	jwe[jwe_len] = 0;
	fclose(f);
	f = fopen(pt_path, "rb");
	if (!f || fread(secret, 1, sizeof secret, f) != sizeof secret)
		die("%s: cannot read", pt_path);
	fclose(f);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	tmp = env("TANG_TMP");
	snprintf(jwe_path, sizeof jwe_path, "%s/bench.jwe", tmp);
	snprintf(pt_path, sizeof pt_path, "%s/bench.pt", tmp);
	if (argc == 3 && strcmp(argv[1], "--cg-one") == 0) {
		read_inputs();
		return cg_one(argv[2]);
	}
	int iters = 30;
	bool cpu = true, clevis_cpu = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-cpu") == 0)
			cpu = false;
		else if (strcmp(argv[i], "--clevis-cpu") == 0)
			clevis_cpu = true;
		else if (atoi(argv[i]) > 0)
			iters = atoi(argv[i]);
		else
			die("usage: tp-bench-recovery [N] [--no-cpu] [--clevis-cpu] (got %s)", argv[i]);
	}

	/* The JWE: `clevis encrypt tang` of 32 random bytes. */
	RAND_bytes(secret, sizeof secret);
	FILE *f = fopen(pt_path, "wb");
	fwrite(secret, 1, sizeof secret, f);
	fclose(f);
	char cfg[1024];
	snprintf(cfg, sizeof cfg, "{\"url\":\"%s\",\"thp\":\"%s\"}", env("TANG_URL"),
		 env("TANG_THP"));
	char *enc[] = { "clevis", "encrypt", "tang", cfg, NULL };
	if (run(enc, pt_path, jwe_path, NULL) != 0)
		die("%s", "clevis encrypt tang failed");
	read_inputs();

	load();
	make_peer();
	CK_RV jrv = jwe_decrypt(), drv = derive();
	bool have_jwe = jrv == CKR_OK, have_derive = drv == CKR_OK;
	if (!have_jwe)
		printf("NOTE: module JWE decrypt failed (%s): its column is left out\n", rvs(jrv));
	if (!have_derive)
		printf("NOTE: module C_DeriveKey failed (%s): its column is left out\n", rvs(drv));
	if (!clevis_decrypt())
		die("%s", "clevis decrypt of the JWE failed");

	double *t[3];
	int cnt[3] = { 0, 0, 0 }, errors[3] = { 0, 0, 0 };
	for (int k = 0; k < 3; k++)
		t[k] = calloc((size_t)iters, sizeof(double));
	for (int i = 0; i < iters; i++) {
		for (int j = 0; j < 3; j++) {
			int k = (i + j) % 3; /* rotate the order */
			if ((k == 0 && !have_jwe) || (k == 1 && !have_derive))
				continue;
			double t0 = now();
			bool ok = k == 0 ? jwe_decrypt() == CKR_OK
				: k == 1 ? derive() == CKR_OK
					 : clevis_decrypt();
			double dt = (now() - t0) * 1000;
			if (ok)
				t[k][cnt[k]++] = dt;
			else
				errors[k]++;
		}
	}
	static const char *names[3] = { "module C_Decrypt(CKM_TANG_JWE)",
					 "module C_DeriveKey(CKM_ECDH1_DERIVE)",
					 "clevis decrypt (tang pin)" };
	double med[3] = { 0, 0, 0 };
	printf("Tang recovery latency, loopback tangd %s, %d iterations, interleaved\n",
	       env("TANG_URL"), iters);
	printf("  %-38s %9s %9s %9s %7s\n", "(milliseconds)", "median", "p90", "min", "errors");
	for (int k = 0; k < 3; k++) {
		if (!cnt[k])
			continue;
		qsort(t[k], (size_t)cnt[k], sizeof(double), cmp_d);
		med[k] = median(t[k], cnt[k]);
		printf("  %-38s %9.2f %9.2f %9.2f %7d\n", names[k], med[k], pct(t[k], cnt[k], 0.9),
		       t[k][0], errors[k]);
	}
	printf("  ratios of medians:");
	if (med[0] > 0)
		printf("  clevis / JWE decrypt %.1fx", med[2] / med[0]);
	if (med[1] > 0)
		printf("  clevis / derive %.1fx", med[2] / med[1]);
	if (med[0] > 0 && med[1] > 0)
		printf("  JWE decrypt / derive %.2fx", med[0] / med[1]);
	printf("\n");
	P->C_Finalize(NULL);

	if (!cpu)
		return 0;
	char *vgcheck[] = { "valgrind", "--version", NULL };
	if (run(vgcheck, NULL, NULL, NULL) != 0) {
		printf("valgrind is missing: no instruction counts\n");
		return 0;
	}
	printf("\nClient CPU per recovery (valgrind --tool=callgrind, instructions executed)\n");
	int files;
	unsigned long long ci[2] = { 0, 0 };
	const char *what[2] = { "decrypt", "derive" };
	for (int k = 0; k < 2; k++) {
		if (!(k == 0 ? have_jwe : have_derive))
			continue;
		char *self[] = { "/proc/self/exe", "--cg-one", (char *)what[k], NULL };
		char exe[4096];
		ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
		if (l <= 0)
			die("%s", "readlink /proc/self/exe");
		exe[l] = 0;
		self[0] = exe;
		ci[k] = callgrind(what[k], self, false, false, NULL, &files);
	}
	char *mulG[] = { BENCH_ECMUL, "G", NULL }, *mulS[] = { BENCH_ECMUL, "S", NULL },
	     *mul2[] = { BENCH_ECMUL, "both", NULL };
	unsigned long long g = callgrind("ecmulG", mulG, false, false, NULL, &files);
	unsigned long long sm = callgrind("ecmulS", mulS, false, false, NULL, &files);
	unsigned long long two = callgrind("ecmul2", mul2, false, false, NULL, &files);
	if (ci[0])
		printf("  %-48s %14llu\n", "one warm C_Decrypt(CKM_TANG_JWE)", ci[0]);
	if (ci[1])
		printf("  %-48s %14llu\n", "one warm C_DeriveKey(CKM_ECDH1_DERIVE)", ci[1]);
	printf("  %-48s %14llu\n", "P-521 e*G (EC_POINT_mul, fixed base)", g);
	printf("  %-48s %14llu\n", "P-521 e*S (EC_POINT_mul, variable base)", sm);
	printf("  %-48s %14llu\n", "the two together (the floor of a recovery)", two);
	if (two && ci[0])
		printf("  ratio C_Decrypt / two multiplications:   %.2f\n", (double)ci[0] / two);
	if (two && ci[1])
		printf("  ratio C_DeriveKey / two multiplications: %.2f\n", (double)ci[1] / two);
	if (clevis_cpu) {
		char *cd[] = { "clevis", "decrypt", NULL };
		unsigned long long c = callgrind("clevis", cd, true, true, jwe_path, &files);
		printf("  %-48s %14llu (%d processes)\n", "clevis decrypt, all processes", c, files);
		if (ci[0] && c)
			printf("  ratio clevis decrypt / C_Decrypt:        %.1f\n", (double)c / ci[0]);
		if (ci[1] && c)
			printf("  ratio clevis decrypt / C_DeriveKey:      %.1f\n", (double)c / ci[1]);
	}
	return 0;
}
