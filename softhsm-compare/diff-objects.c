/* tp-diff-objects: a behaviour differential for object management, the
 * same calls on tang-pkcs11 (a token with a sealed store) and SoftHSM2,
 * printing each call's CK_RV on both and marking differences.  Prints, never
 * fails: some differences are deliberate (docs/objects-and-mechanisms.md),
 * the rest are worth a look.
 *
 *   tests/fixtures/with-tangd build/softhsm-compare/tp-diff-objects */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <p11-kit/pkcs11.h>

#ifndef BENCH_MODULE
#define BENCH_MODULE "tang-pkcs11.so"
#endif

#define N_CASES 64

typedef struct side {
	CK_FUNCTION_LIST *p;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE rw, ro;
	CK_OBJECT_HANDLE key, nocopy, data;
	CK_RV rv[N_CASES];
} side;

static const char *names[N_CASES];
static int n_cases;

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS sk = CKO_SECRET_KEY, dk = CKO_DATA, pk = CKO_PRIVATE_KEY, ck = CKO_CERTIFICATE;
static CK_KEY_TYPE aes = CKK_AES, gen = CKK_GENERIC_SECRET;
static CK_CERTIFICATE_TYPE x509 = CKC_X_509;
static CK_ULONG len16 = 16, len32 = 32, len20 = 20;
static unsigned char v32[32] = "0123456789abcdef0123456789abcdef";

static void fatal(const char *what, CK_RV rv)
{
	fprintf(stderr, "tp-diff-objects: %s: CK_RV 0x%lx\n", what, (unsigned long)rv);
	exit(1);
}

static void setup(side *sd, const char *path, const char *label)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	CK_SLOT_ID slots[8];
	CK_ULONG n = 8;
	CK_UTF8CHAR l[32];
	CK_RV rv;

	if (!dl) {
		fprintf(stderr, "tp-diff-objects: %s: %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&gfl = dlsym(dl, "C_GetFunctionList");
	gfl(&sd->p);
	if ((rv = sd->p->C_Initialize(NULL)) != CKR_OK)
		fatal("C_Initialize", rv);
	sd->p->C_GetSlotList(CK_TRUE, slots, &n);
	sd->slot = slots[0];
	memset(l, ' ', 32);
	memcpy(l, label, strlen(label));
	if ((rv = sd->p->C_InitToken(sd->slot, (CK_UTF8CHAR *)"so-pin-1", 8, l)) != CKR_OK)
		fatal("C_InitToken", rv);
	/* SoftHSM2 renumbers its slots after an initialization. */
	n = 8;
	sd->p->C_GetSlotList(CK_TRUE, slots, &n);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (sd->p->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, l, 32) == 0)
			sd->slot = slots[i];
	}
	sd->p->C_OpenSession(sd->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sd->rw);
	if ((rv = sd->p->C_Login(sd->rw, CKU_SO, (CK_UTF8CHAR *)"so-pin-1", 8)) != CKR_OK)
		fatal("C_Login SO", rv);
	sd->p->C_InitPIN(sd->rw, (CK_UTF8CHAR *)"1234", 4);
	sd->p->C_Logout(sd->rw);
	sd->p->C_OpenSession(sd->slot, CKF_SERIAL_SESSION, NULL, NULL, &sd->ro);
}

#define CASE(name, call) \
	do { \
		names[n_cases] = name; \
		sd->rv[n_cases++] = (call); \
	} while (0)

static void run(side *sd)
{
	CK_FUNCTION_LIST *p = sd->p;
	CK_OBJECT_HANDLE h;
	CK_MECHANISM aes_gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM gen_gen = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };

	n_cases = 0;
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sk, sizeof sk }, { CKA_KEY_TYPE, &aes, sizeof aes },
				     { CKA_VALUE, v32, 32 }, { CKA_TOKEN, &yes, 1 },
				     { CKA_PRIVATE, &no, 1 } };
		CASE("create public token AES key, not logged in", p->C_CreateObject(sd->rw, t, 5, &h));
		CASE("create token object in RO session", p->C_CreateObject(sd->ro, t, 5, &h));
		t[4].pValue = &yes;
		CASE("create private token AES key, not logged in", p->C_CreateObject(sd->rw, t, 5, &h));
	}
	CASE("C_Login user", p->C_Login(sd->rw, CKU_USER, (CK_UTF8CHAR *)"1234", 4));
	CASE("C_Login user again", p->C_Login(sd->rw, CKU_USER, (CK_UTF8CHAR *)"1234", 4));
	CASE("C_Login SO while user", p->C_Login(sd->rw, CKU_SO, (CK_UTF8CHAR *)"so-pin-1", 8));
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sk, sizeof sk }, { CKA_KEY_TYPE, &aes, sizeof aes },
				     { CKA_VALUE, v32, 32 }, { CKA_TOKEN, &yes, 1 },
				     { CKA_EXTRACTABLE, &yes, 1 }, { CKA_SENSITIVE, &no, 1 },
				     { CKA_LABEL, "k", 1 } };
		CASE("create token AES key", p->C_CreateObject(sd->rw, t, 7, &sd->key));
		CASE("create without CKA_VALUE", p->C_CreateObject(sd->rw, t, 2, &h));
		CASE("create without CKA_KEY_TYPE", p->C_CreateObject(sd->rw, (CK_ATTRIBUTE[]){ t[0], t[2] }, 2, &h));
		CASE("create without CKA_CLASS", p->C_CreateObject(sd->rw, t + 1, 2, &h));
		t[2].ulValueLen = 15;
		CASE("create AES key of 15 bytes", p->C_CreateObject(sd->rw, t, 3, &h));
		t[2].ulValueLen = 32;
		t[1].pValue = &gen;
		CASE("create generic secret", p->C_CreateObject(sd->rw, t, 3, &h));
		t[1].pValue = &aes;
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sk, sizeof sk }, { CKA_KEY_TYPE, &aes, sizeof aes },
				     { CKA_VALUE, v32, 32 }, { CKA_VALUE_LEN, &len16, sizeof len16 } };
		CASE("create with CKA_VALUE_LEN != value", p->C_CreateObject(sd->rw, t, 4, &h));
		t[3].pValue = &len32;
		CASE("create with CKA_VALUE_LEN == value", p->C_CreateObject(sd->rw, t, 4, &h));
		t[3].type = CKA_LOCAL;
		t[3].pValue = &yes;
		t[3].ulValueLen = 1;
		CASE("create with CKA_LOCAL", p->C_CreateObject(sd->rw, t, 4, &h));
		t[3].type = CKA_ALWAYS_SENSITIVE;
		CASE("create with CKA_ALWAYS_SENSITIVE", p->C_CreateObject(sd->rw, t, 4, &h));
		t[3].type = CKA_MODULUS;
		CASE("create with CKA_MODULUS", p->C_CreateObject(sd->rw, t, 4, &h));
		t[3].type = CKA_SENSITIVE;
		t[3].ulValueLen = 4;
		CASE("create with 4-byte CKA_SENSITIVE", p->C_CreateObject(sd->rw, t, 4, &h));
		t[0].pValue = &pk;
		CASE("create CKO_PRIVATE_KEY without key data", p->C_CreateObject(sd->rw, t, 3, &h));
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &dk, sizeof dk }, { CKA_TOKEN, &yes, 1 },
				     { CKA_LABEL, "d", 1 }, { CKA_VALUE, "x", 1 } };
		CASE("create data object", p->C_CreateObject(sd->rw, t, 4, &sd->data));
		CASE("create data object, class only", p->C_CreateObject(sd->rw, t, 1, &h));
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &ck, sizeof ck }, { CKA_CERTIFICATE_TYPE, &x509, sizeof x509 },
				     { CKA_SUBJECT, "\x30\x00", 2 }, { CKA_VALUE, "\x30\x03\x02\x01\x01", 5 } };
		CASE("create X.509 certificate", p->C_CreateObject(sd->rw, t, 4, &h));
		CASE("create certificate without CKA_VALUE", p->C_CreateObject(sd->rw, t, 3, &h));
		CASE("create certificate without type", p->C_CreateObject(sd->rw, (CK_ATTRIBUTE[]){ t[0], t[2], t[3] }, 3, &h));
	}
	{
		CK_ATTRIBUTE lab = { CKA_LABEL, "renamed", 7 };
		CK_ATTRIBUTE sens_t = { CKA_SENSITIVE, &yes, 1 }, sens_f = { CKA_SENSITIVE, &no, 1 };
		CK_ATTRIBUTE ext_t = { CKA_EXTRACTABLE, &yes, 1 }, ext_f = { CKA_EXTRACTABLE, &no, 1 };
		CK_ATTRIBUTE tok = { CKA_TOKEN, &no, 1 }, priv = { CKA_PRIVATE, &yes, 1 };
		CK_ATTRIBUTE val = { CKA_VALUE, v32, 16 }, cls = { CKA_CLASS, &dk, sizeof dk };
		CK_ATTRIBUTE local = { CKA_LOCAL, &yes, 1 }, nocopy = { CKA_COPYABLE, &no, 1 };
		CK_ATTRIBUTE copy_t[] = { { CKA_TOKEN, &no, 1 } };

		CASE("set CKA_LABEL", p->C_SetAttributeValue(sd->rw, sd->key, &lab, 1));
		CASE("set CKA_LABEL in RO session", p->C_SetAttributeValue(sd->ro, sd->key, &lab, 1));
		CASE("set CKA_TOKEN", p->C_SetAttributeValue(sd->rw, sd->key, &tok, 1));
		CASE("set CKA_PRIVATE", p->C_SetAttributeValue(sd->rw, sd->key, &priv, 1));
		CASE("set CKA_VALUE of a key", p->C_SetAttributeValue(sd->rw, sd->key, &val, 1));
		CASE("set CKA_CLASS", p->C_SetAttributeValue(sd->rw, sd->key, &cls, 1));
		CASE("set CKA_LOCAL", p->C_SetAttributeValue(sd->rw, sd->key, &local, 1));
		CASE("copy key to session object", p->C_CopyObject(sd->rw, sd->key, copy_t, 1, &h));
		CASE("set CKA_SENSITIVE true", p->C_SetAttributeValue(sd->rw, h, &sens_t, 1));
		CASE("set CKA_SENSITIVE back to false", p->C_SetAttributeValue(sd->rw, h, &sens_f, 1));
		CASE("set CKA_EXTRACTABLE false", p->C_SetAttributeValue(sd->rw, h, &ext_f, 1));
		CASE("set CKA_EXTRACTABLE back to true", p->C_SetAttributeValue(sd->rw, h, &ext_t, 1));
		CASE("set CKA_COPYABLE false", p->C_SetAttributeValue(sd->rw, h, &nocopy, 1));
		CASE("copy a non-copyable object", p->C_CopyObject(sd->rw, h, NULL, 0, &sd->nocopy));
		CASE("set CKA_VALUE of a data object", p->C_SetAttributeValue(sd->rw, sd->data, &val, 1));
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_VALUE_LEN, &len32, sizeof len32 }, { CKA_TOKEN, &yes, 1 },
				     { CKA_KEY_TYPE, &gen, sizeof gen } };
		CK_ULONG size = 0;

		CASE("generate AES token key", p->C_GenerateKey(sd->rw, &aes_gen, t, 2, &h));
		CASE("C_GetObjectSize", p->C_GetObjectSize(sd->rw, h, &size));
		CASE("generate AES key without CKA_VALUE_LEN", p->C_GenerateKey(sd->rw, &aes_gen, t + 1, 1, &h));
		CASE("generate AES key with generic key type", p->C_GenerateKey(sd->rw, &aes_gen, t, 3, &h));
		t[0].pValue = &len20;
		CASE("generate AES key of 20 bytes", p->C_GenerateKey(sd->rw, &aes_gen, t, 2, &h));
		CASE("generate generic secret of 20 bytes", p->C_GenerateKey(sd->rw, &gen_gen, t, 2, &h));
		CASE("generate with CKA_VALUE", p->C_GenerateKey(sd->rw, &aes_gen, (CK_ATTRIBUTE[]){ { CKA_VALUE, v32, 16 } }, 1, &h));
	}
	CASE("destroy token key in RO session", p->C_DestroyObject(sd->ro, sd->key));
	CASE("destroy token key", p->C_DestroyObject(sd->rw, sd->key));
	CASE("destroy it again", p->C_DestroyObject(sd->rw, sd->key));
	CASE("C_Logout", p->C_Logout(sd->rw));
	CASE("C_Logout again", p->C_Logout(sd->rw));
	CASE("C_Login user with a wrong PIN", p->C_Login(sd->rw, CKU_USER, (CK_UTF8CHAR *)"9999", 4));
	CASE("C_Login SO with an RO session open", p->C_Login(sd->rw, CKU_SO, (CK_UTF8CHAR *)"so-pin-1", 8));
	CASE("C_SetPIN in an RO session", p->C_SetPIN(sd->ro, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"5678", 4));
	CASE("C_SetPIN wrong old PIN", p->C_SetPIN(sd->rw, (CK_UTF8CHAR *)"0000", 4, (CK_UTF8CHAR *)"5678", 4));
	CASE("C_SetPIN", p->C_SetPIN(sd->rw, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"5678", 4));
	CASE("C_InitPIN not logged in", p->C_InitPIN(sd->rw, (CK_UTF8CHAR *)"1234", 4));
	p->C_Finalize(NULL);
}

int main(void)
{
	const char *tmp = getenv("TANG_TMP"), *url = getenv("TANG_URL"), *thp = getenv("TANG_THP");
	const char *tp_module = getenv("TANG_PKCS11_MODULE");
	const char *sh_module = getenv("SOFTHSM2_MODULE");
	char path[4200], dir[4200];
	FILE *f;
	static side tp, sh;
	int diffs = 0, n_tp;

	if (!tmp || !url || !thp) {
		fprintf(stderr, "usage: tests/fixtures/with-tangd tp-diff-objects\n");
		return 2;
	}
	snprintf(path, sizeof path, "%s/diff.conf", tmp);
	f = fopen(path, "w");
	fprintf(f, "{ \"tokens\": [ { \"label\": \"diff\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" },"
		" \"store\": \"%s/diff-store\" } ] }\n", url, thp, tmp);
	fclose(f);
	setenv("TANG_PKCS11_CONF", path, 1);
	snprintf(dir, sizeof dir, "%s/diff-softhsm", tmp);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return 1;
	snprintf(path, sizeof path, "%s/diff-softhsm2.conf", tmp);
	f = fopen(path, "w");
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", dir);
	fclose(f);
	setenv("SOFTHSM2_CONF", path, 1);

	setup(&tp, tp_module ? tp_module : BENCH_MODULE, "diff");
	{
		side *sd = &tp;

		run(sd);
	}
	n_tp = n_cases;
	setup(&sh, sh_module ? sh_module : "/usr/lib/softhsm/libsofthsm2.so", "diff");
	{
		side *sd = &sh;

		run(sd);
	}
	printf("%-48s %-8s %-8s\n", "call", "tang", "softhsm2");
	for (int i = 0; i < n_tp && i < n_cases; i++) {
		bool same = tp.rv[i] == sh.rv[i];

		diffs += !same;
		printf("%-48s 0x%-6lx 0x%-6lx %s\n", names[i], (unsigned long)tp.rv[i],
		       (unsigned long)sh.rv[i], same ? "" : "<- differs");
	}
	printf("# %d calls, %d differ\n", n_cases, diffs);
	return 0;
}
