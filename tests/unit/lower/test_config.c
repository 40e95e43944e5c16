/* util/config.c: DESIGN.md §2.  Every invalid configuration is
 * TP_ERR_CONFIG with exactly one error line naming file, field, problem. */
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

#include "util/config.h"
#include "util/log.h"

static char tmpdir[] = "/tmp/tp-config-test.XXXXXX";
static char logpath[4200];

static void write_file(const char *name, const char *text)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

/* The log since the last call (then the log is emptied). */
static char *take_log(void)
{
	FILE *f = fopen(logpath, "r");
	char *buf = calloc(1, 65536);

	if (f) {
		size_t n = fread(buf, 1, 65535, f);
		buf[n] = '\0';
		fclose(f);
	}
	log_close();
	f = fopen(logpath, "w");
	if (f)
		fclose(f);
	log_open();
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* text must fail; the one error line must contain `field`. */
static void bad(int line, const char *text, const char *field)
{
	tp_config *cfg = (tp_config *)1;
	tp_err err = config_parse(text, strlen(text), "/etc/x/test.conf", &cfg);
	char *log = take_log();

	if (err != TP_ERR_CONFIG || cfg != NULL || count(log, ": error: ") != 1 ||
	    !strstr(log, "/etc/x/test.conf") || (field && !strstr(log, field))) {
		fprintf(stderr, "line %d: err %d, log:\n%s\n", line, err, log);
		test_failures++;
	}
	free(log);
}
#define BAD(text, field) bad(__LINE__, text, field)

static tp_config *good(int line, const char *text, const char *path)
{
	tp_config *cfg = NULL;
	tp_err err = config_parse(text, strlen(text), path, &cfg);
	char *log = take_log();

	if (err != TP_OK || !cfg || count(log, ": error: ") != 0) {
		fprintf(stderr, "line %d: err %d, log:\n%s\n", line, err, log);
		test_failures++;
	}
	free(log);
	return cfg;
}
#define GOOD(text, path) good(__LINE__, text, path)

#define THP "X2eXIR7xpJL5LhOLdDDzLFikBAhtskzjPXbjiFiNW-g"
#define TOK(extra) "{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}" extra "}]}"

static void defaults(void)
{
	tp_config *cfg = GOOD(TOK(""), "/etc/x/test.conf");

	CHECK(cfg && cfg->n_tokens == 1);
	if (cfg && cfg->n_tokens == 1) {
		tp_token_config *t = &cfg->tokens[0];
		CHECK(strcmp(cfg->path, "/etc/x/test.conf") == 0);
		CHECK(strcmp(t->label, "a") == 0 && t->binding == TP_BINDING_TANG);
		CHECK(strcmp(t->url, "http://h") == 0 && strcmp(t->thp, THP) == 0);
		CHECK(t->adv == NULL && t->store == NULL);
		CHECK(t->pin == true && t->timeout == TP_DEFAULT_TIMEOUT);
	}
	config_free(cfg);
	cfg = GOOD("{\"tokens\":[]}", NULL);
	CHECK(cfg && cfg->n_tokens == 0 && cfg->path == NULL);
	config_free(cfg);
	cfg = GOOD(TOK(",\"pin\":false,\"timeout\":3"), NULL);
	CHECK(cfg && !cfg->tokens[0].pin && cfg->tokens[0].timeout == 3);
	config_free(cfg);
	/* several tokens in file order; S1 pin; https; 32-byte label */
	cfg = GOOD("{\"tokens\":[{\"label\":\"one\",\"tang\":{\"url\":\"HTTPS://h:1/p/\",\"thp\":\"gt9M09B2Xcxn3KFOYfle-svzii0\"}},"
		   "{\"label\":\"0123456789abcdef0123456789abcdef\",\"tang\":{\"url\":\"http://x\",\"thp\":\"" THP "\"}}]}", NULL);
	CHECK(cfg && cfg->n_tokens == 2);
	if (cfg && cfg->n_tokens == 2) {
		CHECK(strcmp(cfg->tokens[0].label, "one") == 0);
		CHECK(strcmp(cfg->tokens[0].url, "HTTPS://h:1/p/") == 0);
		CHECK(strlen(cfg->tokens[1].label) == 32);
	}
	config_free(cfg);
}

static void recognised(void)
{
	tp_config *cfg;
	char *log;

	/* sss is accepted with one warning; a store needs a tang binding */
	cfg = GOOD("{\"tokens\":[{\"label\":\"s\",\"sss\":{\"t\":1,\"pins\":{}}}]}", NULL);
	CHECK(cfg && cfg->tokens[0].binding == TP_BINDING_SSS);
	config_free(cfg);
	cfg = NULL;
	{ const char *s = "{\"tokens\":[{\"label\":\"s\",\"sss\":{}}]}"; config_parse(s, strlen(s), NULL, &cfg); }
	log = take_log();
	CHECK(count(log, ": warning: ") == 1 && strstr(log, "sss"));
	free(log);
	config_free(cfg);
	cfg = NULL;
	BAD("{\"tokens\":[{\"label\":\"s\",\"sss\":{},\"store\":\"/var/lib/x\"}]}", "tokens[0].store");
	/* store, lease: used, no warning; relative store paths follow the file */
	{
		const char *t = TOK(",\"store\":\"/s\",\"lease\":0");
		config_parse(t, strlen(t), NULL, &cfg);
		log = take_log();
		CHECK(count(log, ": warning: ") == 0);
		CHECK(cfg && strcmp(cfg->tokens[0].store, "/s") == 0 && cfg->tokens[0].lease == 0);
		free(log);
		config_free(cfg);
		cfg = NULL;
		t = TOK(",\"store\":\"st\"");
		config_parse(t, strlen(t), "/etc/tp/x.conf", &cfg);
		CHECK(cfg && strcmp(cfg->tokens[0].store, "/etc/tp/st") == 0 &&
		      cfg->tokens[0].lease == TP_DEFAULT_LEASE);
		config_free(cfg);
		free(take_log());
	}
}

static void adv_forms(void)
{
	char path[4200], text[8192];
	tp_config *cfg;
	json_t *j;

	/* object: re-serialised JSON */
	cfg = GOOD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"adv\":{\"payload\":\"e30\",\"signature\":\"AA\",\"protected\":\"e30\"}}}]}", NULL);
	CHECK(cfg && cfg->tokens[0].adv && !cfg->tokens[0].thp);
	if (cfg && cfg->tokens[0].adv) {
		j = json_loads(cfg->tokens[0].adv, 0, NULL);
		CHECK(json_is_object(j) && strcmp(json_string_value(json_object_get(j, "payload")), "e30") == 0);
		json_decref(j);
	}
	config_free(cfg);
	/* relative file: next to the configuration file */
	write_file("adv.jws", "{\"payload\":\"e30\",\"signature\":\"AA\",\"protected\":\"e30\"}\n");
	mkdir(strcat(strcpy(path, tmpdir), "/sub"), 0700);
	write_file("sub/adv2.jws", "{\"payload\":\"e30\"}");
	snprintf(path, sizeof(path), "%s/tang.conf", tmpdir);
	cfg = GOOD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"adv\":\"adv.jws\",\"thp\":\"" THP "\"}},"
		   "{\"label\":\"b\",\"tang\":{\"url\":\"http://h\",\"adv\":\"sub/adv2.jws\"}}]}", path);
	CHECK(cfg && cfg->n_tokens == 2);
	if (cfg && cfg->n_tokens == 2) {
		CHECK(strcmp(cfg->tokens[0].adv, "{\"payload\":\"e30\",\"signature\":\"AA\",\"protected\":\"e30\"}\n") == 0);
		CHECK(strcmp(cfg->tokens[1].adv, "{\"payload\":\"e30\"}") == 0);
		CHECK(strcmp(cfg->tokens[0].thp, THP) == 0);
	}
	config_free(cfg);
	/* absolute file */
	snprintf(text, sizeof(text), "{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"adv\":\"%s/adv.jws\"}}]}", tmpdir);
	cfg = GOOD(text, "/nonexistent/dir/x.conf");
	CHECK(cfg && cfg->tokens[0].adv);
	config_free(cfg);
	/* missing, not JSON, not an object: field and file named */
	snprintf(path, sizeof(path), "%s/tang.conf", tmpdir);
	write_file("notjson.jws", "nope");
	write_file("array.jws", "[1]");
	{
		const char *cases[] = { "missing.jws", "notjson.jws", "array.jws", "sub" };
		for (size_t i = 0; i < 4; i++) {
			tp_config *c = (tp_config *)1;
			char *log;
			snprintf(text, sizeof(text), "{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"adv\":\"%s\"}}]}", cases[i]);
			CHECK_ERR(config_parse(text, strlen(text), path, &c), TP_ERR_CONFIG);
			CHECK(c == NULL);
			log = take_log();
			CHECK(count(log, ": error: ") == 1 && strstr(log, "tokens[0].tang.adv") && strstr(log, cases[i]));
			free(log);
		}
	}
}

static void invalid(void)
{
	BAD("", "line");
	BAD("{", NULL);
	BAD("[]", "top level");
	BAD("{\"tokens\":[],\"extra\":1}", "extra");
	BAD("{}", "tokens");
	BAD("{\"tokens\":{}}", "tokens");
	BAD("{\"tokens\":[],\"tokens\":[]}", NULL);             /* duplicate key */
	BAD("{\"tokens\":[1]}", "tokens[0]");
	BAD("{\"tokens\":[{\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "tokens[0].label");
	BAD("{\"tokens\":[{\"label\":\"\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "tokens[0].label");
	BAD("{\"tokens\":[{\"label\":\"0123456789abcdef0123456789abcdefX\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "tokens[0].label");
	BAD("{\"tokens\":[{\"label\":7,\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "tokens[0].label");
	BAD("{\"tokens\":[{\"label\":\"a\\u0000b\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "NUL");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}},"
	    "{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "tokens[1].label");
	BAD("{\"tokens\":[{\"label\":\"a\"}]}", "tokens[0]");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":[]}]}", "tokens[0].tang");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"thp\":\"" THP "\"}}]}", "tokens[0].tang.url");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"ftp://h\",\"thp\":\"" THP "\"}}]}", "tokens[0].tang.url");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://\",\"thp\":\"" THP "\"}}]}", "tokens[0].tang.url");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"h\",\"thp\":\"" THP "\"}}]}", "tokens[0].tang.url");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":7,\"thp\":\"" THP "\"}}]}", "tokens[0].tang.url");
	/* URL rules (url_check): each with the reason in the one log line */
	{
		static const char *const urls[][2] = {
			{ "http://h:70000", "port" },
			{ "http://h:0", "port" },
			{ "http://h:8x", "port" },
			{ "http://h:", "port" },
			{ "http://h x", "space" },
			{ "http://h\\r\\nX-Evil: 1", "control" },
			{ "http://h\\t", "control" },
			{ "http://u:p@h", "user name" },
			{ "http://h/p?q=1", "query" },
			{ "http://h/#f", "fragment" },
			{ "http://:80", "no host" },
			{ "http://[::1", "IPv6" },
			{ "http://[::1]x", "IPv6" },
			{ "http://h\\u00e9", "non-ASCII" },
		};
		char text[512];

		for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
			snprintf(text, sizeof(text), "{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"%s\",\"thp\":\"" THP "\"}}]}", urls[i][0]);
			bad(__LINE__ * 1000 + (int)i, text, urls[i][1]);
		}
		config_free(GOOD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://[::1]:65535/tang/\",\"thp\":\"" THP "\"}}]}", NULL));
		config_free(GOOD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"https://tang.example.com:443\",\"thp\":\"" THP "\"}}]}", NULL));
	}
	/* labels: no control characters, no trailing space (the field is space-padded) */
	BAD("{\"tokens\":[{\"label\":\"a\\nb\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "control");
	BAD("{\"tokens\":[{\"label\":\"a\\u007f\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "control");
	BAD("{\"tokens\":[{\"label\":\"a \",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", "space");
	config_free(GOOD("{\"tokens\":[{\"label\":\"a b \\u00e9\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}}]}", NULL));
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\"}}]}", "tokens[0].tang");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"abc\"}}]}", "tokens[0].tang.thp");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"X2eXIR7xpJL5LhOLdDDzLFikBAhtskzjPXbjiFiNW+g\"}}]}", "tokens[0].tang.thp");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"adv\":5}}]}", "tokens[0].tang.adv");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\",\"verbose\":1}}]}", "tokens[0].tang.verbose");
	BAD(TOK(",\"lable\":\"x\""), "tokens[0].lable");
	BAD(TOK(",\"pin\":\"yes\""), "tokens[0].pin");
	BAD(TOK(",\"timeout\":0"), "tokens[0].timeout");
	BAD(TOK(",\"timeout\":-1"), "tokens[0].timeout");
	BAD(TOK(",\"timeout\":\"10\""), "tokens[0].timeout");
	BAD(TOK(",\"timeout\":10.5"), "tokens[0].timeout");
	BAD(TOK(",\"timeout\":100000"), "tokens[0].timeout");
	BAD(TOK(",\"store\":\"\""), "tokens[0].store");
	BAD(TOK(",\"store\":true"), "tokens[0].store");
	BAD(TOK(",\"lease\":-1"), "tokens[0].lease");
	BAD(TOK(",\"lease\":\"5\""), "tokens[0].lease");
	BAD(TOK(",\"lease\":86401"), "tokens[0].lease");
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://a\",\"thp\":\"zOYzludeHYukAQ7AeUBurbL_u9dZLYXNvAv1LaVmfcg\"},\"store\":\"/s\"},"
	    "{\"label\":\"b\",\"tang\":{\"url\":\"http://a\",\"thp\":\"zOYzludeHYukAQ7AeUBurbL_u9dZLYXNvAv1LaVmfcg\"},\"store\":\"/s\"}]}", "tokens[1].store");
	BAD(TOK(",\"sss\":{}"), "tokens[0].sss");
	BAD("{\"tokens\":[{\"label\":\"a\",\"sss\":[]}]}", "tokens[0].sss");
	/* the second token is named when it is the bad one */
	BAD("{\"tokens\":[{\"label\":\"a\",\"tang\":{\"url\":\"http://h\",\"thp\":\"" THP "\"}},"
	    "{\"label\":\"b\",\"tang\":{\"url\":\"gopher://h\",\"thp\":\"" THP "\"}}]}", "tokens[1].tang.url");
}

static void loading(void)
{
	char path[4200], reserved[8400];
	tp_config *cfg = NULL;
	char *log;

	snprintf(path, sizeof(path), "%s/load.conf", tmpdir);
	write_file("load.conf", TOK(""));
	/* pReserved words, unknown ones ignored */
	snprintf(reserved, sizeof(reserved), "verbose=yes  config=%s\tother=1", path);
	unsetenv("TANG_PKCS11_CONF");
	CHECK_ERR(config_load(reserved, &cfg), TP_OK);
	CHECK(cfg && cfg->n_tokens == 1 && strcmp(cfg->path, path) == 0);
	config_free(cfg);
	/* the environment; pReserved wins over it */
	setenv("TANG_PKCS11_CONF", path, 1);
	CHECK_ERR(config_load("verbose=yes", &cfg), TP_OK);
	CHECK(cfg && cfg->n_tokens == 1);
	config_free(cfg);
	CHECK_ERR(config_load(NULL, &cfg), TP_OK);
	CHECK(cfg && cfg->n_tokens == 1);
	config_free(cfg);
	snprintf(reserved, sizeof(reserved), "config=%s/missing.conf", tmpdir);
	CHECK_ERR(config_load(reserved, &cfg), TP_ERR_CONFIG);
	log = take_log();
	CHECK(count(log, ": error: ") == 1 && strstr(log, "missing.conf"));
	free(log);
	/* a named file that is missing, a directory, invalid */
	setenv("TANG_PKCS11_CONF", "/nonexistent/tang-pkcs11.conf", 1);
	CHECK_ERR(config_load(NULL, &cfg), TP_ERR_CONFIG);
	setenv("TANG_PKCS11_CONF", tmpdir, 1);
	CHECK_ERR(config_load(NULL, &cfg), TP_ERR_CONFIG);
	write_file("broken.conf", "{\"tokens\":[{}]}");
	snprintf(path, sizeof(path), "%s/broken.conf", tmpdir);
	setenv("TANG_PKCS11_CONF", path, 1);
	CHECK_ERR(config_load(NULL, &cfg), TP_ERR_CONFIG);
	log = take_log();
	CHECK(count(log, ": error: ") == 3);
	free(log);
	/* an oversized file */
	{
		FILE *f;
		snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
		f = fopen(path, "w");
		fputs("{\"tokens\":[]", f);
		for (int i = 0; i < 1100 * 1024; i++)
			fputc(' ', f);
		fputs("}", f);
		fclose(f);
		setenv("TANG_PKCS11_CONF", path, 1);
		CHECK_ERR(config_load(NULL, &cfg), TP_ERR_CONFIG);
		log = take_log();
		CHECK(count(log, ": error: ") == 1 && strstr(log, "too large"));
		free(log);
	}
	/* nothing named, no default file: zero tokens (only checkable when
	 * the build's default path does not exist here) */
	unsetenv("TANG_PKCS11_CONF");
	if (access(TP_DEFAULT_CONF, F_OK) != 0) {
		CHECK_ERR(config_load("verbose=yes", &cfg), TP_OK);
		CHECK(cfg && cfg->n_tokens == 0 && cfg->path == NULL);
		config_free(cfg);
		setenv("TANG_PKCS11_CONF", "", 1);
		CHECK_ERR(config_load("config=", &cfg), TP_OK);
		CHECK(cfg && cfg->n_tokens == 0);
		config_free(cfg);
	}
	log = take_log();
	CHECK(count(log, ": error: ") == 0);
	free(log);
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(logpath, sizeof(logpath), "%s/module.log", tmpdir);
	setenv("TANG_PKCS11_LOG", logpath, 1);
	log_open();
	defaults();
	recognised();
	adv_forms();
	invalid();
	loading();
	log_close();
	{
		char cmd[4300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	return test_exit("config");
}
