/* tp-bench-find: searching many token objects, tang-pkcs11's sealed store
 * against SoftHSM2, the same calls on both modules in one run.
 *
 *   tests/fixtures/with-tangd build/softhsm-compare/tp-bench-find [N] [SEARCHES]
 *
 * Prints numbers, asserts nothing (docs/performance.md has results).
 *
 * For each module: a fresh token (C_InitToken, C_InitPIN, user login), N
 * (default 2000) public token data objects with a label and a 32-byte value
 * made by C_CreateObject (timed), then SEARCHES (default 200) searches of:
 *   - one object by CKA_LABEL (C_FindObjectsInit/C_FindObjects/Final),
 *   - every data object (CKA_CLASS), collecting N handles,
 * and the first search of a new initialization (C_Finalize, C_Initialize,
 * C_OpenSession, one label search: reads the whole store; tang-pkcs11 also
 * recovers the root secret from Tang once), and a search after another
 * process added one object (tang-pkcs11 reads that one file only).
 * Every search's result count is checked.  Medians, and tang/SoftHSM
 * ratios.  Environment: the with-tangd variables; TANG_PKCS11_MODULE
 * (default this build's module); SOFTHSM2_MODULE (default Debian's). */
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#ifndef BENCH_MODULE
#define BENCH_MODULE "tang-pkcs11.so"
#endif
#define SOFTHSM_DEFAULT "/usr/lib/softhsm/libsofthsm2.so"

typedef struct result {
	const char *name;
	double create, by_label, by_class, first, after_other;
} result;

static CK_FUNCTION_LIST *P;
static CK_SLOT_ID slot;
static int n_objects = 2000, n_searches = 200;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(CK_RV rv, const char *what)
{
	if (rv != CKR_OK) {
		fprintf(stderr, "tp-bench-find: %s: CK_RV 0x%lx\n", what, (unsigned long)rv);
		exit(1);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void load(const char *path)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);

	if (!dl) {
		fprintf(stderr, "tp-bench-find: dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&gfl = dlsym(dl, "C_GetFunctionList");
	check(gfl(&P), "C_GetFunctionList");
}

static void initialize(void)
{
	CK_SLOT_ID slots[8];
	CK_ULONG n = 8;

	check(P->C_Initialize(NULL), "C_Initialize");
	check(P->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
	slot = slots[0];
}

static CK_SESSION_HANDLE open_login(void)
{
	CK_SESSION_HANDLE s;

	check(P->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
	      "C_OpenSession");
	check(P->C_Login(s, CKU_USER, (CK_UTF8CHAR *)"1234", 4), "C_Login");
	return s;
}

static void fresh_token(const char *label)
{
	CK_UTF8CHAR l[32];
	CK_SESSION_HANDLE s;

	memset(l, ' ', 32);
	memcpy(l, label, strlen(label));
	check(P->C_InitToken(slot, (CK_UTF8CHAR *)"so-pin-1", 8, l), "C_InitToken");
	check(P->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
	      "C_OpenSession");
	check(P->C_Login(s, CKU_SO, (CK_UTF8CHAR *)"so-pin-1", 8), "C_Login SO");
	check(P->C_InitPIN(s, (CK_UTF8CHAR *)"1234", 4), "C_InitPIN");
	check(P->C_CloseSession(s), "C_CloseSession");
}

static void create(CK_SESSION_HANDLE s, const char *label)
{
	CK_OBJECT_CLASS c = CKO_DATA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char value[32];
	CK_OBJECT_HANDLE h;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &c, sizeof c }, { CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &no, 1 },
		{ CKA_LABEL, (void *)label, strlen(label) }, { CKA_VALUE, value, sizeof value },
	};

	memset(value, 0x5a, sizeof value);
	check(P->C_CreateObject(s, t, 5, &h), "C_CreateObject");
}

static CK_ULONG search(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n)
{
	CK_OBJECT_HANDLE h[256];
	CK_ULONG got, total = 0;

	check(P->C_FindObjectsInit(s, t, n), "C_FindObjectsInit");
	do {
		check(P->C_FindObjects(s, h, 256, &got), "C_FindObjects");
		total += got;
	} while (got);
	check(P->C_FindObjectsFinal(s), "C_FindObjectsFinal");
	return total;
}

static CK_ULONG search_label(CK_SESSION_HANDLE s, int i)
{
	char label[32];
	CK_ATTRIBUTE t = { CKA_LABEL, label, 0 };

	snprintf(label, sizeof label, "object-%d", i);
	t.ulValueLen = strlen(label);
	return search(s, &t, 1);
}

static CK_ULONG search_class(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS c = CKO_DATA;
	CK_ATTRIBUTE t = { CKA_CLASS, &c, sizeof c };

	return search(s, &t, 1);
}

static void run(const char *module, const char *name, const char *label, result *r)
{
	CK_SESSION_HANDLE s;
	double *t = calloc(n_searches > n_objects ? n_searches : n_objects, sizeof(*t));
	double t0;
	pid_t pid;
	int status;

	r->name = name;
	load(module);
	initialize();
	fresh_token(label);
	s = open_login();
	for (int i = 0; i < n_objects; i++) {
		char l[32];

		snprintf(l, sizeof l, "object-%d", i);
		t0 = now();
		create(s, l);
		t[i] = now() - t0;
	}
	r->create = median(t, n_objects);
	/* Warm: the first search reads what this process has not seen. */
	search_class(s);
	for (int i = 0; i < n_searches; i++) {
		t0 = now();
		if (search_label(s, (i * 7919) % n_objects) != 1)
			fprintf(stderr, "tp-bench-find: %s: a label search did not find 1\n", name);
		t[i] = now() - t0;
	}
	r->by_label = median(t, n_searches);
	for (int i = 0; i < n_searches / 10 + 1; i++) {
		t0 = now();
		if (search_class(s) != (CK_ULONG)n_objects)
			fprintf(stderr, "tp-bench-find: %s: a class search did not find %d\n", name, n_objects);
		t[i] = now() - t0;
	}
	r->by_class = median(t, n_searches / 10 + 1);

	/* Another process adds one object; our next search. */
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* A child of an initialized parent: SoftHSM2 still counts itself
		 * initialized there, tang-pkcs11 does not (either is fine). */
		P->C_Finalize(NULL);
		initialize();
		create(open_login(), "from-another-process");
		_exit(P->C_Finalize(NULL) == CKR_OK ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	t0 = now();
	if (search_class(s) != (CK_ULONG)n_objects + 1)
		fprintf(stderr, "tp-bench-find: %s: the other process's object is not seen\n", name);
	r->after_other = now() - t0;

	/* A new initialization: its first search. */
	check(P->C_Finalize(NULL), "C_Finalize");
	t0 = now();
	initialize();
	check(P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), "C_OpenSession");
	if (search_label(s, 1) != 1)
		fprintf(stderr, "tp-bench-find: %s: first search did not find 1\n", name);
	r->first = now() - t0;
	check(P->C_Finalize(NULL), "C_Finalize");
	free(t);
}

static void row(const char *what, double a, double b)
{
	printf("%-44s %12.1f %12.1f %8.3f\n", what, a * 1e6, b * 1e6, b > 0 ? a / b : 0);
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TANG_TMP"), *url = getenv("TANG_URL"), *thp = getenv("TANG_THP");
	const char *tp_module = getenv("TANG_PKCS11_MODULE");
	const char *sh_module = getenv("SOFTHSM2_MODULE");
	char path[4200], text[8192];
	FILE *f;
	result tp, sh;

	if (argc > 1)
		n_objects = atoi(argv[1]);
	if (argc > 2)
		n_searches = atoi(argv[2]);
	if (!tmp || !url || !thp || n_objects < 2 || n_searches < 1) {
		fprintf(stderr, "usage: tests/fixtures/with-tangd tp-bench-find [N] [SEARCHES]\n");
		return 2;
	}
	if (!tp_module)
		tp_module = BENCH_MODULE;
	if (!sh_module)
		sh_module = SOFTHSM_DEFAULT;

	snprintf(path, sizeof path, "%s/bench-find.conf", tmp);
	snprintf(text, sizeof text,
		 "{ \"tokens\": [ { \"label\": \"bench\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" },"
		 " \"store\": \"%s/bench-store\" } ] }\n", url, thp, tmp);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	setenv("TANG_PKCS11_CONF", path, 1);
	snprintf(path, sizeof path, "%s/softhsm2.conf", tmp);
	snprintf(text, sizeof text, "%s/softhsm-tokens", tmp);
	if (mkdir(text, 0700) != 0 && errno != EEXIST) {
		perror(text);
		return 1;
	}
	f = fopen(path, "w");
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", text);
	fclose(f);
	setenv("SOFTHSM2_CONF", path, 1);

	printf("# %d token objects, %d searches; times in microseconds (median)\n", n_objects,
	       n_searches);
	run(tp_module, "tang-pkcs11", "bench", &tp);
	run(sh_module, "SoftHSM2", "bench", &sh);
	printf("%-44s %12s %12s %8s\n", "operation", "tang-pkcs11", "SoftHSM2", "ratio");
	row("C_CreateObject (token data object)", tp.create, sh.create);
	row("search by CKA_LABEL (1 of N)", tp.by_label, sh.by_label);
	row("search by CKA_CLASS (all N)", tp.by_class, sh.by_class);
	row("search after another process added one", tp.after_other, sh.after_other);
	row("new C_Initialize + first search (cold)", tp.first, sh.first);
	return 0;
}
