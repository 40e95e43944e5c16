/* Helpers for the store unit tests: a CHECK harness that counts failures
 * and keeps going, scratch directories, and whole-directory snapshots
 * (names, modes and bytes) to prove a store was left untouched. */
#ifndef TP_TEST_STORE_H
#define TP_TEST_STORE_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static int test_failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			test_failures++; \
		} \
	} while (0)

#define CHECK_ST(expr, want) \
	do { \
		store_status got_ = (expr); \
		if (got_ != (want)) { \
			fprintf(stderr, "%s:%d: %s = %s, want %s\n", __FILE__, __LINE__, \
				#expr, store_status_str(got_), store_status_str(want)); \
			test_failures++; \
		} \
	} while (0)

static inline int test_exit(const char *name)
{
	if (test_failures)
		fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
	else
		fprintf(stderr, "%s: all checks passed\n", name);
	return test_failures ? 1 : 0;
}

static const uint8_t test_root[STORE_ROOT_LEN] = {
	0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90,
	0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
};
#define TEST_SEALED "eyJhbGciOiJFQ0RILUVTIn0..iv.ciphertext.tag"
#define TEST_SO_PIN "so-pin-5678"
#define TEST_USER_PIN "user-pin-1234"

/* A fresh scratch directory under $TMPDIR; the store goes in <it>/store. */
static inline char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path = malloc(4096);

	snprintf(path, 4096, "%s/tp-store-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		exit(1);
	}
	return path;
}

static inline void test_rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char *sub;
	struct stat sb;

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&sub, "%s/%s", path, de->d_name) < 0)
			continue;
		if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			chmod(sub, 0700);
			test_rmtree(sub);
		} else {
			unlink(sub);
		}
		free(sub);
	}
	closedir(d);
	rmdir(path);
}

static inline char *test_path(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		exit(1);
	return p;
}

static inline uint8_t *test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || n > (1L << 30)) { /* a directory, or absurd */
		fclose(f);
		return NULL;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (n && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Writes in place (keeps the inode, like a bit flip on the disk). */
static inline void test_write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
		perror(path);
		exit(1);
	}
	close(fd);
}

/* Every file of a directory: name, mode and bytes, concatenated in name
 * order into one buffer, so two snapshots compare with memcmp. */
typedef struct test_snapshot {
	uint8_t *data;
	size_t len;
} test_snapshot;

static int test_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline test_snapshot test_snap(const char *dir)
{
	test_snapshot s = { NULL, 0 };
	DIR *d = opendir(dir);
	struct dirent *de;
	char *names[4096];
	size_t n = 0;

	if (!d)
		return s;
	while ((de = readdir(d)) && n < 4096)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(char *), test_name_cmp);
	for (size_t i = 0; i < n; i++) {
		char *p = test_path(dir, names[i]);
		struct stat sb;
		size_t flen = 0;
		uint8_t *bytes = test_read_file(p, &flen);
		size_t nlen = strlen(names[i]) + 1;

		lstat(p, &sb);
		s.data = realloc(s.data, s.len + nlen + sizeof(sb.st_mode) + sizeof(flen) + flen);
		memcpy(s.data + s.len, names[i], nlen);
		s.len += nlen;
		memcpy(s.data + s.len, &sb.st_mode, sizeof(sb.st_mode));
		s.len += sizeof(sb.st_mode);
		memcpy(s.data + s.len, &flen, sizeof(flen));
		s.len += sizeof(flen);
		if (flen)
			memcpy(s.data + s.len, bytes, flen);
		s.len += flen;
		free(bytes);
		free(p);
		free(names[i]);
	}
	return s;
}

static inline bool test_snap_eq(const test_snapshot *a, const test_snapshot *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* A store created with cheap scrypt parameters, R set, nobody logged in. */
static inline store *test_create(const char *dir, bool pin_model)
{
	store *st = NULL;
	store_create_args a = {
		.sealed_root = TEST_SEALED,
		.root = test_root,
		.so_pin = (const uint8_t *)TEST_SO_PIN,
		.so_pin_len = strlen(TEST_SO_PIN),
		.pin_model = pin_model,
		.kdf_log2n = 10, .kdf_r = 8, .kdf_p = 1,
	};
	store_status s = store_open(dir, &st);

	if (!st || (s != STORE_UNINITIALIZED && s != STORE_OK)) {
		fprintf(stderr, "store_open(%s): %s\n", dir, store_status_str(s));
		exit(1);
	}
	s = store_create(st, &a);
	if (s != STORE_OK) {
		fprintf(stderr, "store_create(%s): %s\n", dir, store_status_str(s));
		exit(1);
	}
	return st;
}

/* Opens an existing store with R set. */
static inline store *test_open(const char *dir)
{
	store *st = NULL;
	store_status s = store_open(dir, &st);

	if (s != STORE_OK || store_set_root(st, test_root) != STORE_OK) {
		fprintf(stderr, "test_open(%s): %s\n", dir, store_status_str(s));
		exit(1);
	}
	return st;
}

static inline store_status test_login(store *st, store_user who, const char *pin)
{
	return store_login(st, who, (const uint8_t *)pin, strlen(pin));
}

/* A secret-key-like attribute list: class, key type, label, id, value. */
typedef struct test_obj {
	CK_OBJECT_CLASS klass;
	CK_KEY_TYPE key_type;
	CK_BBOOL yes;
	char label[64];
	uint8_t id[16];
	uint8_t value[32];
	CK_ATTRIBUTE attrs[6];
} test_obj;

static inline void test_obj_init(test_obj *o, unsigned n, bool is_private)
{
	memset(o, 0, sizeof(*o));
	o->klass = CKO_SECRET_KEY;
	o->key_type = CKK_AES;
	o->yes = CK_TRUE;
	snprintf(o->label, sizeof(o->label), "label-%08u", n);
	for (size_t i = 0; i < sizeof(o->id); i++)
		o->id[i] = (uint8_t)(n * 7 + i);
	for (size_t i = 0; i < sizeof(o->value); i++)
		o->value[i] = (uint8_t)(n * 13 + i * 31 + 5);
	o->attrs[0] = (CK_ATTRIBUTE){ CKA_CLASS, &o->klass, sizeof(o->klass) };
	o->attrs[1] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &o->key_type, sizeof(o->key_type) };
	o->attrs[2] = (CK_ATTRIBUTE){ CKA_LABEL, o->label, strlen(o->label) };
	o->attrs[3] = (CK_ATTRIBUTE){ CKA_ID, o->id, sizeof(o->id) };
	o->attrs[4] = (CK_ATTRIBUTE){ CKA_VALUE, o->value, sizeof(o->value) };
	o->attrs[5] = (CK_ATTRIBUTE){ CKA_PRIVATE, &o->yes, sizeof(o->yes) };
	if (!is_private)
		o->yes = CK_FALSE;
}

static inline const CK_ATTRIBUTE *test_attr(const store_object *o, CK_ATTRIBUTE_TYPE t)
{
	for (size_t i = 0; i < o->n_attrs; i++)
		if (o->attrs[i].type == t)
			return &o->attrs[i];
	return NULL;
}

/* True if obj holds exactly the attributes test_obj_init(n) made. */
static inline bool test_obj_matches(const store_object *obj, unsigned n)
{
	test_obj want;
	const CK_ATTRIBUTE *a;

	test_obj_init(&want, n, obj->is_private);
	if (obj->n_attrs != 6)
		return false;
	for (size_t i = 0; i < 6; i++) {
		a = test_attr(obj, want.attrs[i].type);
		if (!a || a->ulValueLen != want.attrs[i].ulValueLen ||
		    memcmp(a->pValue, want.attrs[i].pValue, a->ulValueLen) != 0)
			return false;
	}
	return true;
}

/* The n of a test object from its label, or -1. */
static inline long test_obj_number(const store_object *obj)
{
	const CK_ATTRIBUTE *a = test_attr(obj, CKA_LABEL);
	char buf[64];

	if (!a || a->ulValueLen >= sizeof(buf) || a->ulValueLen < 7)
		return -1;
	memcpy(buf, a->pValue, a->ulValueLen);
	buf[a->ulValueLen] = '\0';
	return strtol(buf + 6, NULL, 10);
}

static inline size_t test_count(store *st)
{
	store_object **objs;
	size_t n = 0;

	if (store_objects_list(st, &objs, &n) != STORE_OK)
		return (size_t)-1;
	store_objects_release(objs, n);
	return n;
}

#endif
