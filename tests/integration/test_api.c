/* tp-api: the PKCS#11 2.40 contract of the module, end to end.
 *
 * Exports (every C_* by name, as Barbican looks them up), initialization
 * arguments, slot/token/mechanism info, sessions, the Tang key objects and
 * their attributes against the server's key file, C_GetAttributeValue
 * semantics, handles never reused, threads, fork.
 * Runs under tests/fixtures/with-tangd. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

#define FUNCTIONS(X)                                                       \
	X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList)        \
	X(C_GetSlotList) X(C_GetSlotInfo) X(C_GetTokenInfo)                    \
	X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken)             \
	X(C_InitPIN) X(C_SetPIN) X(C_OpenSession) X(C_CloseSession)            \
	X(C_CloseAllSessions) X(C_GetSessionInfo) X(C_GetOperationState)       \
	X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject)        \
	X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize)                  \
	X(C_GetAttributeValue) X(C_SetAttributeValue) X(C_FindObjectsInit)     \
	X(C_FindObjects) X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt)   \
	X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt)     \
	X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest)       \
	X(C_DigestUpdate) X(C_DigestKey) X(C_DigestFinal) X(C_SignInit)        \
	X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)          \
	X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate)         \
	X(C_VerifyFinal) X(C_VerifyRecoverInit) X(C_VerifyRecover)             \
	X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate)                      \
	X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey)       \
	X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey)        \
	X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus)             \
	X(C_CancelFunction) X(C_WaitForSlotEvent)

static void test_exports(void)
{
	tp_case_begin("every standard 2.40 C_* symbol is exported and equals the function list entry");
	int n = 0;
#define X(name)                                                              \
	do {                                                                 \
		void *sym = dlsym(tp_dl, #name);                             \
		n++;                                                         \
		CHECKF(sym != NULL, "%s is not exported", #name);           \
		CHECKF(sym == NULL || sym == (void *)P->name,                \
		       "dlsym(%s) differs from the function list entry", #name); \
	} while (0);
	FUNCTIONS(X)
#undef X
	CHECK(n == 68);
	CHECKF(P->version.major == 2 && P->version.minor == 40,
	       "function list version %d.%d, expected 2.40", P->version.major,
	       P->version.minor);
	tp_case_end();
}

/* Mutex callbacks for the C_Initialize matrix. */
static CK_RV mx_create(void **m)
{
	pthread_mutex_t *p = malloc(sizeof *p);
	pthread_mutex_init(p, NULL);
	*m = p;
	return CKR_OK;
}
static CK_RV mx_destroy(void *m)
{
	pthread_mutex_destroy(m);
	free(m);
	return CKR_OK;
}
static CK_RV mx_lock(void *m)
{
	return pthread_mutex_lock(m) ? CKR_MUTEX_BAD : CKR_OK;
}
static CK_RV mx_unlock(void *m)
{
	return pthread_mutex_unlock(m) ? CKR_MUTEX_NOT_LOCKED : CKR_OK;
}

static void test_initialize(void)
{
	tp_case_begin("C_Initialize / C_Finalize argument matrix");
	CK_SLOT_ID slots[4];
	CK_ULONG n = 4;
	CK_INFO info;

	CHECK_RV(P->C_GetSlotList(CK_FALSE, slots, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(P->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(P->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

	CK_C_INITIALIZE_ARGS a;
	memset(&a, 0, sizeof a);
	a.CreateMutex = mx_create; /* some callbacks but not all */
	CHECK_RV(P->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	a.DestroyMutex = mx_destroy;
	a.LockMutex = mx_lock;
	CHECK_RV(P->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	a.flags = CKF_OS_LOCKING_OK;
	CHECK_RV(P->C_Initialize(&a), CKR_ARGUMENTS_BAD);

	a.UnlockMutex = mx_unlock; /* all four: fine, with or without OS locking */
	CHECK_RV(P->C_Initialize(&a), CKR_OK);
	CHECK_RV(P->C_Initialize(&a), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CHECK_RV(P->C_Finalize(&a), CKR_ARGUMENTS_BAD);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	a.flags = 0;
	CHECK_RV(P->C_Initialize(&a), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);

	memset(&a, 0, sizeof a); /* no callbacks, no flags: the app is single threaded */
	CHECK_RV(P->C_Initialize(&a), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
	CHECK_RV(P->C_Initialize(&a), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);

	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	CHECK_RV(P->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);

	CHECK_RV(P->C_GetInfo(&info), CKR_OK);
	CHECKF(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40,
	       "cryptokiVersion %d.%d", info.cryptokiVersion.major, info.cryptokiVersion.minor);
	CHECK(info.flags == 0);
	CHECK_RV(P->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	tp_case_end();
}

static void test_slots(void)
{
	tp_case_begin("slots, token info, mechanisms (no network)");
	CK_SLOT_ID slots[4] = { 0 };
	CK_ULONG n = 0;

	double t0 = tp_now();
	CHECK_RV(P->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	CHECKF(n == 1, "%lu slots, expected 1", (unsigned long)n);
	n = 0;
	CHECK_RV(P->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL);
	CHECK(n == 1);
	n = 4;
	CHECK_RV(P->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	CHECK(n == 1 && slots[0] == 1);
	CHECK_RV(P->C_GetSlotList(CK_TRUE, slots, NULL), CKR_ARGUMENTS_BAD);

	CK_SLOT_INFO si;
	CHECK_RV(P->C_GetSlotInfo(1, &si), CKR_OK);
	CHECK(si.flags & CKF_TOKEN_PRESENT);
	CHECK_RV(P->C_GetSlotInfo(2, &si), CKR_SLOT_ID_INVALID);
	CHECK_RV(P->C_GetSlotInfo(0, &si), CKR_SLOT_ID_INVALID);

	CK_TOKEN_INFO ti;
	char label[33], serial[17];
	CHECK_RV(P->C_GetTokenInfo(1, &ti), CKR_OK);
	tp_unpad(ti.label, 32, label);
	CHECKF(strcmp(label, "tang") == 0, "token label \"%s\"", label);
	CHECKF(memcmp(ti.label, "tang                            ", 32) == 0,
	       "label not blank padded");
	memcpy(serial, ti.serialNumber, 16);
	serial[16] = 0;
	CHECKF(strspn(serial, "0123456789abcdefABCDEF") == 16, "serial \"%s\" is not 16 hex digits",
	       serial);
	CHECKF((ti.flags & (CKF_TOKEN_INITIALIZED | CKF_RNG)) == (CKF_TOKEN_INITIALIZED | CKF_RNG),
	       "token flags 0x%lx lack CKF_TOKEN_INITIALIZED|CKF_RNG", (unsigned long)ti.flags);
	CHECKF(!(ti.flags & CKF_LOGIN_REQUIRED), "token without store requires login");
	CK_TOKEN_INFO ti2;
	CHECK_RV(P->C_GetTokenInfo(1, &ti2), CKR_OK);
	CHECK(memcmp(ti.serialNumber, ti2.serialNumber, 16) == 0);
	CHECK_RV(P->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);

	CK_MECHANISM_TYPE mechs[64];
	CK_ULONG mn = 0;
	CHECK_RV(P->C_GetMechanismList(1, NULL, &mn), CKR_OK);
	CHECK(mn >= 1 && mn <= 64);
	CK_ULONG small = 0;
	if (mn > 0)
		CHECK_RV(P->C_GetMechanismList(1, mechs, &small), CKR_BUFFER_TOO_SMALL);
	mn = 64;
	CHECK_RV(P->C_GetMechanismList(1, mechs, &mn), CKR_OK);
	bool ecdh = false;
	for (CK_ULONG i = 0; i < mn; i++) {
		CK_MECHANISM_INFO mi;
		CHECK_RV(P->C_GetMechanismInfo(1, mechs[i], &mi), CKR_OK);
		CHECKF(mi.flags & CKF_HW, "mechanism 0x%lx lacks CKF_HW", (unsigned long)mechs[i]);
		if (mechs[i] == CKM_ECDH1_DERIVE) {
			ecdh = true;
			CHECK(mi.flags & CKF_DERIVE);
			CHECKF(mi.ulMinKeySize <= 521 && mi.ulMaxKeySize >= 521,
			       "ECDH key sizes %lu..%lu exclude 521", (unsigned long)mi.ulMinKeySize,
			       (unsigned long)mi.ulMaxKeySize);
		}
	}
	CHECK(ecdh);
	CK_MECHANISM_INFO mi;
	CHECK_RV(P->C_GetMechanismInfo(1, CKM_VENDOR_DEFINED | 0x7ff, &mi), CKR_MECHANISM_INVALID);
	CHECK_RV(P->C_GetMechanismInfo(9, CKM_ECDH1_DERIVE, &mi), CKR_SLOT_ID_INVALID);
	/* None of these may touch the network: a correctness bound, generous. */
	double dt = tp_now() - t0;
	CHECKF(dt < 1.0, "slot/token/mechanism queries took %.2f s", dt);
	tp_case_end();
}

static void test_sessions(CK_SESSION_HANDLE *seen, size_t *nseen)
{
	tp_case_begin("sessions: open/close/info, handles never reused");
	CK_SESSION_HANDLE s = 0, ro, rw, again;
	CK_SESSION_INFO info;

	CHECK_RV(P->C_OpenSession(1, 0, NULL, NULL, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	CHECK_RV(P->C_OpenSession(5, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_SLOT_ID_INVALID);
	CHECK_RV(P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);

	REQUIRE_RV(P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	REQUIRE_RV(P->C_OpenSession(1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
	CHECK(ro != rw && ro != CK_INVALID_HANDLE && rw != CK_INVALID_HANDLE);
	CHECK_RV(P->C_GetSessionInfo(ro, &info), CKR_OK);
	CHECK(info.slotID == 1 && info.state == CKS_RO_PUBLIC_SESSION);
	CHECK(info.flags == CKF_SERIAL_SESSION);
	CHECK_RV(P->C_GetSessionInfo(rw, &info), CKR_OK);
	CHECK(info.state == CKS_RW_PUBLIC_SESSION);
	CHECK(info.flags == (CKF_SERIAL_SESSION | CKF_RW_SESSION));

	CHECK_RV(P->C_CloseSession(ro), CKR_OK);
	CHECK_RV(P->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(P->C_GetSessionInfo(ro, &info), CKR_SESSION_HANDLE_INVALID);
	REQUIRE_RV(P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &again), CKR_OK);
	CHECKF(again != ro && again != rw, "session handle %lu reused", (unsigned long)again);
	seen[(*nseen)++] = ro;
	seen[(*nseen)++] = rw;
	seen[(*nseen)++] = again;

	CK_SESSION_HANDLE many[40];
	for (int i = 0; i < 40; i++) {
		REQUIRE_RV(P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &many[i]), CKR_OK);
		for (size_t j = 0; j < *nseen; j++)
			CHECKF(many[i] != seen[j], "session handle %lu reused", (unsigned long)many[i]);
		seen[(*nseen)++] = many[i];
	}
	CHECK_RV(P->C_CloseAllSessions(1), CKR_OK);
	CHECK_RV(P->C_GetSessionInfo(rw, &info), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(P->C_GetSessionInfo(many[39], &info), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(P->C_CloseAllSessions(3), CKR_SLOT_ID_INVALID);
	tp_case_end();
}

static const uint8_t P521_OID[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };

static void check_key_objects(CK_SESSION_HANDLE s, tp_server_key *k,
			      CK_OBJECT_HANDLE *pub_out, CK_OBJECT_HANDLE *priv_out)
{
	CK_OBJECT_HANDLE pub = tp_find_key(s, CKO_PUBLIC_KEY, k->id);
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, k->id);
	CHECKF(pub != CK_INVALID_HANDLE, "no public key object with CKA_ID = thumbprint %s", k->kid);
	CHECKF(priv != CK_INVALID_HANDLE, "no private key object with CKA_ID = thumbprint %s", k->kid);
	*pub_out = pub;
	*priv_out = priv;
	if (!pub || !priv)
		return;

	uint8_t point[1 + 2 * TP_P521_LEN], ecpoint_der[3 + sizeof point];
	point[0] = 4;
	memcpy(point + 1, k->x, TP_P521_LEN);
	memcpy(point + 1 + TP_P521_LEN, k->y, TP_P521_LEN);
	ecpoint_der[0] = 0x04;
	ecpoint_der[1] = 0x81;
	ecpoint_der[2] = sizeof point;
	memcpy(ecpoint_der + 3, point, sizeof point);
	uint8_t *spki = NULL;
	size_t spki_len = tp_spki(k->pkey, &spki);
	REQUIRE(spki_len > 0);

	CK_OBJECT_HANDLE both[2] = { pub, priv };
	for (int i = 0; i < 2; i++) {
		CK_OBJECT_HANDLE o = both[i];
		uint8_t *v;
		CK_ULONG l;
		CHECK(tp_attr_ulong(s, o, CKA_CLASS) == (i ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY));
		CHECK(tp_attr_ulong(s, o, CKA_KEY_TYPE) == CKK_EC);
		CHECK(tp_attr_bool(s, o, CKA_TOKEN) == 1);
		CHECK(tp_attr_bool(s, o, CKA_PRIVATE) == 0);
		CHECK_RV(tp_attr(s, o, CKA_ID, &v, &l), CKR_OK);
		if (v)
			CHECK_MEM(v, l, k->id, 32, "CKA_ID");
		free(v);
		CHECK_RV(tp_attr(s, o, CKA_EC_PARAMS, &v, &l), CKR_OK);
		if (v)
			CHECK_MEM(v, l, P521_OID, sizeof P521_OID, "CKA_EC_PARAMS");
		free(v);
		CHECK_RV(tp_attr(s, o, CKA_PUBLIC_KEY_INFO, &v, &l), CKR_OK);
		if (v)
			CHECK_MEM(v, l, spki, spki_len, "CKA_PUBLIC_KEY_INFO");
		free(v);
		CHECK_RV(tp_attr(s, o, CKA_LABEL, &v, &l), CKR_OK);
		CHECKF(l > 0, "empty CKA_LABEL");
		free(v);
	}
	uint8_t *v;
	CK_ULONG l;
	CHECK_RV(tp_attr(s, pub, CKA_EC_POINT, &v, &l), CKR_OK);
	if (v)
		CHECK_MEM(v, l, ecpoint_der, sizeof ecpoint_der, "CKA_EC_POINT (DER OCTET STRING)");
	free(v);
	CHECK(tp_attr_bool(s, pub, CKA_ENCRYPT) == 1);
	CHECK(tp_attr_bool(s, pub, CKA_WRAP) == 1);

	CHECK(tp_attr_bool(s, priv, CKA_DERIVE) == 1);
	CHECK(tp_attr_bool(s, priv, CKA_DECRYPT) == 1);
	CHECK(tp_attr_bool(s, priv, CKA_UNWRAP) == 1);
	CHECK(tp_attr_bool(s, priv, CKA_SIGN) == 0);
	CHECK(tp_attr_bool(s, priv, CKA_SENSITIVE) == 1);
	CHECK(tp_attr_bool(s, priv, CKA_EXTRACTABLE) == 0);
	free(spki);
}

static void test_objects(CK_OBJECT_HANDLE *objs_seen, size_t *nobjs)
{
	tp_case_begin("Tang key objects and their attributes equal the server's key file");
	tp_server_key keys[4];
	int nk = tp_server_keys(keys, 4, false);
	REQUIRE(nk == 1);
	CK_SESSION_HANDLE s = tp_open(1);

	CK_OBJECT_HANDLE all[16];
	size_t n = tp_find(s, NULL, 0, all, 16);
	CHECKF(n == 2, "%zu objects on the token, expected a key pair", n);
	for (size_t i = 0; i < n && i < 16; i++)
		objs_seen[(*nobjs)++] = all[i];

	CK_OBJECT_HANDLE pub, priv;
	check_key_objects(s, &keys[0], &pub, &priv);

	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_BBOOL t = CK_TRUE;
	uint8_t other_id[32] = { 1, 2, 3 };
	CK_ATTRIBUTE by_class[] = { { CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt } };
	CK_ATTRIBUTE by_token[] = { { CKA_TOKEN, &t, sizeof t } };
	CK_ATTRIBUTE by_id[] = { { CKA_ID, other_id, sizeof other_id } };
	CK_ATTRIBUTE by_derive[] = { { CKA_DERIVE, &t, sizeof t } };
	CHECK(tp_find(s, by_class, 2, all, 16) == 1);
	CHECK(tp_find(s, by_token, 1, all, 16) == 2);
	CHECK(tp_find(s, by_id, 1, all, 16) == 0);
	CHECK(tp_find(s, by_derive, 1, all, 16) == 1 && all[0] == priv);

	CK_ULONG got;
	CHECK_RV(P->C_FindObjects(s, all, 1, &got), CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(P->C_FindObjectsInit(s, NULL, 0), CKR_OK);
	CHECK_RV(P->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
	CHECK_RV(P->C_FindObjectsFinal(s), CKR_OK);
	CHECK_RV(P->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);

	if (priv && pub) {
		/* C_GetAttributeValue: every attribute processed, never CKR_OK
		 * when one failed. */
		CK_OBJECT_CLASS c1 = 0;
		uint8_t buf[256];
		CK_ATTRIBUTE a[3] = {
			{ CKA_CLASS, &c1, sizeof c1 },
			{ CKA_VALUE, buf, sizeof buf },
		};
		CHECK_RV(P->C_GetAttributeValue(s, priv, a, 2), CKR_ATTRIBUTE_SENSITIVE);
		CHECK(c1 == CKO_PRIVATE_KEY && a[0].ulValueLen == sizeof c1);
		CHECK(a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);

		c1 = 0;
		a[0].ulValueLen = sizeof c1;
		a[1] = (CK_ATTRIBUTE){ CKA_VENDOR_DEFINED | 0x7e57, buf, sizeof buf };
		CHECK_RV(P->C_GetAttributeValue(s, priv, a, 2), CKR_ATTRIBUTE_TYPE_INVALID);
		CHECK(c1 == CKO_PRIVATE_KEY);
		CHECK(a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);

		c1 = 0;
		a[0] = (CK_ATTRIBUTE){ CKA_ID, buf, 10 };
		a[1] = (CK_ATTRIBUTE){ CKA_CLASS, &c1, sizeof c1 };
		CHECK_RV(P->C_GetAttributeValue(s, pub, a, 2), CKR_BUFFER_TOO_SMALL);
		CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
		CHECK(c1 == CKO_PUBLIC_KEY);

		a[0] = (CK_ATTRIBUTE){ CKA_ID, NULL, 0 };
		a[1] = (CK_ATTRIBUTE){ CKA_EC_POINT, NULL, 0 };
		a[2] = (CK_ATTRIBUTE){ CKA_VALUE, NULL, 0 };
		CHECK_RV(P->C_GetAttributeValue(s, priv, a, 2), CKR_OK);
		CHECK(a[0].ulValueLen == 32);
		CHECK_RV(P->C_GetAttributeValue(s, priv, &a[2], 1), CKR_ATTRIBUTE_SENSITIVE);
		CHECK(a[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);
		CHECK_RV(P->C_GetAttributeValue(s, 0x7fff0000UL, a, 1), CKR_OBJECT_HANDLE_INVALID);
		CHECK_RV(P->C_GetAttributeValue(0x7fff0000UL, priv, a, 1), CKR_SESSION_HANDLE_INVALID);

		CHECK_RV(P->C_DestroyObject(s, priv), CKR_ACTION_PROHIBITED);
		CHECK_RV(P->C_DestroyObject(s, pub), CKR_ACTION_PROHIBITED);
		CHECK(tp_find(s, NULL, 0, all, 16) == 2);
	}

	uint8_t r1[100], r2[100], zero[100] = { 0 };
	CHECK_RV(P->C_GenerateRandom(s, r1, sizeof r1), CKR_OK);
	CHECK_RV(P->C_GenerateRandom(s, r2, sizeof r2), CKR_OK);
	CHECK(memcmp(r1, r2, sizeof r1) != 0 && memcmp(r1, zero, sizeof r1) != 0);

	/* Functions this issue does not implement exist and say so. */
	CK_ULONG ul = 0;
	CK_MECHANISM m = { CKM_RSA_PKCS, NULL, 0 };
	CHECK_RV(P->C_GetOperationState(s, NULL, &ul), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(P->C_SetOperationState(s, r1, 10, CK_INVALID_HANDLE, CK_INVALID_HANDLE), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(P->C_SignRecoverInit(s, &m, priv), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(P->C_VerifyRecoverInit(s, &m, pub), CKR_FUNCTION_NOT_SUPPORTED);
	ul = sizeof r2;
	CHECK_RV(P->C_DigestEncryptUpdate(s, r1, 16, r2, &ul), CKR_FUNCTION_NOT_SUPPORTED);
	ul = sizeof r2;
	CHECK_RV(P->C_DecryptDigestUpdate(s, r1, 16, r2, &ul), CKR_FUNCTION_NOT_SUPPORTED);
	ul = sizeof r2;
	CHECK_RV(P->C_SignEncryptUpdate(s, r1, 16, r2, &ul), CKR_FUNCTION_NOT_SUPPORTED);
	ul = sizeof r2;
	CHECK_RV(P->C_DecryptVerifyUpdate(s, r1, 16, r2, &ul), CKR_FUNCTION_NOT_SUPPORTED);

	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	for (int i = 0; i < nk; i++)
		tp_server_key_free(&keys[i]);
	tp_case_end();
}

/* Barbican: C_Initialize(NULL) and threads anyway. */
static void *worker(void *arg)
{
	CK_SESSION_HANDLE *mine = arg;
	for (int i = 0; i < 25; i++) {
		CK_SESSION_HANDLE s;
		CK_TOKEN_INFO ti;
		CK_OBJECT_HANDLE h[4];
		CHECK_RV(P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
		mine[i] = s;
		CHECK_RV(P->C_GetTokenInfo(1, &ti), CKR_OK);
		CHECK(tp_find(s, NULL, 0, h, 4) == 2);
		CHECK(tp_attr_ulong(s, h[0], CKA_KEY_TYPE) == CKK_EC);
		if (i % 2)
			CHECK_RV(P->C_CloseSession(s), CKR_OK);
	}
	return NULL;
}

static void test_threads(void)
{
	tp_case_begin("4 threads under C_Initialize(NULL): sessions, find, attributes");
	pthread_t th[4];
	static CK_SESSION_HANDLE handles[4][25];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, worker, handles[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	int dup = 0;
	for (int i = 0; i < 100; i++)
		for (int j = i + 1; j < 100; j++)
			dup += ((CK_SESSION_HANDLE *)handles)[i] == ((CK_SESSION_HANDLE *)handles)[j];
	CHECKF(dup == 0, "%d duplicate session handles across threads", dup);
	CHECK_RV(P->C_CloseAllSessions(1), CKR_OK);
	tp_case_end();
}

static void test_fork(void)
{
	tp_case_begin("fork: the child is not initialized until it calls C_Initialize");
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		CK_ULONG n = 4;
		CK_SLOT_ID slots[4];
		int bad = 0;
		bad |= P->C_GetSlotList(CK_TRUE, slots, &n) != CKR_CRYPTOKI_NOT_INITIALIZED;
		bad |= (P->C_Initialize(NULL) != CKR_OK) << 1;
		n = 4;
		bad |= (P->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n != 1) << 2;
		CK_SESSION_HANDLE s;
		CK_OBJECT_HANDLE h[4];
		bad |= (P->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) << 3;
		bad |= (tp_find(s, NULL, 0, h, 4) != 2) << 4;
		bad |= (P->C_Finalize(NULL) != CKR_OK) << 5;
		_exit(bad);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "child: status 0x%x (bits: 1 slot list before init not NOT_INITIALIZED, "
	       "2 init, 4 slots, 8 session, 16 objects, 32 finalize)", st);
	CK_TOKEN_INFO ti;
	CHECK_RV(P->C_GetTokenInfo(1, &ti), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(1);
	CK_OBJECT_HANDLE h[4];
	CHECK(tp_find(s, NULL, 0, h, 4) == 2);
	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	tp_case_end();
}

static void test_reinit(CK_SESSION_HANDLE *seen, size_t nseen, CK_OBJECT_HANDLE *objs,
			size_t nobjs)
{
	tp_case_begin("C_Finalize + C_Initialize: no handle reused (Barbican re-initializes)");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	CK_ULONG n = 4;
	CK_SLOT_ID slots[4];
	CHECK_RV(P->C_GetSlotList(CK_TRUE, slots, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
	REQUIRE_RV(P->C_Initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(1);
	for (size_t i = 0; i < nseen; i++)
		CHECKF(s != seen[i], "session handle %lu reused after re-initialization",
		       (unsigned long)s);
	CK_OBJECT_HANDLE h[4];
	size_t k = tp_find(s, NULL, 0, h, 4);
	CHECK(k == 2);
	for (size_t i = 0; i < k && i < 4; i++)
		for (size_t j = 0; j < nobjs; j++)
			CHECKF(h[i] != objs[j], "object handle %lu reused after re-initialization",
			       (unsigned long)h[i]);
	CK_SESSION_INFO si;
	for (size_t i = 0; i < nseen; i++)
		if (seen[i] != s)
			CHECK_RV(P->C_GetSessionInfo(seen[i], &si), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_case_end();
}

int main(void)
{
	static CK_SESSION_HANDLE seen[256];
	static CK_OBJECT_HANDLE objs[32];
	size_t nseen = 0, nobjs = 0;

	/* A proxy in the host process's environment is not followed
	 * (docs/design.md): were it, every advertisement fetch below would
	 * go to this dead port and the Tang keys would be missing. */
	setenv("http_proxy", "http://127.0.0.1:9", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
	setenv("all_proxy", "http://127.0.0.1:9", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
	tp_load();
	test_exports();
	test_initialize(); /* leaves the module initialized with NULL args */
	test_slots();
	test_sessions(seen, &nseen);
	test_objects(objs, &nobjs);
	test_threads();
	test_fork();
	test_reinit(seen, nseen, objs, nobjs);
	return tp_exit();
}
