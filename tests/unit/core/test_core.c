/* Contract tests of the PKCS#11 core: they dlopen the built module
 * ($TANG_PKCS11_MODULE) and drive its entry points with an offline
 * configuration (the advertisement is a signed file from data/, made by
 * data/make-fixtures.sh with the jose CLI).  The server URLs point at a
 * local port that refuses connections (or accepts and never answers), so
 * a derive that reached the network would fail with CKR_DEVICE_ERROR: a
 * CKR_MECHANISM_PARAM_INVALID proves the check happened before any
 * request. */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *f;
static int failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

/* The mechanisms the token offers (module/mech/registry.c). */
#define N_MECHS 30

#define CHECK_RV(call, want) \
	do { \
		CK_RV r_ = (call); \
		if (r_ != (CK_RV)(want)) { \
			fprintf(stderr, "%s:%d: %s = 0x%lx, want %s (0x%lx)\n", __FILE__, __LINE__, \
				#call, (unsigned long)r_, #want, (unsigned long)(want)); \
			failures++; \
		} \
	} while (0)

/* ---- fixtures ------------------------------------------------------ */

static char tmpdir[256];
static char conf_path[512];       /* three tokens, see write_configs */
static char bad_conf_path[512];
static char log_path[512];
static char adv_path[512];
static int refused_port, hang_port;
static int refuse_fd = -1, hang_fd = -1;

static struct {
	char kid[64];
	unsigned char id[32];
	unsigned char x[66], y[66];
} expect;

static void hex_decode(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

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
			snprintf(expect.kid, sizeof(expect.kid), "%.63s", val);
		else if (strcmp(key, "id") == 0)
			hex_decode(val, expect.id, 32);
		else if (strcmp(key, "x") == 0)
			hex_decode(val, expect.x, 66);
		else if (strcmp(key, "y") == 0)
			hex_decode(val, expect.y, 66);
	}
	fclose(fp);
}

/* A loopback port bound but not listening refuses connections; one that
 * listens but is never accepted from takes requests and never answers. */
static int loopback_socket(bool listening, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    (listening && listen(fd, 16) != 0) ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror("loopback socket");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0) {
		perror(path);
		exit(1);
	}
}

static void write_configs(void)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "{ \"tokens\": [\n"
		 "  { \"label\": \"unit\", \"tang\": { \"url\": \"http://127.0.0.1:%d\", \"adv\": \"%s\" }, \"timeout\": 2 },\n"
		 "  { \"label\": \"second\", \"tang\": { \"url\": \"http://127.0.0.1:%d/other\", \"adv\": \"%s\" } },\n"
		 "  { \"label\": \"hang\", \"tang\": { \"url\": \"http://127.0.0.1:%d\", \"adv\": \"%s\" }, \"timeout\": 2 }\n"
		 "] }\n",
		 refused_port, adv_path, refused_port, adv_path, hang_port, adv_path);
	snprintf(conf_path, sizeof(conf_path), "%s/unit.conf", tmpdir);
	write_file(conf_path, text);
	snprintf(bad_conf_path, sizeof(bad_conf_path), "%s/bad.conf", tmpdir);
	write_file(bad_conf_path, "{ \"tokens\": [ { \"label\": 17 } ] }\n");
}

static CK_RV init_reserved(const char *reserved)
{
	CK_C_INITIALIZE_ARGS args;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	args.pReserved = (void *)reserved;
	return f->C_Initialize(&args);
}

static void init_unit(void)
{
	char reserved[700];

	snprintf(reserved, sizeof(reserved), "config=%s", conf_path);
	CHECK_RV(init_reserved(reserved), CKR_OK);
}

static CK_SESSION_HANDLE open_session(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;

	CHECK_RV(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	return h;
}

static CK_ULONG find_all(CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
			 CK_OBJECT_HANDLE *out, CK_ULONG max)
{
	CK_ULONG got = 0;

	CHECK_RV(f->C_FindObjectsInit(s, tmpl, n), CKR_OK);
	CHECK_RV(f->C_FindObjects(s, out, max, &got), CKR_OK);
	CHECK_RV(f->C_FindObjectsFinal(s), CKR_OK);
	return got;
}

static CK_OBJECT_HANDLE find_class(CK_SESSION_HANDLE s, CK_OBJECT_CLASS klass)
{
	CK_ATTRIBUTE t = { CKA_CLASS, &klass, sizeof(klass) };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

	CHECK(find_all(s, &t, 1, &h, 1) == 1);
	return h;
}

static bool padded_eq(const unsigned char *field, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n > size || memcmp(field, s, n) != 0)
		return false;
	for (size_t i = n; i < size; i++)
		if (field[i] != ' ')
			return false;
	return true;
}

/* ---- tests --------------------------------------------------------- */

static CK_RV dummy_create(CK_VOID_PTR_PTR m) { *m = malloc(1); return CKR_OK; }
static CK_RV dummy_destroy(CK_VOID_PTR m) { free(m); return CKR_OK; }
static CK_RV dummy_lock(CK_VOID_PTR m) { return CKR_OK; }

static void test_init_matrix(void)
{
	CK_C_INITIALIZE_ARGS args;
	CK_INFO info;
	char reserved[800];

	CHECK_RV(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(f->C_Initialize(NULL), CKR_OK);
	CHECK_RV(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CHECK_RV(f->C_Finalize((void *)&args), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	CHECK_RV(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

	/* Mutex callbacks: all or none. */
	memset(&args, 0, sizeof(args));
	args.CreateMutex = dummy_create;
	CHECK_RV(f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
	args.DestroyMutex = dummy_destroy;
	args.LockMutex = dummy_lock;
	CHECK_RV(f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
	args.UnlockMutex = dummy_lock;
	CHECK_RV(f->C_Initialize(&args), CKR_OK);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	args.flags = CKF_OS_LOCKING_OK;
	CHECK_RV(f->C_Initialize(&args), CKR_OK);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	memset(&args, 0, sizeof(args));
	args.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS;
	CHECK_RV(f->C_Initialize(&args), CKR_OK);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);

	/* pReserved with extra words (p11-kit appends verbose=yes). */
	snprintf(reserved, sizeof(reserved), "verbose=yes  config=%s\tfoo=bar unknown", conf_path);
	CHECK_RV(init_reserved(reserved), CKR_OK);
	{
		CK_ULONG n = 0;

		CHECK_RV(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
		CHECK(n == 3);
	}
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);

	/* Configuration from the environment. */
	setenv("TANG_PKCS11_CONF", conf_path, 1);
	CHECK_RV(f->C_Initialize(NULL), CKR_OK);
	{
		CK_ULONG n = 0;

		CHECK_RV(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
		CHECK(n == 3);
	}
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	unsetenv("TANG_PKCS11_CONF");
}

static void test_no_config(void)
{
	CK_ULONG n = 99;
	struct stat st;

	if (stat(TP_DEFAULT_CONF, &st) == 0) {
		fprintf(stderr, "skipping no-config check: %s exists\n", TP_DEFAULT_CONF);
		return;
	}
	unsetenv("TANG_PKCS11_CONF");
	CHECK_RV(f->C_Initialize(NULL), CKR_OK);
	CHECK_RV(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	CHECK(n == 0);
	CHECK_RV(f->C_GetTokenInfo(1, &(CK_TOKEN_INFO){ 0 }), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void test_bad_config(void)
{
	char reserved[700];

	snprintf(reserved, sizeof(reserved), "config=%s", bad_conf_path);
	CHECK_RV(init_reserved(reserved), CKR_FUNCTION_FAILED);
	snprintf(reserved, sizeof(reserved), "config=%s/does-not-exist.conf", tmpdir);
	CHECK_RV(init_reserved(reserved), CKR_FUNCTION_FAILED);
	setenv("TANG_PKCS11_CONF", bad_conf_path, 1);
	CHECK_RV(f->C_Initialize(NULL), CKR_FUNCTION_FAILED);
	unsetenv("TANG_PKCS11_CONF");
	/* A failed C_Initialize leaves the module uninitialized. */
	CHECK_RV(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(f->C_Initialize(NULL), CKR_OK);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void expect_serial(const char *label, char out[17])
{
	unsigned char md[32];
	unsigned int len = 0;

	EVP_Digest(label, strlen(label), md, &len, EVP_sha256(), NULL);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02X", md[i]);
}

static void test_info(void)
{
	CK_INFO info;
	CK_SLOT_ID slots[4];
	CK_ULONG n;
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti;
	CK_MECHANISM_TYPE mechs[64];
	CK_MECHANISM_INFO mi;
	char serial[17], url[64];

	init_unit();
	CHECK_RV(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_GetInfo(&info), CKR_OK);
	CHECK(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40);
	CHECK(padded_eq(info.manufacturerID, 32, "tang-pkcs11"));
	CHECK(info.libraryVersion.major == 0 && info.libraryVersion.minor == 1);
	CHECK(info.flags == 0);

	/* Two-call convention. */
	CHECK_RV(f->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	n = 0;
	CHECK_RV(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	CHECK(n == 3);
	n = 1;
	CHECK_RV(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL);
	CHECK(n == 3);
	n = 4;
	CHECK_RV(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	CHECK(n == 3 && slots[0] == 1 && slots[1] == 2 && slots[2] == 3);

	CHECK_RV(f->C_GetSlotInfo(0, &si), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_GetSlotInfo(4, &si), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_GetSlotInfo(1, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_GetSlotInfo(1, &si), CKR_OK);
	CHECK(si.flags & CKF_TOKEN_PRESENT);
	CHECK(!(si.flags & CKF_REMOVABLE_DEVICE));
	snprintf(url, sizeof(url), "Tang http://127.0.0.1:%d", refused_port);
	CHECK(padded_eq(si.slotDescription, 64, url));
	CHECK(padded_eq(si.manufacturerID, 32, "tang-pkcs11"));

	CHECK_RV(f->C_GetTokenInfo(9, &ti), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_GetTokenInfo(1, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_GetTokenInfo(1, &ti), CKR_OK);
	CHECK(padded_eq(ti.label, 32, "unit"));
	CHECK(padded_eq(ti.manufacturerID, 32, "tang-pkcs11"));
	CHECK(padded_eq(ti.model, 16, "Tang"));
	expect_serial("unit", serial);
	CHECK(memcmp(ti.serialNumber, serial, 16) == 0);
	CHECK(ti.flags == (CKF_TOKEN_INITIALIZED | CKF_RNG));
	CHECK(ti.ulMaxSessionCount == CK_EFFECTIVELY_INFINITE);
	CHECK(ti.ulMaxRwSessionCount == CK_EFFECTIVELY_INFINITE);
	CHECK(ti.ulSessionCount == 0 && ti.ulRwSessionCount == 0);
	CHECK(ti.ulTotalPublicMemory == CK_UNAVAILABLE_INFORMATION);
	CHECK(ti.ulFreePrivateMemory == CK_UNAVAILABLE_INFORMATION);
	CHECK_RV(f->C_GetTokenInfo(2, &ti), CKR_OK);
	CHECK(padded_eq(ti.label, 32, "second"));
	expect_serial("second", serial);
	CHECK(memcmp(ti.serialNumber, serial, 16) == 0);

	CHECK_RV(f->C_GetMechanismList(0, NULL, &n), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_GetMechanismList(1, NULL, NULL), CKR_ARGUMENTS_BAD);
	n = 0;
	CHECK_RV(f->C_GetMechanismList(1, NULL, &n), CKR_OK);
	CHECK(n == N_MECHS);
	n = 1;
	CHECK_RV(f->C_GetMechanismList(1, mechs, &n), CKR_BUFFER_TOO_SMALL);
	CHECK(n == N_MECHS);
	n = 64;
	CHECK_RV(f->C_GetMechanismList(1, mechs, &n), CKR_OK);
	/* CKM_TANG_JWE (vendor): tests/unit/core/test_jwe.c checks its info;
	 * the soft-key mechanisms: tests/integration/test_soft.c. */
	CHECK(n == N_MECHS && mechs[0] == CKM_ECDH1_DERIVE && mechs[1] == (CKM_VENDOR_DEFINED | 0x54470001UL));
	CHECK_RV(f->C_GetMechanismInfo(1, CKM_ECDH1_DERIVE, &mi), CKR_OK);
	CHECK(mi.ulMinKeySize == 256 && mi.ulMaxKeySize == 521);
	CHECK(mi.flags == (CKF_HW | CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS));
	CHECK_RV(f->C_GetMechanismInfo(1, CKM_AES_CBC, &mi), CKR_OK);
	CHECK(mi.ulMinKeySize == 16 && mi.ulMaxKeySize == 32);
	CHECK(mi.flags == (CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP));
	CHECK_RV(f->C_GetMechanismInfo(1, CKM_DES3_CBC, &mi), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_GetMechanismInfo(7, CKM_ECDH1_DERIVE, &mi), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_GetMechanismInfo(1, CKM_ECDH1_DERIVE, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void test_sessions(void)
{
	CK_SESSION_HANDLE ro, rw, many[200], h = 0;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;

	init_unit();
	CHECK_RV(f->C_OpenSession(1, 0, NULL, NULL, &h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	CHECK_RV(f->C_OpenSession(1, CKF_RW_SESSION, NULL, NULL, &h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	CHECK_RV(f->C_OpenSession(9, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	CHECK_RV(f->C_OpenSession(1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
	CHECK(ro != CK_INVALID_HANDLE && rw != CK_INVALID_HANDLE && ro != rw);

	CHECK_RV(f->C_GetSessionInfo(ro, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_GetSessionInfo(ro, &si), CKR_OK);
	CHECK(si.slotID == 1 && si.state == CKS_RO_PUBLIC_SESSION &&
	      si.flags == CKF_SERIAL_SESSION && si.ulDeviceError == 0);
	CHECK_RV(f->C_GetSessionInfo(rw, &si), CKR_OK);
	CHECK(si.state == CKS_RW_PUBLIC_SESSION && si.flags == (CKF_SERIAL_SESSION | CKF_RW_SESSION));
	CHECK_RV(f->C_GetTokenInfo(1, &ti), CKR_OK);
	CHECK(ti.ulSessionCount == 2 && ti.ulRwSessionCount == 1);

	for (int i = 0; i < 200; i++)
		CHECK_RV(f->C_OpenSession(1 + i % 2, CKF_SERIAL_SESSION, NULL, NULL, &many[i]), CKR_OK);
	CHECK_RV(f->C_GetTokenInfo(2, &ti), CKR_OK);
	CHECK(ti.ulSessionCount == 100);
	for (int i = 0; i < 200; i += 4)
		CHECK_RV(f->C_CloseSession(many[i]), CKR_OK);
	CHECK_RV(f->C_CloseSession(many[0]), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_GetSessionInfo(many[0], &si), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_GetSessionInfo(many[1], &si), CKR_OK);

	CHECK_RV(f->C_CloseAllSessions(9), CKR_SLOT_ID_INVALID);
	CHECK_RV(f->C_CloseAllSessions(2), CKR_OK);
	CHECK_RV(f->C_GetTokenInfo(2, &ti), CKR_OK);
	CHECK(ti.ulSessionCount == 0);
	CHECK_RV(f->C_GetSessionInfo(many[1], &si), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_GetSessionInfo(ro, &si), CKR_OK);   /* slot 1 untouched */
	CHECK_RV(f->C_CloseAllSessions(1), CKR_OK);
	CHECK_RV(f->C_GetSessionInfo(ro, &si), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_CloseSession(0), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	CHECK_RV(f->C_GetSessionInfo(rw, &si), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void test_find(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h[8];
	CK_ULONG n = 0;
	CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY, priv = CKO_PRIVATE_KEY, sec = CKO_SECRET_KEY;
	CK_KEY_TYPE ec = CKK_EC, rsa = CKK_RSA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char wrong_id[32] = { 0 };
	CK_ATTRIBUTE t[3];

	init_unit();
	s = open_session(1);
	CHECK_RV(f->C_FindObjects(s, h, 8, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_FindObjectsInit(s, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_FindObjectsInit(s + 1000, NULL, 0), CKR_SESSION_HANDLE_INVALID);

	/* Empty template: the key pair of the advertisement's exchange key. */
	CHECK(find_all(s, NULL, 0, h, 8) == 2);
	CHECK_RV(f->C_FindObjectsInit(s, NULL, 0), CKR_OK);
	CHECK_RV(f->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
	CHECK_RV(f->C_FindObjects(s, NULL, 1, &n), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_FindObjects(s, h, 1, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_FindObjects(s, h, 1, &n), CKR_OK);
	CHECK(n == 1);
	CHECK_RV(f->C_FindObjects(s, h + 1, 1, &n), CKR_OK);
	CHECK(n == 1 && h[0] != h[1]);
	CHECK_RV(f->C_FindObjects(s, h + 2, 1, &n), CKR_OK);
	CHECK(n == 0);
	CHECK_RV(f->C_FindObjectsFinal(s), CKR_OK);

	t[0] = (CK_ATTRIBUTE){ CKA_CLASS, &pub, sizeof(pub) };
	CHECK(find_all(s, t, 1, h, 8) == 1);
	t[0] = (CK_ATTRIBUTE){ CKA_CLASS, &priv, sizeof(priv) };
	t[1] = (CK_ATTRIBUTE){ CKA_ID, expect.id, sizeof(expect.id) };
	t[2] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &ec, sizeof(ec) };
	CHECK(find_all(s, t, 3, h, 8) == 1);
	t[2] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &rsa, sizeof(rsa) };
	CHECK(find_all(s, t, 3, h, 8) == 0);
	t[1] = (CK_ATTRIBUTE){ CKA_ID, wrong_id, sizeof(wrong_id) };
	CHECK(find_all(s, t, 2, h, 8) == 0);
	t[0] = (CK_ATTRIBUTE){ CKA_CLASS, &sec, sizeof(sec) };
	CHECK(find_all(s, t, 1, h, 8) == 0);
	t[0] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	CHECK(find_all(s, t, 1, h, 8) == 2);
	t[0] = (CK_ATTRIBUTE){ CKA_TOKEN, &no, sizeof(no) };
	CHECK(find_all(s, t, 1, h, 8) == 0);
	t[0] = (CK_ATTRIBUTE){ CKA_DERIVE, &yes, sizeof(yes) };
	CHECK(find_all(s, t, 1, h, 8) == 1);
	/* A sensitive attribute never matches. */
	t[0] = (CK_ATTRIBUTE){ CKA_VALUE, wrong_id, 1 };
	CHECK(find_all(s, t, 1, h, 8) == 0);

	/* Objects of one token are invisible from another's sessions. */
	{
		CK_SESSION_HANDLE s2 = open_session(2);
		CK_OBJECT_HANDLE h2[8];
		CK_ATTRIBUTE a = { CKA_CLASS, NULL, 0 };

		CHECK(find_all(s2, NULL, 0, h2, 8) == 2);
		CHECK(h2[0] != h[0] && h2[0] != h[1]);
		CHECK(find_all(s, NULL, 0, h, 8) == 2);
		CHECK_RV(f->C_GetAttributeValue(s2, h[0], &a, 1), CKR_OBJECT_HANDLE_INVALID);
	}
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void check_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_BBOOL want)
{
	CK_BBOOL v = 0xAA;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };
	CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1);

	if (rv != CKR_OK || a.ulValueLen != sizeof(v) || v != want) {
		fprintf(stderr, "attribute 0x%lx: rv 0x%lx value %d, want %d\n",
			(unsigned long)type, (unsigned long)rv, v, want);
		failures++;
	}
}

static void check_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_ULONG want)
{
	CK_ULONG v = 0xAA;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };
	CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1);

	if (rv != CKR_OK || a.ulValueLen != sizeof(v) || v != want) {
		fprintf(stderr, "attribute 0x%lx: rv 0x%lx value 0x%lx, want 0x%lx\n",
			(unsigned long)type, (unsigned long)rv, (unsigned long)v, (unsigned long)want);
		failures++;
	}
}

static void check_bytes(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
			const void *want, size_t want_len)
{
	unsigned char buf[512];
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1);

	if (rv != CKR_OK || a.ulValueLen != want_len) {
		fprintf(stderr, "attribute 0x%lx length: rv 0x%lx len %lu, want %zu\n",
			(unsigned long)type, (unsigned long)rv, (unsigned long)a.ulValueLen, want_len);
		failures++;
		return;
	}
	a.pValue = buf;
	a.ulValueLen = sizeof(buf);
	rv = f->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK || a.ulValueLen != want_len || memcmp(buf, want, want_len) != 0) {
		fprintf(stderr, "attribute 0x%lx value differs\n", (unsigned long)type);
		failures++;
	}
}

static const unsigned char p521_oid[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };

static void check_key_common(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_OBJECT_CLASS klass)
{
	unsigned char ec_point[3 + 133];
	unsigned char spki[512], got_pt[200];
	CK_ATTRIBUTE a = { CKA_PUBLIC_KEY_INFO, spki, sizeof(spki) };
	const unsigned char *p = spki;
	EVP_PKEY *pk;
	size_t got_len = 0;
	char label[64];

	check_ulong(s, o, CKA_CLASS, klass);
	check_ulong(s, o, CKA_KEY_TYPE, CKK_EC);
	check_ulong(s, o, CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
	check_bool(s, o, CKA_TOKEN, CK_TRUE);
	check_bool(s, o, CKA_PRIVATE, CK_FALSE);
	check_bool(s, o, CKA_MODIFIABLE, CK_FALSE);
	check_bool(s, o, CKA_DESTROYABLE, CK_FALSE);
	check_bool(s, o, CKA_LOCAL, CK_FALSE);
	check_bytes(s, o, CKA_ID, expect.id, sizeof(expect.id));
	snprintf(label, sizeof(label), "http://127.0.0.1:%d", refused_port);
	check_bytes(s, o, CKA_LABEL, label, strlen(label));
	check_bytes(s, o, CKA_EC_PARAMS, p521_oid, sizeof(p521_oid));
	/* DER OCTET STRING of 04||X||Y (133 bytes: long-form length 0x81 0x85). */
	ec_point[0] = 0x04;
	ec_point[1] = 0x81;
	ec_point[2] = 0x85;
	ec_point[3] = 0x04;
	memcpy(ec_point + 4, expect.x, 66);
	memcpy(ec_point + 70, expect.y, 66);
	check_bytes(s, o, CKA_EC_POINT, ec_point, sizeof(ec_point));

	/* The SPKI, decoded by OpenSSL, is the same point on P-521. */
	CHECK_RV(f->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
	pk = d2i_PUBKEY(NULL, &p, a.ulValueLen);
	CHECK(pk != NULL);
	if (pk) {
		char group[32] = "";

		CHECK(EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
						     sizeof(group), NULL) == 1);
		CHECK(strcmp(group, "secp521r1") == 0);
		CHECK(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, got_pt,
						      sizeof(got_pt), &got_len) == 1);
		CHECK(got_len == 133 && memcmp(got_pt, ec_point + 3, 133) == 0);
		EVP_PKEY_free(pk);
	}
}

static void test_attributes(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;
	unsigned char buf[256], small[4];
	CK_ULONG klass = 0;
	CK_ATTRIBUTE a[4];

	init_unit();
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);

	check_key_common(s, pub, CKO_PUBLIC_KEY);
	check_key_common(s, priv, CKO_PRIVATE_KEY);

	check_bool(s, pub, CKA_ENCRYPT, CK_TRUE);
	check_bool(s, pub, CKA_WRAP, CK_TRUE);
	check_bool(s, pub, CKA_VERIFY, CK_FALSE);
	check_bool(s, pub, CKA_DERIVE, CK_FALSE);
	check_bool(s, pub, CKA_TRUSTED, CK_FALSE);

	check_bool(s, priv, CKA_DERIVE, CK_TRUE);
	check_bool(s, priv, CKA_DECRYPT, CK_TRUE);
	check_bool(s, priv, CKA_UNWRAP, CK_TRUE);
	check_bool(s, priv, CKA_SIGN, CK_FALSE);
	check_bool(s, priv, CKA_SENSITIVE, CK_TRUE);
	check_bool(s, priv, CKA_ALWAYS_SENSITIVE, CK_TRUE);
	check_bool(s, priv, CKA_EXTRACTABLE, CK_FALSE);
	check_bool(s, priv, CKA_NEVER_EXTRACTABLE, CK_TRUE);

	/* Sensitive: the private value never exists here. */
	a[0] = (CK_ATTRIBUTE){ CKA_VALUE, buf, sizeof(buf) };
	CHECK_RV(f->C_GetAttributeValue(s, priv, a, 1), CKR_ATTRIBUTE_SENSITIVE);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	a[0] = (CK_ATTRIBUTE){ CKA_VALUE, NULL, 0 };
	CHECK_RV(f->C_GetAttributeValue(s, priv, a, 1), CKR_ATTRIBUTE_SENSITIVE);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	/* Unknown for the class. */
	a[0] = (CK_ATTRIBUTE){ CKA_MODULUS, buf, sizeof(buf) };
	CHECK_RV(f->C_GetAttributeValue(s, pub, a, 1), CKR_ATTRIBUTE_TYPE_INVALID);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	a[0] = (CK_ATTRIBUTE){ CKA_VALUE, buf, sizeof(buf) };
	CHECK_RV(f->C_GetAttributeValue(s, pub, a, 1), CKR_ATTRIBUTE_TYPE_INVALID);
	a[0] = (CK_ATTRIBUTE){ 0x80001234UL, buf, sizeof(buf) };
	CHECK_RV(f->C_GetAttributeValue(s, pub, a, 1), CKR_ATTRIBUTE_TYPE_INVALID);
	/* Short buffer. */
	a[0] = (CK_ATTRIBUTE){ CKA_EC_POINT, small, sizeof(small) };
	CHECK_RV(f->C_GetAttributeValue(s, pub, a, 1), CKR_BUFFER_TOO_SMALL);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	/* Every entry is processed, and the call fails if one failed. */
	a[0] = (CK_ATTRIBUTE){ CKA_CLASS, &klass, sizeof(klass) };
	a[1] = (CK_ATTRIBUTE){ CKA_VALUE, buf, sizeof(buf) };
	a[2] = (CK_ATTRIBUTE){ CKA_ID, NULL, 0 };
	a[3] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, small, sizeof(small) };
	{
		CK_RV rv = f->C_GetAttributeValue(s, priv, a, 4);

		CHECK(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_BUFFER_TOO_SMALL);
	}
	CHECK(klass == CKO_PRIVATE_KEY && a[0].ulValueLen == sizeof(klass));
	CHECK(a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CHECK(a[2].ulValueLen == 32);
	CHECK(a[3].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	/* Argument checks. */
	CHECK_RV(f->C_GetAttributeValue(s, pub, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_GetAttributeValue(s, 0, a, 1), CKR_OBJECT_HANDLE_INVALID);
	CHECK_RV(f->C_GetAttributeValue(s, s, a, 1), CKR_OBJECT_HANDLE_INVALID);
	CHECK_RV(f->C_GetAttributeValue(s + 100000, pub, a, 1), CKR_SESSION_HANDLE_INVALID);

	/* Tang keys cannot be destroyed. */
	CHECK_RV(f->C_DestroyObject(s, priv), CKR_ACTION_PROHIBITED);
	CHECK_RV(f->C_DestroyObject(s, pub), CKR_ACTION_PROHIBITED);
	CHECK_RV(f->C_DestroyObject(s, 0), CKR_OBJECT_HANDLE_INVALID);
	CHECK_RV(f->C_DestroyObject(0, pub), CKR_SESSION_HANDLE_INVALID);
	CHECK(find_all(s, NULL, 0, (CK_OBJECT_HANDLE[4]){ 0 }, 4) == 2);

	CHECK_RV(f->C_GenerateRandom(s, NULL, 4), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_GenerateRandom(0, buf, 4), CKR_SESSION_HANDLE_INVALID);
	memset(buf, 0, sizeof(buf));
	CHECK_RV(f->C_GenerateRandom(s, buf, 100), CKR_OK);
	{
		int nonzero = 0;

		for (int i = 0; i < 100; i++)
			nonzero += buf[i] != 0;
		CHECK(nonzero > 50);
	}
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void test_not_supported(void)
{
	CK_SESSION_HANDLE s;
	CK_ULONG n = 0;
	CK_OBJECT_HANDLE o = 0;
	CK_SLOT_ID slot = 0;
	/* A mechanism the token does not offer. */
	CK_MECHANISM m = { CKM_DES3_CBC, NULL, 0 };
	CK_BYTE b[16] = { 0 };

	CHECK_RV(f->C_Login(1, CKU_USER, NULL, 0), CKR_CRYPTOKI_NOT_INITIALIZED);
	init_unit();
	s = open_session(1);
#define NS(call) CHECK_RV(call, CKR_FUNCTION_NOT_SUPPORTED)
	NS(f->C_WaitForSlotEvent(0, &slot, NULL));
	NS(f->C_InitToken(1, NULL, 0, b));
	/* Store functions on a token without a store (docs/store.md). */
	CHECK_RV(f->C_InitPIN(s, NULL, 0), CKR_SESSION_READ_ONLY);
	CHECK_RV(f->C_SetPIN(s, NULL, 0, NULL, 0), CKR_SESSION_READ_ONLY);
	NS(f->C_GetOperationState(s, NULL, &n));
	NS(f->C_SetOperationState(s, b, 1, 0, 0));
	CHECK_RV(f->C_Login(s, CKU_USER, NULL, 0), CKR_OK);
	CHECK_RV(f->C_Logout(s), CKR_OK);
	CHECK_RV(f->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
	CHECK_RV(f->C_CreateObject(s, NULL, 0, &o), CKR_TEMPLATE_INCOMPLETE);
	CHECK_RV(f->C_CopyObject(s, 1, NULL, 0, &o), CKR_OBJECT_HANDLE_INVALID);
	CHECK_RV(f->C_GetObjectSize(s, 1, &n), CKR_OBJECT_HANDLE_INVALID);
	CHECK_RV(f->C_SetAttributeValue(s, 1, NULL, 0), CKR_OBJECT_HANDLE_INVALID);
	NS(f->C_SignRecoverInit(s, &m, 1));
	NS(f->C_SignRecover(s, b, 1, b, &n));
	NS(f->C_VerifyRecoverInit(s, &m, 1));
	NS(f->C_VerifyRecover(s, b, 1, b, &n));
	NS(f->C_DigestEncryptUpdate(s, b, 1, b, &n));
	NS(f->C_DecryptDigestUpdate(s, b, 1, b, &n));
	NS(f->C_SignEncryptUpdate(s, b, 1, b, &n));
	NS(f->C_DecryptVerifyUpdate(s, b, 1, b, &n));
	CHECK_RV(f->C_GenerateKey(s, &m, NULL, 0, &o), CKR_MECHANISM_INVALID);
	NS(f->C_GenerateKeyPair(s, &m, NULL, 0, NULL, 0, &o, &o));
#undef NS
	/* The legacy parallel functions (PKCS#11 2.40 §5.17). */
	CHECK_RV(f->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
	CHECK_RV(f->C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);
	/* Mechanisms the token does not offer are invalid, and steps without
	 * an Init are not initialised (the soft-key mechanisms themselves:
	 * tests/unit/mech and tests/integration/test_soft.c). */
	CHECK_RV(f->C_DigestInit(s, &m), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_Digest(s, b, 1, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DigestUpdate(s, b, 1), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DigestKey(s, 1), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DigestFinal(s, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_SignInit(s, &m, 1), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_Sign(s, b, 1, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_SignUpdate(s, b, 1), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_SignFinal(s, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_VerifyInit(s, &m, 1), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_Verify(s, b, 1, b, 1), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_VerifyUpdate(s, b, 1), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_VerifyFinal(s, b, 1), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_SeedRandom(s, b, 1), CKR_OK);
	CHECK_RV(f->C_SeedRandom(s, NULL, 1), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_EncryptInit(s, &m, 1), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_Encrypt(s, b, 1, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_EncryptUpdate(s, b, 1, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_EncryptFinal(s, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DecryptInit(s, &m, 1), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_Decrypt(s, b, 1, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DecryptUpdate(s, b, 1, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_DecryptFinal(s, b, &n), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f->C_WrapKey(s, &m, 1, 2, b, &n), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_UnwrapKey(s, &m, 1, b, 1, NULL, 0, &o), CKR_MECHANISM_INVALID);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

static void test_exports(void *dl)
{
	static const char *const names[] = {
		"C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
		"C_GetSlotInfo", "C_GetTokenInfo", "C_WaitForSlotEvent", "C_GetMechanismList",
		"C_GetMechanismInfo", "C_InitToken", "C_InitPIN", "C_SetPIN", "C_OpenSession",
		"C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo", "C_GetOperationState",
		"C_SetOperationState", "C_Login", "C_Logout", "C_CreateObject", "C_CopyObject",
		"C_DestroyObject", "C_GetObjectSize", "C_GetAttributeValue", "C_SetAttributeValue",
		"C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal", "C_EncryptInit",
		"C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal", "C_DecryptInit", "C_Decrypt",
		"C_DecryptUpdate", "C_DecryptFinal", "C_DigestInit", "C_Digest", "C_DigestUpdate",
		"C_DigestKey", "C_DigestFinal", "C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal",
		"C_SignRecoverInit", "C_SignRecover", "C_VerifyInit", "C_Verify", "C_VerifyUpdate",
		"C_VerifyFinal", "C_VerifyRecoverInit", "C_VerifyRecover", "C_DigestEncryptUpdate",
		"C_DecryptDigestUpdate", "C_SignEncryptUpdate", "C_DecryptVerifyUpdate",
		"C_GenerateKey", "C_GenerateKeyPair", "C_WrapKey", "C_UnwrapKey", "C_DeriveKey",
		"C_SeedRandom", "C_GenerateRandom", "C_GetFunctionStatus", "C_CancelFunction",
	};

	CHECK(f->version.major == 2 && f->version.minor == 40);
	CHECK(sizeof(names) / sizeof(names[0]) == 68);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!dlsym(dl, names[i])) {
			fprintf(stderr, "symbol %s not exported\n", names[i]);
			failures++;
		}
	/* Internal symbols stay hidden. */
	CHECK(dlsym(dl, "lib_initialize") == NULL);
	CHECK(dlsym(dl, "config_load") == NULL);
	CHECK(f->C_GetFunctionList != NULL);
	CHECK(f->C_GetFunctionList(NULL) == CKR_ARGUMENTS_BAD);
}

static void test_handles(void)
{
	CK_SESSION_HANDLE s1, s2;
	CK_OBJECT_HANDLE o1[4], o2[4];
	CK_SESSION_INFO si;
	CK_ATTRIBUTE a = { CKA_CLASS, NULL, 0 };

	init_unit();
	s1 = open_session(1);
	CHECK(find_all(s1, NULL, 0, o1, 4) == 2);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	init_unit();
	s2 = open_session(1);
	CHECK(s2 != s1);
	CHECK(find_all(s2, NULL, 0, o2, 4) == 2);
	CHECK(o2[0] > o1[1] && o2[1] > o1[1] && o2[0] > s1);
	/* Old handles are dead, not aliases of new ones. */
	CHECK_RV(f->C_GetSessionInfo(s1, &si), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_GetAttributeValue(s2, o1[0], &a, 1), CKR_OBJECT_HANDLE_INVALID);
	/* Objects keep their handles across searches. */
	{
		CK_OBJECT_HANDLE again[4];

		CHECK(find_all(s2, NULL, 0, again, 4) == 2);
		CHECK(again[0] == o2[0] && again[1] == o2[1]);
	}
	/* A closed session's handle is not reused by the next one. */
	CHECK_RV(f->C_CloseSession(s2), CKR_OK);
	CHECK(open_session(1) > s2);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

/* ---- derive parameter validation (no network) ----------------------- */

static size_t gen_point(const char *curve, unsigned char *out, size_t max)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
	size_t len = 0;

	CHECK(pk != NULL);
	CHECK(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, max, &len) == 1);
	EVP_PKEY_free(pk);
	return len;
}

static CK_RV derive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_ECDH1_DERIVE_PARAMS *p,
		    CK_ULONG plen, CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, p, plen };
	CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;

	return f->C_DeriveKey(s, &m, key, tmpl, n, &out);
}

static bool log_contains(const char *needle)
{
	char buf[65536];
	FILE *fp = fopen(log_path, "r");
	size_t n;

	if (!fp)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

static void test_derive_params(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;
	unsigned char good[200], p256[100], bad[200], der[200];
	size_t good_len, p256_len;
	CK_ECDH1_DERIVE_PARAMS p;
	CK_SESSION_INFO si;
	CK_OBJECT_CLASS sec = CKO_SECRET_KEY, pubc = CKO_PUBLIC_KEY;
	CK_KEY_TYPE aes = CKK_AES, gen = CKK_GENERIC_SECRET, des = CKK_DES3;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG len32 = 32, len20 = 20, len67 = 67;
	unsigned char shared[8] = "shared";
	CK_MECHANISM m;
	CK_OBJECT_HANDLE out;

	init_unit();
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);
	good_len = gen_point("P-521", good, sizeof(good));
	p256_len = gen_point("P-256", p256, sizeof(p256));
	CHECK(good_len == 133 && p256_len == 65);

#define PARAMS(k, sd, sdl, pt, ptl) \
	(p = (CK_ECDH1_DERIVE_PARAMS){ (k), (sdl), (sd), (ptl), (pt) }, &p)
#define BAD_PARAM(k, sd, sdl, pt, ptl) \
	CHECK_RV(derive(s, priv, PARAMS(k, sd, sdl, pt, ptl), sizeof(p), NULL, 0), CKR_MECHANISM_PARAM_INVALID)

	/* Off the curve: y changed. */
	memcpy(bad, good, good_len);
	bad[good_len - 1] ^= 1;
	BAD_PARAM(CKD_NULL, NULL, 0, bad, good_len);
	CHECK(log_contains("not on the key's curve"));
	CHECK(log_contains(expect.kid));
	/* A P-256 point for a P-521 key. */
	BAD_PARAM(CKD_NULL, NULL, 0, p256, p256_len);
	/* Malformed: truncated, compressed, garbage, empty. */
	BAD_PARAM(CKD_NULL, NULL, 0, good, good_len - 1);
	bad[0] = 0x02;
	BAD_PARAM(CKD_NULL, NULL, 0, bad, 67);
	BAD_PARAM(CKD_NULL, NULL, 0, (unsigned char *)"hello", 5);
	BAD_PARAM(CKD_NULL, NULL, 0, good, 0);
	BAD_PARAM(CKD_NULL, NULL, 0, NULL, good_len);
	/* The point at infinity, in its one-byte encoding and as zeros. */
	BAD_PARAM(CKD_NULL, NULL, 0, (unsigned char[]){ 0x00 }, 1);
	memset(bad, 0, sizeof(bad));
	bad[0] = 0x04;
	BAD_PARAM(CKD_NULL, NULL, 0, bad, good_len);
	/* A bad point inside a DER OCTET STRING. */
	der[0] = 0x04;
	der[1] = 0x81;
	der[2] = 0x85;
	memcpy(der + 3, good, good_len);
	der[3 + good_len - 1] ^= 1;
	BAD_PARAM(CKD_NULL, NULL, 0, der, good_len + 3);
	der[3 + good_len - 1] ^= 1;
	/* KDF parameters. */
	BAD_PARAM(CKD_NULL, shared, sizeof(shared), good, good_len);
	BAD_PARAM(CKD_SHA1_KDF_ASN1, NULL, 0, good, good_len);
	BAD_PARAM(0x7777, NULL, 0, good, good_len);
	BAD_PARAM(CKD_SHA256_KDF, NULL, 4, good, good_len);
	/* Wrong ulParameterLen, no parameter. */
	CHECK_RV(derive(s, priv, PARAMS(CKD_NULL, NULL, 0, good, good_len), sizeof(p) - 1, NULL, 0),
		 CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(derive(s, priv, PARAMS(CKD_NULL, NULL, 0, good, good_len), sizeof(p) + 8, NULL, 0),
		 CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(derive(s, priv, NULL, 0, NULL, 0), CKR_MECHANISM_PARAM_INVALID);
	CHECK_RV(f->C_GetSessionInfo(s, &si), CKR_OK);
	CHECK(si.ulDeviceError == 0);

	/* Wrong key, mechanism, handles, arguments. */
	CHECK_RV(derive(s, pub, PARAMS(CKD_NULL, NULL, 0, good, good_len), sizeof(p), NULL, 0),
		 CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(derive(s, 0, PARAMS(CKD_NULL, NULL, 0, good, good_len), sizeof(p), NULL, 0),
		 CKR_KEY_HANDLE_INVALID);
	m = (CK_MECHANISM){ CKM_DH_PKCS_DERIVE, &p, sizeof(p) };
	CHECK_RV(f->C_DeriveKey(s, &m, priv, NULL, 0, &out), CKR_MECHANISM_INVALID);
	m = (CK_MECHANISM){ CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CHECK_RV(f->C_DeriveKey(s, NULL, priv, NULL, 0, &out), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_DeriveKey(s, &m, priv, NULL, 0, NULL), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_DeriveKey(s, &m, priv, NULL, 2, &out), CKR_ARGUMENTS_BAD);
	CHECK_RV(f->C_DeriveKey(0, &m, priv, NULL, 0, &out), CKR_SESSION_HANDLE_INVALID);

	/* Template decisions, all before the network. */
	(void)PARAMS(CKD_NULL, NULL, 0, good, good_len);
	{
		struct {
			CK_ATTRIBUTE a[3];
			CK_ULONG n;
			CK_RV want;
		} cases[] = {
			{ { { CKA_TOKEN, &yes, 1 } }, 1, CKR_TEMPLATE_INCONSISTENT },
			{ { { CKA_CLASS, &pubc, sizeof(pubc) } }, 1, CKR_TEMPLATE_INCONSISTENT },
			{ { { CKA_KEY_TYPE, &des, sizeof(des) } }, 1, CKR_TEMPLATE_INCONSISTENT },
			{ { { CKA_KEY_TYPE, &aes, sizeof(aes) } }, 1, CKR_TEMPLATE_INCOMPLETE },
			{ { { CKA_KEY_TYPE, &aes, sizeof(aes) }, { CKA_VALUE_LEN, &len20, sizeof(len20) } },
			  2, CKR_ATTRIBUTE_VALUE_INVALID },
			{ { { CKA_VALUE_LEN, &len67, sizeof(len67) } }, 1, CKR_ATTRIBUTE_VALUE_INVALID },
			{ { { CKA_VALUE_LEN, &len32, 4 } }, 1, CKR_ATTRIBUTE_VALUE_INVALID },
			{ { { CKA_SENSITIVE, &no, 4 } }, 1, CKR_ATTRIBUTE_VALUE_INVALID },
			{ { { CKA_MODULUS, good, 4 } }, 1, CKR_ATTRIBUTE_TYPE_INVALID },
			{ { { 0x80001234UL, good, 4 } }, 1, CKR_ATTRIBUTE_TYPE_INVALID },
			{ { { CKA_VALUE, good, 32 } }, 1, CKR_ATTRIBUTE_READ_ONLY },
			{ { { CKA_LOCAL, &yes, 1 } }, 1, CKR_ATTRIBUTE_READ_ONLY },
			{ { { CKA_ALWAYS_SENSITIVE, &yes, 1 } }, 1, CKR_ATTRIBUTE_READ_ONLY },
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			CK_RV rv = derive(s, priv, &p, sizeof(p), cases[i].a, cases[i].n);

			if (rv != cases[i].want) {
				fprintf(stderr, "template case %zu: rv 0x%lx, want 0x%lx\n", i,
					(unsigned long)rv, (unsigned long)cases[i].want);
				failures++;
			}
		}
	}

	/* Valid parameters reach the (refusing) server: CKR_DEVICE_ERROR and
	 * the session remembers why.  Raw, DER-wrapped, with a KDF, with the
	 * templates systemd, pkcs11-tool and pkcs11-provider send. */
	{
		CK_ATTRIBUTE systemd[] = {
			{ CKA_TOKEN, &no, 1 }, { CKA_CLASS, &sec, sizeof(sec) },
			{ CKA_KEY_TYPE, &gen, sizeof(gen) }, { CKA_VALUE_LEN, &(CK_ULONG){ 66 }, sizeof(CK_ULONG) },
			{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
		};
		CK_ATTRIBUTE tool[] = {
			{ CKA_TOKEN, &no, 1 }, { CKA_CLASS, &sec, sizeof(sec) },
			{ CKA_KEY_TYPE, &gen, sizeof(gen) }, { CKA_SENSITIVE, &no, 1 },
			{ CKA_EXTRACTABLE, &yes, 1 }, { CKA_ENCRYPT, &yes, 1 }, { CKA_DECRYPT, &yes, 1 },
			{ CKA_WRAP, &yes, 1 }, { CKA_UNWRAP, &yes, 1 },
		};
		CK_ATTRIBUTE provider[] = {
			{ CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &gen, sizeof(gen) },
			{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
			{ CKA_VALUE_LEN, &len32, sizeof(len32) },
		};
		CK_ATTRIBUTE aes32[] = {
			{ CKA_KEY_TYPE, &aes, sizeof(aes) }, { CKA_VALUE_LEN, &len32, sizeof(len32) },
			{ CKA_LABEL, "derived", 7 }, { CKA_ID, "\x01\x02", 2 },
		};

		CHECK_RV(derive(s, priv, PARAMS(CKD_NULL, NULL, 0, good, good_len), sizeof(p),
				systemd, 6), CKR_DEVICE_ERROR);
		CHECK_RV(f->C_GetSessionInfo(s, &si), CKR_OK);
		CHECK(si.ulDeviceError == 5);   /* TANG_PKCS11_DEVERR_UNREACHABLE */
		CHECK_RV(derive(s, priv, PARAMS(CKD_NULL, NULL, 0, der, good_len + 3), sizeof(p),
				tool, 9), CKR_DEVICE_ERROR);
		CHECK_RV(derive(s, priv, PARAMS(CKD_SHA256_KDF, shared, sizeof(shared), good, good_len),
				sizeof(p), provider, 5), CKR_DEVICE_ERROR);
		CHECK_RV(derive(s, priv, PARAMS(CKD_SHA512_KDF, NULL, 0, good, good_len),
				sizeof(p), aes32, 4), CKR_DEVICE_ERROR);
		CHECK_RV(derive(s, priv, PARAMS(CKD_NULL, NULL, 0, good, good_len), sizeof(p),
				aes32, 2), CKR_DEVICE_ERROR);
	}
	/* A failed derive leaves no object behind. */
	CHECK(find_all(s, NULL, 0, (CK_OBJECT_HANDLE[4]){ 0 }, 4) == 2);
#undef PARAMS
#undef BAD_PARAM
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

/* ---- fork ---------------------------------------------------------- */

static void test_fork(void)
{
	pid_t pid;
	int status = 0;

	init_unit();
	{
		CK_SESSION_HANDLE s = open_session(1);

		CHECK(find_all(s, NULL, 0, (CK_OBJECT_HANDLE[4]){ 0 }, 4) == 2);
	}
	pid = fork();
	if (pid == 0) {
		CK_INFO info;
		CK_ULONG n = 0;
		int bad = 0;
		CK_SESSION_HANDLE s = 0;

		bad += f->C_GetInfo(&info) != CKR_CRYPTOKI_NOT_INITIALIZED;
		bad += f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED;
		bad += f->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED;
		init_unit();
		bad += failures;
		bad += f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n != 3;
		bad += f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK;
		bad += find_all(s, NULL, 0, (CK_OBJECT_HANDLE[4]){ 0 }, 4) != 2;
		bad += f->C_Finalize(NULL) != CKR_OK;
		_exit(bad ? 1 : 0);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The parent is untouched. */
	{
		CK_ULONG n = 0;

		CHECK_RV(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
		CHECK(n == 3);
	}
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
}

/* ---- threads and C_Finalize ---------------------------------------- */

static atomic_int stop_threads;
static int unexpected;

static bool allowed(CK_RV rv)
{
	return rv == CKR_OK || rv == CKR_CRYPTOKI_NOT_INITIALIZED ||
	       rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_OPERATION_NOT_INITIALIZED ||
	       rv == CKR_DEVICE_ERROR;
}

static void *worker(void *arg)
{
	unsigned char point[200];
	size_t point_len = gen_point("P-521", point, sizeof(point));

	while (!atomic_load(&stop_threads)) {
		CK_SESSION_HANDLE s = 0;
		CK_OBJECT_HANDLE h[4];
		CK_ULONG n = 0;
		CK_TOKEN_INFO ti;
		CK_RV rv;
		unsigned char buf[200];
		CK_ATTRIBUTE a = { CKA_EC_POINT, buf, sizeof(buf) };
		CK_ECDH1_DERIVE_PARAMS p = { CKD_NULL, 0, NULL, point_len, point };
		CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };

		rv = f->C_GetTokenInfo(1, &ti);
		if (!allowed(rv) && rv != CKR_SLOT_ID_INVALID)
			__atomic_add_fetch(&unexpected, 1, __ATOMIC_RELAXED);
		rv = f->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s);
		if (rv != CKR_OK) {
			if (!allowed(rv))
				__atomic_add_fetch(&unexpected, 1, __ATOMIC_RELAXED);
			continue;
		}
		rv = f->C_FindObjectsInit(s, NULL, 0);
		if (rv == CKR_OK)
			rv = f->C_FindObjects(s, h, 4, &n);
		if (rv == CKR_OK)
			rv = f->C_FindObjectsFinal(s);
		for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
			rv = f->C_GetAttributeValue(s, h[i], &a, 1);
			if (rv == CKR_OK && (intptr_t)arg % 2)
				rv = f->C_DeriveKey(s, &m, h[i], NULL, 0, &(CK_OBJECT_HANDLE){ 0 });
			if (rv == CKR_KEY_TYPE_INCONSISTENT)
				rv = CKR_OK;  /* derive on the public key */
		}
		if (!allowed(rv))
			__atomic_add_fetch(&unexpected, 1, __ATOMIC_RELAXED);
		rv = f->C_CloseSession(s);
		if (!allowed(rv))
			__atomic_add_fetch(&unexpected, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *hanging_derive(void *arg)
{
	CK_SESSION_HANDLE s = *(CK_SESSION_HANDLE *)arg;
	unsigned char point[200];
	size_t point_len = gen_point("P-521", point, sizeof(point));
	CK_ECDH1_DERIVE_PARAMS p = { CKD_NULL, 0, NULL, point_len, point };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CK_OBJECT_CLASS priv = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t = { CKA_CLASS, &priv, sizeof(priv) };
	CK_OBJECT_HANDLE key = 0, out = 0;
	CK_ULONG n = 0;
	static CK_RV rv;

	f->C_FindObjectsInit(s, &t, 1);
	f->C_FindObjects(s, &key, 1, &n);
	f->C_FindObjectsFinal(s);
	rv = f->C_DeriveKey(s, &m, key, NULL, 0, &out);
	return &rv;
}

static void test_threads(void)
{
	pthread_t th[6];
	CK_SESSION_HANDLE hs;
	CK_TOKEN_INFO ti;
	double t0;
	void *res = NULL;

	/* Finalize and re-initialize while other threads work. */
	init_unit();
	atomic_store(&stop_threads, 0);
	for (intptr_t i = 0; i < 6; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	for (int i = 0; i < 30; i++) {
		usleep(10000);
		CHECK_RV(f->C_Finalize(NULL), CKR_OK);
		usleep(2000);
		init_unit();
	}
	atomic_store(&stop_threads, 1);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	CHECK(unexpected == 0);

	/* A derive that hangs on the server holds no lock: another thread's
	 * C_GetTokenInfo answers at once, and C_Finalize does not wait for
	 * it or pull the state from under it. */
	hs = open_session(3);
	pthread_create(&th[0], NULL, hanging_derive, &hs);
	usleep(300000);
	t0 = now();
	CHECK_RV(f->C_GetTokenInfo(3, &ti), CKR_OK);
	CHECK_RV(f->C_OpenSession(3, CKF_SERIAL_SESSION, NULL, NULL, &(CK_SESSION_HANDLE){ 0 }), CKR_OK);
	CHECK(now() - t0 < 1.0);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	CHECK(now() - t0 < 1.0);
	pthread_join(th[0], &res);
	CHECK(res && *(CK_RV *)res == CKR_SESSION_CLOSED);
	/* Bounded by the token's timeout (2 s) plus a margin. */
	CHECK(now() - t0 < 2.0 + 5.0);
}


/* ---- live derive against a real tangd (run under with-tangd) ---------- */

static CK_OBJECT_HANDLE derive_ok(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_ULONG kdf,
				  unsigned char *sd, CK_ULONG sd_len, unsigned char *pt,
				  CK_ULONG pt_len, CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	CK_ECDH1_DERIVE_PARAMS p = { kdf, sd_len, sd, pt_len, pt };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;

	CHECK_RV(f->C_DeriveKey(s, &m, key, tmpl, n, &out), CKR_OK);
	return out;
}

static size_t read_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, unsigned char *buf, size_t max)
{
	CK_ATTRIBUTE a = { CKA_VALUE, buf, max };

	CHECK_RV(f->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
	return a.ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : a.ulValueLen;
}

static void x963(const char *md, const unsigned char *z, size_t z_len, const unsigned char *sd,
		 size_t sd_len, unsigned char *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "X963KDF", NULL);
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, z_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)sd, sd_len),
		OSSL_PARAM_construct_end(),
	};

	CHECK(EVP_KDF_derive(ctx, out, out_len, params) == 1);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

static int test_live(void)
{
	CK_SESSION_HANDLE s, s2;
	CK_OBJECT_HANDLE pub, priv, o;
	unsigned char spki[512], pt[200], der[200], z[80], got[200], want[200];
	CK_ATTRIBUTE a = { CKA_PUBLIC_KEY_INFO, spki, sizeof(spki) };
	const unsigned char *pp = spki;
	EVP_PKEY *srv, *peer;
	EVP_PKEY_CTX *dctx;
	size_t pt_len = 0, z_len = sizeof(z), n;
	CK_OBJECT_CLASS sec = CKO_SECRET_KEY;
	CK_KEY_TYPE gen = CKK_GENERIC_SECRET, aes = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG len32 = 32, len100 = 100;
	unsigned char shared[] = "tang-pkcs11 shared info";
	CK_ATTRIBUTE open_tmpl[] = {
		{ CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &gen, sizeof(gen) },
		{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 }, { CKA_TOKEN, &no, 1 },
	};
	static const struct { CK_ULONG kdf; const char *md; } kdfs[] = {
		{ CKD_SHA1_KDF, "SHA1" }, { CKD_SHA224_KDF, "SHA224" }, { CKD_SHA256_KDF, "SHA256" },
		{ CKD_SHA384_KDF, "SHA384" }, { CKD_SHA512_KDF, "SHA512" },
	};

	CHECK_RV(f->C_Initialize(NULL), CKR_OK);  /* config from $TANG_PKCS11_CONF */
	s = open_session(1);
	pub = find_class(s, CKO_PUBLIC_KEY);
	priv = find_class(s, CKO_PRIVATE_KEY);
	CHECK_RV(f->C_GetAttributeValue(s, pub, &a, 1), CKR_OK);
	srv = d2i_PUBKEY(NULL, &pp, a.ulValueLen);
	CHECK(srv != NULL);

	/* Expected z = x(c·S), computed locally with a fresh peer key c. */
	peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	CHECK(EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt,
					      sizeof(pt), &pt_len) == 1);
	dctx = EVP_PKEY_CTX_new(peer, NULL);
	CHECK(EVP_PKEY_derive_init(dctx) == 1 && EVP_PKEY_derive_set_peer(dctx, srv) == 1 &&
	      EVP_PKEY_derive(dctx, z, &z_len) == 1);
	CHECK(z_len == 66);
	EVP_PKEY_CTX_free(dctx);

	/* CKD_NULL, raw and DER peer point, default length = field size. */
	o = derive_ok(s, priv, CKD_NULL, NULL, 0, pt, pt_len, open_tmpl, 5);
	n = read_value(s, o, got, sizeof(got));
	CHECK(n == 66 && memcmp(got, z, 66) == 0);
	check_ulong(s, o, CKA_VALUE_LEN, 66);
	check_ulong(s, o, CKA_CLASS, CKO_SECRET_KEY);
	check_ulong(s, o, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
	check_bool(s, o, CKA_TOKEN, CK_FALSE);
	check_bool(s, o, CKA_LOCAL, CK_FALSE);
	check_bool(s, o, CKA_ALWAYS_SENSITIVE, CK_FALSE);
	check_bool(s, o, CKA_NEVER_EXTRACTABLE, CK_FALSE);
	der[0] = 0x04;
	der[1] = 0x81;
	der[2] = 0x85;
	memcpy(der + 3, pt, pt_len);
	o = derive_ok(s, priv, CKD_NULL, NULL, 0, der, pt_len + 3, open_tmpl, 5);
	CHECK(read_value(s, o, got, sizeof(got)) == 66 && memcmp(got, z, 66) == 0);

	/* Truncation keeps the trailing bytes (SoftHSMv2). */
	{
		CK_ATTRIBUTE t[] = {
			{ CKA_KEY_TYPE, &aes, sizeof(aes) }, { CKA_VALUE_LEN, &len32, sizeof(len32) },
			{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
		};

		o = derive_ok(s, priv, CKD_NULL, NULL, 0, pt, pt_len, t, 4);
		CHECK(read_value(s, o, got, sizeof(got)) == 32 && memcmp(got, z + 34, 32) == 0);
		check_ulong(s, o, CKA_KEY_TYPE, CKK_AES);
	}

	/* Every X9.63 KDF, with and without shared data, lengths 32 and 100. */
	for (size_t i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++) {
		CK_ATTRIBUTE t[] = {
			{ CKA_VALUE_LEN, &len100, sizeof(len100) },
			{ CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
		};

		o = derive_ok(s, priv, kdfs[i].kdf, shared, sizeof(shared) - 1, pt, pt_len, t, 3);
		x963(kdfs[i].md, z, 66, shared, sizeof(shared) - 1, want, 100);
		CHECK(read_value(s, o, got, sizeof(got)) == 100 && memcmp(got, want, 100) == 0);
		t[0].pValue = &len32;
		o = derive_ok(s, priv, kdfs[i].kdf, NULL, 0, der, pt_len + 3, t, 3);
		x963(kdfs[i].md, z, 66, NULL, 0, want, 32);
		CHECK(read_value(s, o, got, sizeof(got)) == 32 && memcmp(got, want, 32) == 0);
	}

	/* Defaults: sensitive, so the value stays inside. */
	o = derive_ok(s, priv, CKD_NULL, NULL, 0, pt, pt_len, NULL, 0);
	{
		CK_ATTRIBUTE v = { CKA_VALUE, got, sizeof(got) };

		CHECK_RV(f->C_GetAttributeValue(s, o, &v, 1), CKR_ATTRIBUTE_SENSITIVE);
		CHECK(v.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	}
	check_bool(s, o, CKA_SENSITIVE, CK_TRUE);
	check_ulong(s, o, CKA_VALUE_LEN, 66);

	/* Session objects: visible from other sessions, found by class,
	 * destroyable, and gone with their session. */
	s2 = open_session(1);
	{
		CK_ATTRIBUTE t = { CKA_CLASS, &sec, sizeof(sec) };
		CK_OBJECT_HANDLE h[32];
		CK_ATTRIBUTE cls = { CKA_CLASS, NULL, 0 };

		n = find_all(s2, &t, 1, h, 32);
		CHECK(n == 14);
		CHECK_RV(f->C_GetAttributeValue(s2, o, &cls, 1), CKR_OK);
		CHECK_RV(f->C_DestroyObject(s2, o), CKR_OK);
		CHECK_RV(f->C_GetAttributeValue(s2, o, &cls, 1), CKR_OBJECT_HANDLE_INVALID);
		CHECK_RV(f->C_CloseSession(s), CKR_OK);
		CHECK(find_all(s2, &t, 1, h, 32) == 0);
		CHECK(find_all(s2, NULL, 0, h, 32) == 2);
	}
	EVP_PKEY_free(peer);
	EVP_PKEY_free(srv);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	return 0;
}

int main(int argc, char **argv)
{
	const char *module = getenv("TANG_PKCS11_MODULE");
	const char *src = getenv("TP_SOURCE_ROOT");
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	char data_dir[400];
	void *dl;

	if (!module || !src) {
		fprintf(stderr, "TANG_PKCS11_MODULE and TP_SOURCE_ROOT must be set\n");
		return 1;
	}
	dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "dlopen %s: %s\n", module, dlerror());
		return 1;
	}
	get_list = (CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList");
	if (!get_list || get_list(&f) != CKR_OK) {
		fprintf(stderr, "C_GetFunctionList failed\n");
		return 1;
	}

	/* Under with-tangd: the live derive checks, with its configuration. */
	if (argc > 1 && strcmp(argv[1], "--live") == 0) {
		test_live();
		fprintf(stderr, "%d failure(s)\n", failures);
		return failures ? 1 : 0;
	}

	snprintf(data_dir, sizeof(data_dir), "%s/tests/unit/core/data", src);
	snprintf(adv_path, sizeof(adv_path), "%s/adv.jws", data_dir);
	read_expected(data_dir);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tp-core.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(log_path, sizeof(log_path), "%s/module.log", tmpdir);
	setenv("TANG_PKCS11_LOG", log_path, 1);
	unsetenv("TANG_PKCS11_CONF");
	refuse_fd = loopback_socket(false, &refused_port);
	hang_fd = loopback_socket(true, &hang_port);
	write_configs();

#define RUN(t) do { fprintf(stderr, "-- %s\n", #t); t; } while (0)
	RUN(test_exports(dl));
	RUN(test_init_matrix());
	RUN(test_no_config());
	RUN(test_bad_config());
	RUN(test_info());
	RUN(test_sessions());
	RUN(test_find());
	RUN(test_attributes());
	RUN(test_not_supported());
	RUN(test_handles());
	RUN(test_derive_params());
	RUN(test_fork());
	RUN(test_threads());

	close(refuse_fd);
	close(hang_fd);
	if (failures == 0) {
		unlink(conf_path);
		unlink(bad_conf_path);
		unlink(log_path);
		rmdir(tmpdir);
	} else {
		fprintf(stderr, "module log kept in %s\n", log_path);
	}
	fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
