#include "util/url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void lower(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s[i] = (char)tolower((unsigned char)s[i]);
}

static const char *default_port(const char *scheme)
{
	if (strcmp(scheme, "http") == 0)
		return "80";
	if (strcmp(scheme, "https") == 0)
		return "443";
	return NULL;
}

static bool valid_scheme(const char *s, size_t n)
{
	if (n == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

char *url_normalize(const char *url)
{
	const char *sep = url ? strstr(url, "://") : NULL;
	const char *auth, *auth_end, *host_end, *port = "", *dflt;
	char *scheme = NULL, *host = NULL, *out = NULL;
	size_t path_len, port_len = 0;

	if (!sep || !valid_scheme(url, (size_t)(sep - url)))
		return NULL;
	auth = sep + 3;
	auth_end = auth + strcspn(auth, "/?#");
	/* host: a bracketed IPv6 literal, or up to the port's colon. */
	if (*auth == '[') {
		host_end = memchr(auth, ']', (size_t)(auth_end - auth));
		if (!host_end)
			return NULL;
		host_end++;
	} else {
		host_end = memchr(auth, ':', (size_t)(auth_end - auth));
		if (!host_end)
			host_end = auth_end;
	}
	if (host_end == auth)
		return NULL;
	if (host_end < auth_end) {
		if (*host_end != ':')
			return NULL;
		port = host_end + 1;
		port_len = (size_t)(auth_end - port);
	}
	scheme = strndup(url, (size_t)(sep - url));
	host = strndup(auth, (size_t)(host_end - auth));
	if (!scheme || !host)
		goto out;
	lower(scheme, strlen(scheme));
	lower(host, strlen(host));
	dflt = default_port(scheme);
	if (port_len == 0 || (dflt && strlen(dflt) == port_len && memcmp(port, dflt, port_len) == 0))
		port_len = 0;
	path_len = strlen(auth_end);
	while (path_len && auth_end[path_len - 1] == '/')
		path_len--;
	if (asprintf(&out, "%s://%s%s%.*s%.*s", scheme, host, port_len ? ":" : "",
		     (int)port_len, port, (int)path_len, auth_end) < 0)
		out = NULL;
out:
	free(scheme);
	free(host);
	return out;
}

bool url_same_server(const char *a, const char *b)
{
	char *na, *nb;
	bool same;

	if (!a || !b)
		return false;
	na = url_normalize(a);
	nb = url_normalize(b);
	same = na && nb ? strcmp(na, nb) == 0 : strcmp(a, b) == 0;
	free(na);
	free(nb);
	return same;
}

static const char *check_port(const char *port, size_t len)
{
	unsigned long n = 0;

	if (len == 0 || len > 5)
		return "the port must be a number from 1 to 65535";
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)port[i]))
			return "the port must be a number from 1 to 65535";
		n = n * 10 + (unsigned long)(port[i] - '0');
	}
	return n >= 1 && n <= 65535 ? NULL : "the port must be a number from 1 to 65535";
}

const char *url_check(const char *url)
{
	const char *auth, *auth_end, *colon;

	for (const unsigned char *c = (const unsigned char *)url; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return "contains a space, a control or a non-ASCII character";
	if (strncasecmp(url, "http://", 7) == 0)
		auth = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		auth = url + 8;
	else
		return "must start with http:// or https://";
	if (strpbrk(url, "?#"))
		return "must not have a query or a fragment";
	auth_end = auth + strcspn(auth, "/");
	if (memchr(auth, '@', (size_t)(auth_end - auth)))
		return "must not contain a user name or password";
	if (*auth == '[') {
		const char *close = memchr(auth, ']', (size_t)(auth_end - auth));

		if (!close || close == auth + 1)
			return "has a malformed IPv6 address";
		colon = close + 1 < auth_end ? close + 1 : NULL;
		if (colon && *colon != ':')
			return "has a malformed IPv6 address";
	} else {
		colon = memchr(auth, ':', (size_t)(auth_end - auth));
		if ((colon ? colon : auth_end) == auth)
			return "has no host";
	}
	if (colon)
		return check_port(colon + 1, (size_t)(auth_end - colon - 1));
	return NULL;
}
