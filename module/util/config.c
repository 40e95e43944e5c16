#include "util/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util/log.h"
#include "util/url.h"

#define CONFIG_MAX_FILE (1024 * 1024)   /* config and adv files */
#define CONFIG_MAX_TOKENS 256
#define CONFIG_MAX_TIMEOUT 3600         /* seconds */
#define CONFIG_MAX_LEASE 86400          /* seconds */
#define CONFIG_MAX_STRING 4096          /* url, store path, adv path */

/* What a parse needs to name the file in its single error line and to
 * resolve relative adv paths. */
struct parse {
	const char *path;                /* for messages: file name or "(text)" */
	char *dir;                       /* directory of the config file, or NULL */
};

static tp_err fail(const struct parse *p, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The one error line: "configuration FILE: FIELD: PROBLEM". */
static tp_err fail(const struct parse *p, const char *field, const char *fmt, ...)
{
	char problem[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	if (field)
		log_error("configuration %s: %s: %s", p->path, field, problem);
	else
		log_error("configuration %s: %s", p->path, problem);
	return TP_ERR_CONFIG;
}

/* Read a whole regular file of at most max bytes, NUL-terminated.
 * On failure returns NULL with *why set to a static description. */
static char *read_file(const char *path, size_t max, size_t *len, const char **why, int *errnum)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	*why = NULL;
	*errnum = 0;
	/* O_NONBLOCK: opening a FIFO (or a device) must not block
	 * C_Initialize; fstat then refuses anything but a regular file, for
	 * which O_NONBLOCK changes nothing. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		*errnum = errno;
		*why = "cannot open";
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		*why = "file too large";
		goto out;
	}
	/* One byte more than allowed, to notice a file that grew meanwhile. */
	buf = malloc(max + 1);
	if (!buf) {
		*why = "out of memory";
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*errnum = errno;
			*why = "cannot read";
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > max) {
			*why = "file too large";
			goto out;
		}
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	if (*why) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

static char *dir_of(const char *path)
{
	const char *slash;

	if (!path)
		return NULL;
	slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static void token_clear(tp_token_config *t)
{
	free(t->url);
	free(t->thp);
	free(t->adv);
	free(t->store);
	memset(t, 0, sizeof(*t));
}

void config_free(tp_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_tokens; i++)
		token_clear(&cfg->tokens[i]);
	free(cfg->tokens);
	free(cfg->path);
	free(cfg);
}

/* A JSON string without embedded NULs, 1..max bytes, duplicated. */
static tp_err get_string(const struct parse *p, const char *field, const json_t *v,
			 size_t max, char **out)
{
	size_t len;

	if (!json_is_string(v))
		return fail(p, field, "must be a string");
	len = json_string_length(v);
	if (len == 0)
		return fail(p, field, "must not be empty");
	if (strlen(json_string_value(v)) != len)
		return fail(p, field, "must not contain NUL characters");
	if (len > max)
		return fail(p, field, "longer than %zu bytes", max);
	*out = strdup(json_string_value(v));
	return *out ? TP_OK : fail(p, field, "out of memory");
}

/* A thumbprint is the b64url of a SHA-256 (43 chars) or SHA-1 (27 chars)
 * digest: the only hashes a pin is checked with (TANG_PROTOCOL.md §3). */
static bool is_thumbprint(const char *thp)
{
	size_t len = strlen(thp);

	if (len != 43 && len != 27)
		return false;
	return strspn(thp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == len;
}

static tp_err adv_from_file(const struct parse *p, const char *field, const json_t *v, char **out)
{
	char *name = NULL, *full = NULL, *text = NULL;
	const char *why;
	json_t *doc = NULL;
	json_error_t jerr;
	size_t len = 0;
	int errnum;
	tp_err err;

	err = get_string(p, field, v, CONFIG_MAX_STRING, &name);
	if (err != TP_OK)
		goto out;
	if (name[0] != '/' && p->dir) {
		if (asprintf(&full, "%s/%s", p->dir, name) < 0) {
			full = NULL;
			err = fail(p, field, "out of memory");
			goto out;
		}
	} else {
		full = name;
		name = NULL;
	}
	text = read_file(full, CONFIG_MAX_FILE, &len, &why, &errnum);
	if (!text) {
		err = fail(p, field, "%s %s%s%s", why, full, errnum ? ": " : "",
			   errnum ? strerror(errnum) : "");
		goto out;
	}
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc)) {
		err = fail(p, field, "%s is not a JSON object (%s)", full,
			   doc ? "wrong type" : jerr.text);
		goto out;
	}
	*out = text;
	text = NULL;
	err = TP_OK;
out:
	json_decref(doc);
	free(text);
	free(full);
	free(name);
	return err;
}

static tp_err parse_adv(const struct parse *p, const char *field, const json_t *v, char **out)
{
	if (json_is_object(v)) {
		/* The JWS object re-serialised: its payload and protected
		 * members are strings, so the signed text is unchanged. */
		*out = json_dumps(v, JSON_COMPACT);
		return *out ? TP_OK : fail(p, field, "out of memory");
	}
	if (json_is_string(v))
		return adv_from_file(p, field, v, out);
	return fail(p, field, "must be an object (the JWS) or a file name");
}

static tp_err parse_tang(const struct parse *p, const char *prefix, const json_t *tang,
			 tp_token_config *t)
{
	char field[128];
	const char *key, *why;
	json_t *v;
	tp_err err = TP_OK;

	if (!json_is_object(tang))
		return fail(p, prefix, "must be an object");
	json_object_foreach((json_t *)tang, key, v) {
		snprintf(field, sizeof(field), "%.64s.%.48s", prefix, key);
		if (strcmp(key, "url") == 0) {
			err = get_string(p, field, v, CONFIG_MAX_STRING, &t->url);
			why = err == TP_OK ? url_check(t->url) : NULL;
			if (why)
				err = fail(p, field, "%s", why);
		} else if (strcmp(key, "thp") == 0) {
			err = get_string(p, field, v, CONFIG_MAX_STRING, &t->thp);
			if (err == TP_OK && !is_thumbprint(t->thp))
				err = fail(p, field, "must be an S256 or S1 thumbprint (43 or 27 base64url characters)");
		} else if (strcmp(key, "adv") == 0) {
			err = parse_adv(p, field, v, &t->adv);
		} else {
			err = fail(p, field, "unknown member");
		}
		if (err != TP_OK)
			return err;
	}
	snprintf(field, sizeof(field), "%.64s.url", prefix);
	if (!t->url)
		return fail(p, field, "missing");
	if (!t->thp && !t->adv)
		return fail(p, prefix, "needs \"thp\" or \"adv\" (there is no trust on first use)");
	return TP_OK;
}

static tp_err parse_label(const struct parse *p, const char *field, const json_t *v,
			  const tp_config *cfg, tp_token_config *t)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	if (!s)
		return fail(p, field, "must be a string");
	if (len == 0 || len > TP_LABEL_MAX)
		return fail(p, field, "must be 1 to %d bytes long", TP_LABEL_MAX);
	if (strlen(s) != len)
		return fail(p, field, "must not contain NUL characters");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(p, field, "must not contain control characters");
	/* CK_TOKEN_INFO pads labels with spaces: "a " would show as "a". */
	if (s[len - 1] == ' ')
		return fail(p, field, "must not end with a space");
	for (size_t i = 0; i < cfg->n_tokens; i++) {
		if (strcmp(cfg->tokens[i].label, s) == 0)
			return fail(p, field, "\"%s\" is already the label of tokens[%zu]", s, i);
	}
	memcpy(t->label, s, len + 1);
	return TP_OK;
}

static tp_err parse_timeout(const struct parse *p, const char *field, const json_t *v, long *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return fail(p, field, "must be an integer (seconds)");
	n = json_integer_value(v);
	if (n <= 0 || n > CONFIG_MAX_TIMEOUT)
		return fail(p, field, "must be 1 to %d seconds", CONFIG_MAX_TIMEOUT);
	*out = (long)n;
	return TP_OK;
}

/* The store directory: relative to the configuration file's directory
 * (like "adv"), and never shared by two tokens (each store is sealed under
 * its own token's binding). */
static tp_err parse_store(const struct parse *p, const char *field, const json_t *v,
			  const tp_config *cfg, tp_token_config *t)
{
	char *name = NULL;
	tp_err err = get_string(p, field, v, CONFIG_MAX_STRING, &name);

	if (err != TP_OK)
		return err;
	if (name[0] != '/' && p->dir) {
		char *full = NULL;

		if (asprintf(&full, "%s/%s", p->dir, name) < 0) {
			free(name);
			return fail(p, field, "out of memory");
		}
		free(name);
		name = full;
	}
	for (size_t i = 0; i < cfg->n_tokens; i++) {
		const tp_token_config *o = &cfg->tokens[i];

		if (o != t && o->store && strcmp(o->store, name) == 0) {
			err = fail(p, field, "\"%s\" is already the store of tokens[%zu]", name, i);
			free(name);
			return err;
		}
	}
	free(t->store);
	t->store = name;
	return TP_OK;
}

/* One member of a token; *has_* track what was seen for the checks after
 * the loop. */
static tp_err parse_member(const struct parse *p, size_t idx, const char *key, const json_t *v,
			   const tp_config *cfg, tp_token_config *t, bool *has_label, bool *has_binding)
{
	char field[128];

	snprintf(field, sizeof(field), "tokens[%zu].%.48s", idx, key);
	if (strcmp(key, "label") == 0) {
		*has_label = true;
		return parse_label(p, field, v, cfg, t);
	}
	if (strcmp(key, "tang") == 0 || strcmp(key, "sss") == 0) {
		if (*has_binding)
			return fail(p, field, "a token has one binding: \"tang\" or \"sss\"");
		*has_binding = true;
		if (strcmp(key, "tang") == 0) {
			t->binding = TP_BINDING_TANG;
			return parse_tang(p, field, v, t);
		}
		if (!json_is_object(v))
			return fail(p, field, "must be an object");
		t->binding = TP_BINDING_SSS;
		return TP_OK;
	}
	if (strcmp(key, "store") == 0)
		return parse_store(p, field, v, cfg, t);
	if (strcmp(key, "lease") == 0) {
		json_int_t n;

		if (!json_is_integer(v))
			return fail(p, field, "must be an integer (seconds)");
		n = json_integer_value(v);
		if (n < 0 || n > CONFIG_MAX_LEASE)
			return fail(p, field, "must be 0 to %d seconds", CONFIG_MAX_LEASE);
		t->lease = (long)n;
		return TP_OK;
	}
	if (strcmp(key, "pin") == 0) {
		if (!json_is_boolean(v))
			return fail(p, field, "must be true or false");
		t->pin = json_is_true(v);
		return TP_OK;
	}
	if (strcmp(key, "timeout") == 0)
		return parse_timeout(p, field, v, &t->timeout);
	return fail(p, field, "unknown member");
}

static tp_err parse_token(const struct parse *p, size_t idx, const json_t *tok,
			  const tp_config *cfg, tp_token_config *t)
{
	bool has_label = false, has_binding = false;
	char field[128];
	const char *key;
	json_t *v;
	tp_err err;

	snprintf(field, sizeof(field), "tokens[%zu]", idx);
	if (!json_is_object(tok))
		return fail(p, field, "must be an object");
	t->pin = true;
	t->timeout = TP_DEFAULT_TIMEOUT;
	t->lease = TP_DEFAULT_LEASE;
	json_object_foreach((json_t *)tok, key, v) {
		err = parse_member(p, idx, key, v, cfg, t, &has_label, &has_binding);
		if (err != TP_OK)
			return err;
	}
	if (!has_label) {
		snprintf(field, sizeof(field), "tokens[%zu].label", idx);
		return fail(p, field, "missing");
	}
	if (!has_binding)
		return fail(p, field, "needs a \"tang\" binding");
	/* Recognised, so a configuration written for a later version keeps
	 * loading; said once per token so the admin is not misled. */
	if (t->binding == TP_BINDING_SSS)
		log_warn("configuration %s: %s: sss bindings come in a later version; token \"%s\" offers no keys",
			 p->path, field, t->label);
	if (t->store && t->binding != TP_BINDING_TANG) {
		snprintf(field, sizeof(field), "tokens[%zu].store", idx);
		return fail(p, field, "needs a \"tang\" binding (a store is sealed under it)");
	}
	return TP_OK;
}

static tp_err parse_root(const struct parse *p, const json_t *root, tp_config *cfg)
{
	const json_t *tokens;
	const char *key;
	size_t n;
	json_t *v;
	tp_err err;

	if (!json_is_object(root))
		return fail(p, NULL, "the top level must be a JSON object");
	json_object_foreach((json_t *)root, key, v) {
		if (strcmp(key, "tokens") != 0)
			return fail(p, key, "unknown member");
	}
	tokens = json_object_get(root, "tokens");
	if (!json_is_array(tokens))
		return fail(p, "tokens", tokens ? "must be an array" : "missing");
	n = json_array_size(tokens);
	if (n > CONFIG_MAX_TOKENS)
		return fail(p, "tokens", "more than %d tokens", CONFIG_MAX_TOKENS);
	cfg->tokens = calloc(n ? n : 1, sizeof(*cfg->tokens));
	if (!cfg->tokens)
		return fail(p, "tokens", "out of memory");
	for (size_t i = 0; i < n; i++) {
		/* Counted before parsing, so config_free releases a token
		 * that failed half way. */
		cfg->n_tokens = i + 1;
		err = parse_token(p, i, json_array_get(tokens, i), cfg, &cfg->tokens[i]);
		if (err != TP_OK)
			return err;
	}
	return TP_OK;
}

tp_err config_parse(const char *text, size_t len, const char *path, tp_config **out)
{
	struct parse p = { path ? path : "(text)", NULL };
	tp_config *cfg = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	tp_err err;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return fail(&p, NULL, "out of memory");
	if (path) {
		cfg->path = strdup(path);
		p.dir = dir_of(path);
		if (!cfg->path || !p.dir) {
			err = fail(&p, NULL, "out of memory");
			goto out;
		}
	}
	if (len > CONFIG_MAX_FILE) {
		err = fail(&p, NULL, "larger than %d bytes", CONFIG_MAX_FILE);
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		err = fail(&p, NULL, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		goto out;
	}
	err = parse_root(&p, root, cfg);
out:
	json_decref(root);
	free(p.dir);
	if (err != TP_OK)
		config_free(cfg);
	else
		*out = cfg;
	return err;
}

/* The value of "config=PATH" among the words of pReserved, malloc'd. */
static char *reserved_config(const char *reserved)
{
	const char *s = reserved;
	char *found = NULL;

	while (s && *s) {
		size_t n;

		s += strspn(s, " \t\r\n\v\f");
		n = strcspn(s, " \t\r\n\v\f");
		if (n > 7 && strncmp(s, "config=", 7) == 0) {
			/* The last one wins, like repeated options elsewhere. */
			free(found);
			found = strndup(s + 7, n - 7);
		}
		s += n;
	}
	return found;
}

static tp_config *empty_config(void)
{
	tp_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg)
		cfg->tokens = calloc(1, sizeof(*cfg->tokens));
	if (cfg && !cfg->tokens) {
		free(cfg);
		cfg = NULL;
	}
	return cfg;
}

tp_err config_load(const char *reserved, tp_config **out)
{
	char *named = reserved_config(reserved);
	const char *path = named, *why;
	struct parse p;
	char *text = NULL;
	size_t len = 0;
	int errnum;
	tp_err err;

	*out = NULL;
	if (!path) {
		/* secure_getenv: a setuid program must not let its caller
		 * pick the servers it trusts. */
		path = secure_getenv("TANG_PKCS11_CONF");
		if (path && !*path)
			path = NULL;
	}
	if (!path) {
		path = TP_DEFAULT_CONF;
		if (access(path, F_OK) != 0 && errno == ENOENT) {
			log_debug("no configuration file %s: no tokens", path);
			*out = empty_config();
			err = *out ? TP_OK : TP_ERR_NOMEM;
			goto out;
		}
	}
	p.path = path;
	p.dir = NULL;
	text = read_file(path, CONFIG_MAX_FILE, &len, &why, &errnum);
	if (!text) {
		err = fail(&p, NULL, "%s%s%s", why, errnum ? ": " : "", errnum ? strerror(errnum) : "");
		goto out;
	}
	err = config_parse(text, len, path, out);
	if (err == TP_OK)
		log_debug("configuration %s: %zu token(s)", path, (*out)->n_tokens);
out:
	free(text);
	free(named);
	return err;
}
