/* HTTP client over libcurl (DESIGN.md §7): a fresh connection per request,
 * http/https only, no redirects, a hard deadline, a response size cap,
 * CURLOPT_NOSIGNAL, TLS verification on.  Frames by Content-Length; never
 * reads to EOF (tangd keeps connections open). */
#ifndef TP_UTIL_HTTP_H
#define TP_UTIL_HTTP_H

#include <stddef.h>

#include "util/err.h"

#define TP_HTTP_MAX_BODY (256 * 1024)

typedef struct tp_http_reply {
	long status;                 /* HTTP status code */
	unsigned char *body;         /* NUL-terminated for convenience; len excludes it */
	size_t len;
} tp_http_reply;

/* GET when content_type is NULL, else POST body with that Content-Type.
 * TP_OK whenever a complete response arrived, whatever its status;
 * TP_ERR_UNREACHABLE / TP_ERR_TIMEOUT / TP_ERR_BAD_REPLY (too large,
 * malformed) otherwise.  Does not log: the caller knows the context. */
tp_err http_request(const char *url, const char *content_type,
		    const void *body, size_t body_len, long timeout_s,
		    size_t max_body, tp_http_reply *reply);
void http_reply_clear(tp_http_reply *reply);

/* curl_global_init exactly once per process (pthread_once). */
void http_global_init(void);

#endif
