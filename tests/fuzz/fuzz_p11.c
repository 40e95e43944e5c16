/* libFuzzer: attribute templates and mechanism parameters, through the
 * module's real entry points (the built tang-pkcs11.so, dlopen'ed).  The
 * token is configured offline (the fixture advertisement in the
 * configuration) with a server that refuses connections, so a parameter
 * good enough to reach the network costs one refused connect.
 *
 * The input is a little program: up to 8 operations, each an opcode byte
 * and its operands (templates: a count, then per entry an attribute type
 * picked from a list or given raw, a length and that many value bytes).
 * Every buffer handed to the module is a heap copy of exactly the length
 * announced, so an over-read is an ASan report. */
#include "fuzz.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "tang-pkcs11.h"

static CK_FUNCTION_LIST *f;
static CK_SLOT_ID slot;

typedef struct {
	const uint8_t *p;
	size_t n;
} reader;

static uint8_t u8(reader *r)
{
	uint8_t v = 0;

	if (r->n) {
		v = *r->p++;
		r->n--;
	}
	return v;
}

static CK_ULONG u32(reader *r)
{
	CK_ULONG v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | u8(r);
	return v;
}

/* len bytes (fewer if the input ends) into a fresh heap buffer of exactly
 * the length returned in *got. */
static void *bytes(reader *r, size_t len, CK_ULONG *got)
{
	void *b;

	if (len > r->n)
		len = r->n;
	b = malloc(len ? len : 1);
	if (!b)
		abort();
	memcpy(b, r->p, len);
	r->p += len;
	r->n -= len;
	*got = len;
	return b;
}

static const CK_ATTRIBUTE_TYPE types[] = {
	CKA_CLASS, CKA_KEY_TYPE, CKA_VALUE_LEN, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
	CKA_EXTRACTABLE, CKA_ID, CKA_LABEL, CKA_VALUE, CKA_EC_POINT, CKA_EC_PARAMS,
	CKA_DERIVE, CKA_DECRYPT, CKA_ENCRYPT, CKA_WRAP, CKA_UNWRAP, CKA_SIGN, CKA_MODIFIABLE,
	CKA_PUBLIC_KEY_INFO, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_LOCAL,
	CKA_KEY_GEN_MECHANISM, CKA_ALLOWED_MECHANISMS, CKA_WRAP_TEMPLATE, CKA_START_DATE,
	CKA_COPYABLE, CKA_DESTROYABLE, CKA_CHECK_VALUE,
};

typedef struct {
	CK_ATTRIBUTE a[8];
	CK_ULONG n;
} tmpl;

/* for_output: value buffers of the announced length, uninitialised. */
static void read_tmpl(reader *r, tmpl *t, bool for_output)
{
	t->n = u8(r) % 9;
	for (CK_ULONG i = 0; i < t->n; i++) {
		uint8_t sel = u8(r), len = u8(r);
		CK_ATTRIBUTE *a = &t->a[i];

		a->type = sel & 0x80 ? u32(r) : types[sel % (sizeof(types) / sizeof(types[0]))];
		if (len == 0xff) {          /* NULL pValue, any length */
			a->pValue = NULL;
			a->ulValueLen = u8(r);
		} else if (for_output) {
			a->ulValueLen = len;
			a->pValue = malloc(len ? len : 1);
			if (!a->pValue)
				abort();
		} else {
			a->pValue = bytes(r, len, &a->ulValueLen);
		}
	}
}

static void free_tmpl(tmpl *t)
{
	for (CK_ULONG i = 0; i < t->n; i++)
		free(t->a[i].pValue);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char conf[256], text[1024];
	CK_C_GetFunctionList gfl;
	CK_ULONG n = 1;
	void *dl;
	int fd;

	setenv("TANG_PKCS11_LOG", "/dev/null", 1);
	snprintf(conf, sizeof(conf), "/tmp/tp-fuzz-p11.%d.conf", (int)getpid());
	snprintf(text, sizeof(text),
		 "{\"tokens\":[{\"label\":\"tang\",\"timeout\":1,\"tang\":{\"url\":\"http://127.0.0.1:1\","
		 "\"thp\":\"%s\",\"adv\":\"%s\"}}]}", FUZZ_THP, FUZZ_ADV);
	fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	setenv("TANG_PKCS11_CONF", conf, 1);
	dl = dlopen(MODULE_PATH, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		abort();
	*(void **)&gfl = dlsym(dl, "C_GetFunctionList");
	if (!gfl || gfl(&f) != CKR_OK || f->C_Initialize(NULL) != CKR_OK ||
	    f->C_GetSlotList(CK_TRUE, &slot, &n) != CKR_OK || n != 1)
		abort();
	unlink(conf);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	reader r = { data, size };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE objs[16];
	CK_ULONG n_objs = 0;

	if (f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
		abort();
	/* The Tang key objects (public, private). */
	if (f->C_FindObjectsInit(s, NULL, 0) == CKR_OK) {
		f->C_FindObjects(s, objs, 8, &n_objs);
		f->C_FindObjectsFinal(s);
	}
	for (int op = 0; op < 8 && r.n; op++) {
		uint8_t code = u8(&r);
		CK_OBJECT_HANDLE key = n_objs ? objs[u8(&r) % n_objs] : 1, out = 0;
		tmpl t = { .n = 0 };
		CK_ULONG len = 0, dlen = 0;
		unsigned char *buf = NULL, *in;

		switch (code % 9) {
		case 0: { /* a search */
			CK_OBJECT_HANDLE h[4];
			CK_ULONG cnt = 0;

			read_tmpl(&r, &t, false);
			if (f->C_FindObjectsInit(s, t.n ? t.a : NULL, t.n) == CKR_OK) {
				f->C_FindObjects(s, h, u8(&r) % 5, &cnt);
				f->C_FindObjectsFinal(s);
			}
			break;
		}
		case 1: /* attribute reads */
			read_tmpl(&r, &t, true);
			f->C_GetAttributeValue(s, key, t.n ? t.a : NULL, t.n);
			break;
		case 2: { /* ECDH1 derive: parameters and template */
			CK_ECDH1_DERIVE_PARAMS p = { 0 };
			CK_MECHANISM m = { CKM_ECDH1_DERIVE, NULL, 0 };
			uint8_t shape = u8(&r);
			void *param;

			p.kdf = u8(&r) % 12;
			p.pSharedData = bytes(&r, u8(&r), &p.ulSharedDataLen);
			p.pPublicData = bytes(&r, u8(&r), &p.ulPublicDataLen);
			if (shape & 1)
				p.pSharedData = (free(p.pSharedData), NULL);
			if (shape & 2)
				m.mechanism = u32(&r);
			/* exactly the announced parameter length on the heap */
			m.ulParameterLen = shape & 4 ? u8(&r) : sizeof(p);
			param = malloc(m.ulParameterLen ? m.ulParameterLen : 1);
			if (!param)
				abort();
			memcpy(param, &p, m.ulParameterLen < sizeof(p) ? m.ulParameterLen : sizeof(p));
			m.pParameter = shape & 8 ? NULL : param;
			read_tmpl(&r, &t, false);
			if (f->C_DeriveKey(s, &m, key, t.n ? t.a : NULL, t.n, &out) == CKR_OK &&
			    n_objs < 16)
				objs[n_objs++] = out;
			free(param);
			free(p.pSharedData);
			free(p.pPublicData);
			break;
		}
		case 3: /* encrypt (two-call length convention) */
		case 4: /* decrypt */
		case 5: { /* multi-part decrypt */
			CK_MECHANISM m = { CKM_TANG_JWE, NULL, 0 };
			void *param = bytes(&r, u8(&r) % 4, &m.ulParameterLen);

			m.pParameter = m.ulParameterLen ? param : NULL;
			in = bytes(&r, u8(&r) * 8u, &dlen);
			if (code % 9 == 3) {
				if (f->C_EncryptInit(s, &m, key) == CKR_OK &&
				    f->C_Encrypt(s, in, dlen, NULL, &len) == CKR_OK &&
				    (buf = malloc(len ? len : 1)))
					f->C_Encrypt(s, in, dlen, buf, &len);
			} else if (code % 9 == 4) {
				if (f->C_DecryptInit(s, &m, key) == CKR_OK) {
					len = u8(&r) * 4u;
					buf = malloc(len ? len : 1);
					f->C_Decrypt(s, in, dlen, buf, &len);
				}
			} else if (f->C_DecryptInit(s, &m, key) == CKR_OK) {
				CK_ULONG half = dlen / 2, o = 0;

				f->C_DecryptUpdate(s, in, half, NULL, &o);
				o = 0;
				f->C_DecryptUpdate(s, in + half, dlen - half, NULL, &o);
				len = 0;
				if (f->C_DecryptFinal(s, NULL, &len) == CKR_OK && (buf = malloc(len ? len : 1)))
					f->C_DecryptFinal(s, buf, &len);
			}
			free(param);
			free(in);
			break;
		}
		case 6: { /* unwrap a JWE into a key of the template */
			CK_MECHANISM m = { CKM_TANG_JWE, NULL, 0 };

			in = bytes(&r, u8(&r) * 8u, &dlen);
			read_tmpl(&r, &t, false);
			if (f->C_UnwrapKey(s, &m, key, in, dlen, t.n ? t.a : NULL, t.n, &out) == CKR_OK &&
			    n_objs < 16)
				objs[n_objs++] = out;
			free(in);
			break;
		}
		case 7: { /* wrap: the wrapping key and the key wrapped from the list */
			CK_MECHANISM m = { CKM_TANG_JWE, NULL, 0 };
			CK_OBJECT_HANDLE what = n_objs ? objs[u8(&r) % n_objs] : 0;

			if (f->C_WrapKey(s, &m, key, what, NULL, &len) == CKR_OK &&
			    (buf = malloc(len ? len : 1)))
				f->C_WrapKey(s, &m, key, what, buf, &len);
			break;
		}
		default: { /* object management and mechanism queries */
			CK_MECHANISM_INFO mi;

			read_tmpl(&r, &t, false);
			f->C_GetMechanismInfo(slot, u32(&r), &mi);
			f->C_SetAttributeValue(s, key, t.n ? t.a : NULL, t.n);
			if (f->C_CreateObject(s, t.n ? t.a : NULL, t.n, &out) == CKR_OK && n_objs < 16)
				objs[n_objs++] = out;
			if (f->C_CopyObject(s, key, t.n ? t.a : NULL, t.n, &out) == CKR_OK && n_objs < 16)
				objs[n_objs++] = out;
			break;
		}
		}
		free(buf);
		free_tmpl(&t);
	}
	f->C_CloseAllSessions(slot);
	return 0;
}
