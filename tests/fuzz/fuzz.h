/* Shared by the libFuzzer targets of tests/fuzz (tools/run-fuzz).
 * Each target feeds untrusted bytes to one parser of the module the way
 * the module itself does; the fixtures are the unit tests' (FIXTURES). */
#ifndef TP_FUZZ_H
#define TP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/ec.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The unit tests' fixture advertisement (P-521) and its pin. */
#define FUZZ_ADV FIXTURES "/adv521.jws"
#define FUZZ_THP "X2eXIR7xpJL5LhOLdDDzLFikBAhtskzjPXbjiFiNW-g"
#define FUZZ_URL "http://tang.example:8080"

static inline char *fuzz_read(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		abort();
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	return buf;
}

/* Module state every target needs: the private OpenSSL context, and a log
 * that goes nowhere (not syslog, once per input). */
static inline void fuzz_setup(void)
{
	setenv("TANG_PKCS11_LOG", "/dev/null", 1);
	log_open();
	if (ossl_ctx_init() != TP_OK)
		abort();
}

/* A heap copy of exactly the input (no NUL after it): a parser that reads
 * past the length it was given is caught by ASan. */
static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);

	if (!p)
		abort();
	for (size_t i = 0; i < size; i++)
		p[i] = (char)data[i];
	return p;
}

#endif
