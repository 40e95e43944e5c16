#include "util/http.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util/log.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_init(void)
{
	pthread_once(&global_once, global_init);
}

/* The response body, growing up to max bytes. */
struct sink {
	unsigned char *buf;
	size_t len, cap, max;
	bool too_large;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct sink *s = opaque;
	size_t n = size * nmemb;

	if (n > s->max - s->len) {
		/* Returning less than n aborts the transfer (CURLE_WRITE_ERROR). */
		s->too_large = true;
		return 0;
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		unsigned char *nb;

		while (cap < s->len + n + 1)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb)
			return 0;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

static tp_err map_curl(CURLcode rc, const struct sink *s)
{
	switch (rc) {
	case CURLE_OK:
		return TP_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return TP_ERR_TIMEOUT;
	case CURLE_WRITE_ERROR:
		return s->too_large ? TP_ERR_BAD_REPLY : TP_ERR_NOMEM;
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_PARTIAL_FILE:
	case CURLE_BAD_CONTENT_ENCODING:
		return TP_ERR_BAD_REPLY;
	/* Configured URLs are checked at load (url_check); this is a
	 * configuration curl still could not use. */
	case CURLE_URL_MALFORMAT:
		return TP_ERR_CONFIG;
	/* Also an HTTP/0.9 answer, which curl refuses. */
	case CURLE_UNSUPPORTED_PROTOCOL:
		return TP_ERR_BAD_REPLY;
	case CURLE_OUT_OF_MEMORY:
		return TP_ERR_NOMEM;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	default:
		return TP_ERR_UNREACHABLE;
	}
}

/* Options for every request; see DESIGN.md §7 for why each one. */
static bool set_common(CURL *h, const char *url, long timeout_s, struct sink *s, char *errbuf)
{
	long ms = timeout_s > 0 ? timeout_s * 1000 : 10000;

	return curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	       /* The host process's http_proxy & co. are not ours to follow:
	        * a module must reach the same server whoever loads it. */
	       curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK &&
	       /* tangd stalls ~44 ms on reused connections (TANG_PROTOCOL.md §2). */
	       curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms) == CURLE_OK &&
	       /* We are a guest: no SIGALRM for DNS timeouts. */
	       curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_WRITEDATA, s) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_USERAGENT, "tang-pkcs11") == CURLE_OK;
}

static bool set_post(CURL *h, struct curl_slist *headers, const void *body, size_t body_len)
{
	return curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) == CURLE_OK;
}

static struct curl_slist *post_headers(const char *content_type)
{
	struct curl_slist *l = NULL, *n;
	char *ct = NULL;

	if (asprintf(&ct, "Content-Type: %s", content_type) < 0)
		return NULL;
	l = curl_slist_append(NULL, ct);
	free(ct);
	/* No "Expect: 100-continue" round trip: tangd would not answer it. */
	n = l ? curl_slist_append(l, "Expect:") : NULL;
	if (!n)
		curl_slist_free_all(l);
	return n;
}

tp_err http_request(const char *url, const char *content_type,
		    const void *body, size_t body_len, long timeout_s,
		    size_t max_body, tp_http_reply *reply)
{
	struct sink s = { .max = max_body ? max_body : TP_HTTP_MAX_BODY };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL;
	CURL *h = NULL;
	CURLcode rc;
	tp_err err = TP_ERR_GENERAL;

	memset(reply, 0, sizeof(*reply));
	/* Only http and https: a file:// or ftp:// URL is the caller's
	 * mistake, not a reply the server gave. */
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		log_error("http: %s: only http:// and https:// URLs are used", url);
		return TP_ERR_INPUT;
	}
	http_global_init();
	if (global_rc != CURLE_OK)
		goto out;
	h = curl_easy_init();
	if (!h || !set_common(h, url, timeout_s, &s, errbuf))
		goto out;
	if (content_type) {
		headers = post_headers(content_type);
		if (!headers || !set_post(h, headers, body, body_len))
			goto out;
	}
	rc = curl_easy_perform(h);
	err = map_curl(rc, &s);
	if (err != TP_OK) {
		log_debug("%s %s: %s", content_type ? "POST" : "GET", url,
			  *errbuf ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status) != CURLE_OK) {
		err = TP_ERR_GENERAL;
		goto out;
	}
	if (!s.buf) {
		s.buf = malloc(1);
		if (!s.buf) {
			err = TP_ERR_NOMEM;
			goto out;
		}
		s.buf[0] = '\0';
	}
	reply->body = s.buf;
	reply->len = s.len;
	s.buf = NULL;
	log_debug("%s %s: HTTP %ld, %zu bytes", content_type ? "POST" : "GET", url,
		  reply->status, reply->len);
out:
	free(s.buf);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	return err;
}

void http_reply_clear(tp_http_reply *reply)
{
	if (!reply)
		return;
	free(reply->body);
	memset(reply, 0, sizeof(*reply));
}
