/* A tiny harness for the lower-layer unit tests: CHECK counts failures and
 * keeps going, so one run reports every broken case. */
#ifndef TP_TEST_LOWER_H
#define TP_TEST_LOWER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int test_failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			test_failures++; \
		} \
	} while (0)

#define CHECK_ERR(expr, want) \
	do { \
		int got_ = (int)(expr); \
		if (got_ != (int)(want)) { \
			fprintf(stderr, "%s:%d: %s = %d, want %s = %d\n", __FILE__, __LINE__, \
				#expr, got_, #want, (int)(want)); \
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

/* A fixture file (tests/unit/lower/fixtures), NUL-terminated; aborts if absent. */
static inline char *fixture_text(const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "fixture %s missing\n", path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		exit(1);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* Any file by absolute path, NUL-terminated, or NULL. */
static inline char *fixture_text_abs(const char *path)
{
	FILE *f = path ? fopen(path, "rb") : NULL;
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		exit(1);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static inline json_t *fixture_json(const char *name)
{
	size_t len;
	char *text = fixture_text(name, &len);
	json_t *j = json_loadb(text, len, 0, NULL);

	free(text);
	if (!j) {
		fprintf(stderr, "fixture %s is not JSON\n", name);
		exit(1);
	}
	return j;
}

#endif
