/* core/lib.c helpers that the API tests cannot reach with valid configs:
 * lib_pad fills a blank-padded CK_UTF8CHAR field and never cuts a
 * multi-byte UTF-8 character in two (PKCS#11 2.40 §3.2). */
#include <stdio.h>
#include <string.h>

#include "core/lib.h"

static int failures;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

static void check_pad(const char *in, size_t size, const char *want)
{
	unsigned char field[64];

	memset(field, 'X', sizeof(field));
	lib_pad(field, size, in);
	CHECK(memcmp(field, want, size) == 0);
	CHECK(field[size] == 'X');   /* nothing written past the field */
}

int main(void)
{
	check_pad("abc", 5, "abc  ");
	check_pad("abcde", 5, "abcde");
	check_pad("abcdef", 5, "abcde");
	/* "ab" + U+00E9 (2 bytes): 3 bytes of room would split it */
	check_pad("ab\xc3\xa9", 3, "ab ");
	check_pad("ab\xc3\xa9", 4, "ab\xc3\xa9");
	/* U+20AC (3 bytes) and U+1F511 (4 bytes) cut at every position */
	check_pad("a\xe2\x82\xac", 2, "a ");
	check_pad("a\xe2\x82\xac", 3, "a  ");
	check_pad("a\xe2\x82\xac", 4, "a\xe2\x82\xac");
	check_pad("\xf0\x9f\x94\x91z", 3, "   ");
	check_pad("\xf0\x9f\x94\x91z", 4, "\xf0\x9f\x94\x91");
	check_pad("", 4, "    ");
	fprintf(stderr, "lib: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
