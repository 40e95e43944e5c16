/* URL comparison as DESIGN.md §2 wants it: a JWE or a configuration names
 * the same server when the URLs are equal after normalisation: scheme and
 * host case-insensitive, the scheme's default port implied (http 80,
 * https 443), trailing slashes of the path ignored.  The path is otherwise
 * compared exactly (tangd may sit behind a prefix). */
#ifndef TP_UTIL_URL_H
#define TP_UTIL_URL_H

#include <stdbool.h>

/* Malloc'd normal form "scheme://host[:port]path", or NULL when url is not
 * of the form scheme://authority[/path] (or on allocation failure). */
char *url_normalize(const char *url);
/* True iff both normalise to the same text (unparseable URLs: equal only
 * when byte-identical). */
bool url_same_server(const char *a, const char *b);

/* Checks a configured Tang server URL before anything uses it: http or
 * https, a host, an optional decimal port 1..65535, an optional path; no
 * user:password part (it would end up in logs and slot descriptions), no
 * query or fragment (paths are appended to it), no spaces, control or
 * non-ASCII bytes.  NULL when acceptable, else a static reason. */
const char *url_check(const char *url);

#endif
