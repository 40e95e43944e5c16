/* tp-config: configuration lookup and validation, end to end.
 *
 * Each case runs in its own child process that loads the module afresh, so
 * the environment (TANG_PKCS11_CONF, TANG_PKCS11_LOG) is the case's own.
 *   - no configuration at all: zero slots
 *   - invalid configurations: CKR_FUNCTION_FAILED, exactly one log line
 *     naming the file and the problem; a later good C_Initialize works
 *   - pReserved "verbose=yes config=PATH other=1" wins over the environment
 *   - two tokens: slot IDs 1 and 2 in file order, with their labels
 *   - advertisement unreachable (refused, hanging) or untrusted: a search
 *     returns no Tang keys, logs why, within the timeout
 *   - "adv" given as a file relative to the config file, or inline; "thp" S1
 * Runs under tests/fixtures/with-tangd. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "tp_test.h"

static char tmp[4096];
static int case_no;

static char *path_in_tmp(const char *name)
{
	static char buf[8][4200];
	static int i;
	char *p = buf[i++ % 8];
	snprintf(p, 4200, "%s/%s", tmp, name);
	return p;
}

/* A complete token entry for the fixture's tangd. */
static void token_json(char *out, size_t n, const char *label, const char *url, const char *thp,
		       int timeout)
{
	snprintf(out, n,
		 "{ \"label\": \"%s\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" }, \"timeout\": %d }",
		 label, url, thp, timeout);
}

static char *conf_file(const char *name, const char *text)
{
	char *p = path_in_tmp(name);
	tp_write_file(p, text);
	return p;
}

static char *good_conf(const char *name, const char *label)
{
	char tok[1024], text[1200];
	token_json(tok, sizeof tok, label, tp_env("TANG_URL"), tp_env("TANG_THP"), 5);
	snprintf(text, sizeof text, "{ \"tokens\": [ %s ] }\n", tok);
	return conf_file(name, text);
}

/* ---- running a case in a child ---------------------------------------- */

static char case_log[4200];

typedef void (*case_fn)(const void *arg);

static void run_case(const char *name, case_fn fn, const void *arg)
{
	case_no++;
	snprintf(case_log, sizeof case_log, "%s/case-%02d.log", tmp, case_no);
	unlink(case_log);
	fflush(stdout);
	tp_case_begin(name);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		setenv("TANG_PKCS11_LOG", case_log, 1);
		unsetenv("TANG_PKCS11_DEBUG");
		tp_failures = 0;
		tp_load();
		fn(arg);
		fflush(stdout);
		_exit(tp_failures ? 1 : 0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (WIFSIGNALED(st))
			tp_fail(__FILE__, __LINE__, "%s: child killed by signal %d", name, WTERMSIG(st));
		else
			tp_fail(__FILE__, __LINE__, "%s: failed", name);
	}
	tp_case_end();
}

static char *log_text(void)
{
	return tp_read_file(case_log, 0);
}

static CK_ULONG slot_count(CK_BBOOL present)
{
	CK_ULONG n = 99;
	CHECK_RV(P->C_GetSlotList(present, NULL, &n), CKR_OK);
	return n;
}

static size_t count_objects(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE s = tp_open(slot);
	CK_OBJECT_HANDLE h[16];
	size_t n = tp_find(s, NULL, 0, h, 16);
	CHECK_RV(P->C_CloseSession(s), CKR_OK);
	return n;
}

/* ---- cases ---------------------------------------------------------------- */

static void case_no_config(const void *arg)
{
	(void)arg;
	unsetenv("TANG_PKCS11_CONF");
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	CHECK(slot_count(CK_FALSE) == 0);
	CHECK(slot_count(CK_TRUE) == 0);
	CK_INFO info;
	CHECK_RV(P->C_GetInfo(&info), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	/* p11-kit may pass words without config= */
	CHECK_RV(tp_initialize("verbose=yes"), CKR_OK);
	CHECK(slot_count(CK_FALSE) == 0);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

typedef struct {
	const char *name;
	const char *text;     /* NULL: use path as given */
	const char *path;     /* NULL: a file in tmp */
	const char *keywords; /* '|'-separated, one must be in the log line */
	bool via_reserved;
} bad_t;

static void case_bad(const void *arg)
{
	const bad_t *b = arg;
	char file[64];
	const char *path = b->path;
	if (!path) {
		snprintf(file, sizeof file, "bad-%02d.conf", case_no);
		path = conf_file(file, b->text);
	}
	CK_RV rv;
	if (b->via_reserved) {
		char res[4300];
		unsetenv("TANG_PKCS11_CONF");
		snprintf(res, sizeof res, "config=%s", path);
		rv = tp_initialize(res);
	} else {
		setenv("TANG_PKCS11_CONF", path, 1);
		rv = P->C_Initialize(NULL);
	}
	CHECKF(rv == CKR_FUNCTION_FAILED, "%s: C_Initialize: expected CKR_FUNCTION_FAILED, got %s",
	       b->name, tp_rv_name(rv));
	if (rv == CKR_OK)
		P->C_Finalize(NULL);
	CK_ULONG n;
	CHECK_RV(P->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);

	char *log = log_text();
	tp_note("log: %s", log ? log : "(no log file)");
	int lines = tp_count_lines(log);
	CHECKF(lines == 1, "%s: %d log lines, expected exactly one", b->name, lines);
	CHECKF(tp_contains_ci(log, path), "%s: the log line does not name the file %s", b->name, path);
	bool kw = b->keywords == NULL;
	if (b->keywords) {
		char words[256];
		snprintf(words, sizeof words, "%s", b->keywords);
		for (char *w = strtok(words, "|"); w; w = strtok(NULL, "|"))
			kw |= tp_contains_ci(log, w);
	}
	CHECKF(kw, "%s: the log line does not name the problem (%s)", b->name, b->keywords);
	free(log);

	/* A failed C_Initialize leaves nothing behind: a good one works. */
	setenv("TANG_PKCS11_CONF", good_conf("good-after-bad.conf", "tang"), 1);
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	CHECK(slot_count(CK_TRUE) == 1);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void check_label(CK_SLOT_ID slot, const char *want)
{
	CK_TOKEN_INFO ti;
	char l[33];
	CHECK_RV(P->C_GetTokenInfo(slot, &ti), CKR_OK);
	tp_unpad(ti.label, 32, l);
	CHECKF(strcmp(l, want) == 0, "slot %lu: label \"%s\", expected \"%s\"", (unsigned long)slot, l,
	       want);
}

static void case_reserved(const void *arg)
{
	(void)arg;
	char res[4400];
	char *envconf = good_conf("from-env.conf", "from-env");
	char *resconf = good_conf("from-reserved.conf", "from-reserved");

	/* pReserved wins over the environment, whatever other words it has. */
	setenv("TANG_PKCS11_CONF", envconf, 1);
	snprintf(res, sizeof res, "verbose=yes config=%s other=1", resconf);
	CHECK_RV(tp_initialize(res), CKR_OK);
	CHECK(slot_count(CK_TRUE) == 1);
	check_label(1, "from-reserved");
	CHECK(count_objects(1) == 2);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);

	/* no config= word: the environment */
	CHECK_RV(tp_initialize("verbose=yes other=1"), CKR_OK);
	check_label(1, "from-env");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);

	/* no environment: pReserved alone */
	unsetenv("TANG_PKCS11_CONF");
	snprintf(res, sizeof res, "config=%s", resconf);
	CHECK_RV(tp_initialize(res), CKR_OK);
	check_label(1, "from-reserved");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);

	/* the environment alone, C_Initialize(NULL) (pkcs11-tool --module) */
	setenv("TANG_PKCS11_CONF", envconf, 1);
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	check_label(1, "from-env");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

static void case_two_tokens(const void *arg)
{
	(void)arg;
	char t1[1024], t2[1024], text[2200];
	token_json(t1, sizeof t1, "first", tp_env("TANG_URL"), tp_env("TANG_THP"), 5);
	token_json(t2, sizeof t2, "second", tp_env("TANG_URL"), tp_env("TANG_THP"), 5);
	snprintf(text, sizeof text, "{ \"tokens\": [ %s, %s ] }\n", t1, t2);
	setenv("TANG_PKCS11_CONF", conf_file("two.conf", text), 1);
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	CK_SLOT_ID slots[4] = { 0 };
	CK_ULONG n = 4;
	CHECK_RV(P->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	CHECKF(n == 2 && slots[0] == 1 && slots[1] == 2, "slots: %lu [%lu, %lu], expected [1, 2]",
	       (unsigned long)n, (unsigned long)slots[0], (unsigned long)slots[1]);
	check_label(1, "first");
	check_label(2, "second");
	CK_TOKEN_INFO a, b;
	CHECK_RV(P->C_GetTokenInfo(1, &a), CKR_OK);
	CHECK_RV(P->C_GetTokenInfo(2, &b), CKR_OK);
	CHECKF(memcmp(a.serialNumber, b.serialNumber, 16) != 0, "two tokens with one serial");

	/* Both work: derive on the second one. */
	tp_server_key k;
	REQUIRE(tp_server_keys(&k, 1, false) == 1);
	CK_SESSION_HANDLE s = tp_open(2);
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, k.id);
	CHECK(priv != CK_INVALID_HANDLE);
	if (priv) {
		EVP_PKEY *peer = tp_ec_gen("P-521");
		uint8_t raw[133], z[66], out[128];
		size_t ol = 0;
		tp_ec_point(peer, raw, sizeof raw);
		tp_ecdh(peer, k.pkey, z);
		CHECK_RV(tp_derive(s, priv, CKD_NULL, NULL, 0, raw, sizeof raw, CKK_GENERIC_SECRET, 0,
				   out, &ol), CKR_OK);
		CHECK_MEM(out, ol, z, 66, "derive on slot 2");
		EVP_PKEY_free(peer);
	}
	CHECK(count_objects(1) == 2);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
}

/* One token's server down does not affect another token. */
static void case_one_of_two_down(const void *arg)
{
	(void)arg;
	char t1[1024], t2[1024], url[64], text[2200];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", tp_closed_port());
	token_json(t1, sizeof t1, "down", url, tp_env("TANG_THP"), 2);
	token_json(t2, sizeof t2, "up", tp_env("TANG_URL"), tp_env("TANG_THP"), 5);
	snprintf(text, sizeof text, "{ \"tokens\": [ %s, %s ] }\n", t1, t2);
	setenv("TANG_PKCS11_CONF", conf_file("one-down.conf", text), 1);
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	check_label(1, "down");
	check_label(2, "up");
	CHECK(count_objects(1) == 0);
	CHECK(count_objects(2) == 2);
	CK_TOKEN_INFO ti;
	CHECK_RV(P->C_GetTokenInfo(1, &ti), CKR_OK);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
}

typedef struct {
	const char *how; /* refused | hanging | untrusted */
} adv_t;

/* Another thread's slot and token queries while a search waits for Tang. */
static volatile int probing;
static double probe_worst;
static int probe_rounds, probe_errors;

static void *prober(void *arg)
{
	(void)arg;
	while (__atomic_load_n(&probing, __ATOMIC_SEQ_CST)) {
		CK_TOKEN_INFO ti;
		CK_ULONG n = 0;
		double t0 = tp_now();
		probe_errors += P->C_GetTokenInfo(1, &ti) != CKR_OK;
		probe_errors += P->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK;
		double dt = tp_now() - t0;
		if (dt > probe_worst)
			probe_worst = dt;
		probe_rounds++;
		usleep(20000);
	}
	return NULL;
}

static void case_adv_unreachable(const void *arg)
{
	const adv_t *a = arg;
	char url[64], tok[1024], text[1200];
	int fd = -1, port = 0;
	const char *thp = tp_env("TANG_THP");
	const int timeout = 2;
	const char *word = NULL;

	if (strcmp(a->how, "refused") == 0) {
		port = tp_closed_port();
		word = "unreachable";
	} else if (strcmp(a->how, "hanging") == 0) {
		fd = tp_blackhole(&port);
		word = "timeout";
	} else {
		port = atoi(tp_env("TANG_PORT"));
		/* a well-formed S256 thumbprint of no key of this server */
		thp = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
		word = "untrusted|404|trust";
	}
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	token_json(tok, sizeof tok, "tang", url, thp, timeout);
	snprintf(text, sizeof text, "{ \"tokens\": [ %s ] }\n", tok);
	setenv("TANG_PKCS11_CONF", conf_file("unreachable.conf", text), 1);

	double t0 = tp_now();
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	CK_TOKEN_INFO ti;
	CHECK_RV(P->C_GetTokenInfo(1, &ti), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(1);
	CHECKF(tp_now() - t0 < 1.0, "initialization and session took %.1f s", tp_now() - t0);
	CK_OBJECT_HANDLE h[8];
	pthread_t th;
	__atomic_store_n(&probing, 1, __ATOMIC_SEQ_CST);
	pthread_create(&th, NULL, prober, NULL);
	t0 = tp_now();
	size_t n = tp_find(s, NULL, 0, h, 8);
	double dt = tp_now() - t0;
	__atomic_store_n(&probing, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	tp_note("%s: %zu objects after %.2f s; other thread: %d rounds, slowest %.3f s", a->how,
		n, dt, probe_rounds, probe_worst);
	CHECKF(probe_worst < 1.0, "%s: C_GetTokenInfo/C_GetSlotList took %.2f s in another thread "
	       "during the search", a->how, probe_worst);
	CHECK(probe_errors == 0);
	if (dt > 1.0)
		CHECKF(probe_rounds >= 5, "%s: the other thread only did %d rounds in %.1f s", a->how,
		       probe_rounds, dt);
	CHECKF(n == 0, "%s: %zu objects, expected no Tang keys", a->how, n);
	CHECKF(dt < timeout + 5.0, "%s: the search took %.1f s (timeout %d s)", a->how, dt, timeout);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof cls } };
	t0 = tp_now();
	n = tp_find(s, t, 1, h, 8);
	CHECK(n == 0);
	CHECKF(tp_now() - t0 < timeout + 5.0, "second search took %.1f s", tp_now() - t0);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);

	char *log = log_text();
	tp_note("log: %s", log ? log : "(no log file)");
	CHECKF(tp_contains_ci(log, url), "%s: the log does not name %s", a->how, url);
	bool said = false;
	char words[64];
	snprintf(words, sizeof words, "%s", word);
	for (char *w = strtok(words, "|"); w; w = strtok(NULL, "|"))
		said |= tp_contains_ci(log, w);
	CHECKF(said, "%s: the log does not say why (%s)", a->how, word);
	free(log);
	if (fd >= 0)
		close(fd);
}

/* "adv" as a file path relative to the config file's directory, or inline;
 * trust then comes from the given advertisement (no thp). */
static void case_adv_given(const void *arg)
{
	const char *how = arg;
	char dir[4200], cmd[8600], text[16384];
	snprintf(dir, sizeof dir, "%s/cfgdir-%s", tmp, how);
	mkdir(dir, 0700);
	snprintf(cmd, sizeof cmd, "curl -sf -o '%s/adv.jws' '%s/adv'", dir, tp_env("TANG_URL"));
	REQUIRE(system(cmd) == 0);
	if (strcmp(how, "file") == 0) {
		snprintf(text, sizeof text,
			 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", "
			 "\"adv\": \"adv.jws\" } } ] }\n", tp_env("TANG_URL"));
	} else {
		char path[4300];
		snprintf(path, sizeof path, "%s/adv.jws", dir);
		char *jws = tp_read_file(path, 0);
		REQUIRE(jws != NULL);
		snprintf(text, sizeof text,
			 "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", "
			 "\"adv\": %s } } ] }\n", tp_env("TANG_URL"), jws);
		free(jws);
	}
	char conf[4300];
	snprintf(conf, sizeof conf, "%s/tang-pkcs11.conf", dir);
	tp_write_file(conf, text);
	setenv("TANG_PKCS11_CONF", conf, 1);
	REQUIRE(chdir("/") == 0); /* relative to the file, not to the cwd */

	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	tp_server_key k;
	REQUIRE(tp_server_keys(&k, 1, false) == 1);
	CK_SESSION_HANDLE s = tp_open(1);
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, k.id);
	CHECKF(priv != CK_INVALID_HANDLE, "adv %s: no Tang key", how);
	if (priv) {
		EVP_PKEY *peer = tp_ec_gen("P-521");
		uint8_t raw[133], z[66], out[128];
		size_t ol = 0;
		tp_ec_point(peer, raw, sizeof raw);
		tp_ecdh(peer, k.pkey, z);
		CHECK_RV(tp_derive(s, priv, CKD_SHA256_KDF, NULL, 0, raw, sizeof raw,
				   CKK_GENERIC_SECRET, 0, out, &ol), CKR_OK);
		uint8_t want[66];
		tp_x963(EVP_sha256(), z, 66, NULL, 0, want, 66);
		CHECK_MEM(out, ol, want, 66, "derive with a given adv");
		EVP_PKEY_free(peer);
	}
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
}

/* thp given as the S1 thumbprint of the signing key (clevis accepts it). */
static void case_thp_s1(const void *arg)
{
	(void)arg;
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "jose jwk thp -a S1 -i \"$(grep -l '\"ES512\"' '%s'/*.jwk | head -n1)\" > '%s/s1.thp'",
		 tp_env("TANG_DB"), tmp);
	REQUIRE(system(cmd) == 0);
	char *thp = tp_read_file(path_in_tmp("s1.thp"), 0);
	REQUIRE(thp != NULL);
	thp[strcspn(thp, "\r\n")] = 0;
	CHECK(strlen(thp) == 27);
	char tok[1024], text[1200];
	token_json(tok, sizeof tok, "tang", tp_env("TANG_URL"), thp, 5);
	snprintf(text, sizeof text, "{ \"tokens\": [ %s ] }\n", tok);
	setenv("TANG_PKCS11_CONF", conf_file("s1.conf", text), 1);
	CHECK_RV(P->C_Initialize(NULL), CKR_OK);
	CHECKF(count_objects(1) == 2, "thp S1: no Tang keys");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	free(thp);
}

/* Initialize with an inline adv; true when the module refused to trust it:
 * either C_Initialize failed (CKR_FUNCTION_FAILED) or the token has no keys. */
static bool adv_refused(json_t *adv_json, const char *name)
{
	char *a = json_dumps(adv_json, JSON_COMPACT);
	size_t len = strlen(a) + 512;
	char *text = malloc(len);
	snprintf(text, len, "{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", "
		 "\"adv\": %s } } ] }\n", tp_env("TANG_URL"), a);
	setenv("TANG_PKCS11_CONF", conf_file(name, text), 1);
	free(text);
	free(a);
	/* Checked on first need, not at load (docs/configuration.md). */
	CK_RV rv = P->C_Initialize(NULL);
	CHECK_RV(rv, CKR_OK);
	if (rv != CKR_OK)
		return false;
	size_t n = count_objects(1);
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_note("%s: %zu objects", name, n);
	return n == 0;
}

static json_t *fetch_adv(const char *what)
{
	char cmd[8400], path[4200];
	snprintf(path, sizeof path, "%s/fetched-adv.jws", tmp);
	snprintf(cmd, sizeof cmd, "curl -sf -o '%s' '%s/adv'", path, tp_env("TANG_URL"));
	REQUIRE(system(cmd) == 0);
	json_t *j = json_load_file(path, 0, NULL);
	CHECKF(j != NULL, "%s: the advertisement is not JSON", what);
	return j;
}

/* JWS checks: flattened and general form, every verify key must have
 * signed, a tampered payload is refused. */
static void case_adv_signatures(const void *arg)
{
	(void)arg;
	char cmd[8400];
	const char *db = tp_env("TANG_DB");

	json_t *flat = fetch_adv("one signing key");
	REQUIRE(flat && json_object_get(flat, "signature"));
	json_t *tampered = json_deep_copy(flat);
	char *payload = strdup(json_string_value(json_object_get(flat, "payload")));
	size_t pl = strlen(payload);
	payload[pl / 2] = payload[pl / 2] == 'A' ? 'B' : 'A';
	json_object_set_new(tampered, "payload", json_string(payload));
	CHECKF(adv_refused(tampered, "tampered.conf"), "an advertisement with a tampered payload was trusted");
	CHECKF(!adv_refused(flat, "flat.conf"), "the untouched flattened advertisement was refused");
	free(payload);
	json_decref(tampered);
	json_decref(flat);

	/* A second current signing key: /adv is now signed twice (general form). */
	snprintf(cmd, sizeof cmd,
		 "set -e; cd '%s'; jose jwk gen -i '{\"alg\":\"ES512\"}' -o sig2.tmp; "
		 /* "--": a thumbprint may begin with '-' (base64url). */
		 "mv -- sig2.tmp \"$(jose jwk thp -i sig2.tmp -a S256).jwk.new\"; "
		 "for f in *.jwk.new; do mv -- \"$f\" \"${f%%.new}\"; echo \"${f%%.jwk.new}\" > '%s/sig2.thp'; done",
		 db, tmp);
	REQUIRE(system(cmd) == 0);
	json_t *gen = fetch_adv("two signing keys");
	json_t *sigs = json_object_get(gen, "signatures");
	REQUIRE(json_array_size(sigs) == 2);

	CHECKF(!adv_refused(gen, "general.conf"), "a general-form advertisement (2 signatures) was refused");

	json_t *one = json_object();
	json_object_set(one, "payload", json_object_get(gen, "payload"));
	json_object_set(one, "protected", json_object_get(json_array_get(sigs, 0), "protected"));
	json_object_set(one, "signature", json_object_get(json_array_get(sigs, 0), "signature"));
	CHECKF(adv_refused(one, "one-of-two.conf"),
	       "an advertisement listing two verify keys but signed by one was trusted");
	json_decref(one);
	json_decref(gen);

	/* Through the network, pinned by either signing key. */
	char *thp2 = tp_read_file(path_in_tmp("sig2.thp"), 0);
	REQUIRE(thp2 != NULL);
	thp2[strcspn(thp2, "\n")] = 0;
	const char *pins[2] = { tp_env("TANG_THP"), thp2 };
	for (int i = 0; i < 2; i++) {
		char tok[1024], text[1200];
		token_json(tok, sizeof tok, "tang", tp_env("TANG_URL"), pins[i], 5);
		snprintf(text, sizeof text, "{ \"tokens\": [ %s ] }\n", tok);
		setenv("TANG_PKCS11_CONF", conf_file("general-net.conf", text), 1);
		CHECK_RV(P->C_Initialize(NULL), CKR_OK);
		CHECKF(count_objects(1) == 2, "two signing keys, pinned by key %d: no Tang keys", i + 1);
		CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	}
	char path[4400];
	snprintf(path, sizeof path, "%s/%s.jwk", db, thp2);
	CHECK(unlink(path) == 0);
	free(thp2);
}

int main(void)
{
	snprintf(tmp, sizeof tmp, "%s", tp_env("TANG_TMP"));

	if (access("/etc/tang-pkcs11/tang-pkcs11.conf", F_OK) == 0 ||
	    access("/usr/local/etc/tang-pkcs11/tang-pkcs11.conf", F_OK) == 0)
		tp_note("SKIP no-config: a default configuration file exists on this machine");
	else
		run_case("no configuration at all: zero slots", case_no_config, NULL);

	char tok[512];
	token_json(tok, sizeof tok, "tang", tp_env("TANG_URL"), tp_env("TANG_THP"), 5);
	static char texts[16][4096];
	int ti = 0;
#define T(...) (snprintf(texts[ti], sizeof texts[ti], __VA_ARGS__), texts[ti++])
	const char *url = tp_env("TANG_URL"), *thp = tp_env("TANG_THP");
	bad_t bads[] = {
		{ "not JSON", "{ \"tokens\": [ { \"label\": \"tang\", ", NULL, NULL, false },
		{ "empty file", "", NULL, NULL, false },
		{ "top level is an array", T("[ %s ]", tok), NULL, NULL, false },
		{ "tokens is not an array", T("{ \"tokens\": %s }", tok), NULL, "tokens", false },
		{ "token without label",
		  T("{ \"tokens\": [ { \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" } } ] }", url, thp),
		  NULL, "label", false },
		{ "label longer than 32 bytes",
		  T("{ \"tokens\": [ { \"label\": \"%s\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" } } ] }",
		    "abcdefghijklmnopqrstuvwxyz0123456", url, thp), NULL, "label", false },
		{ "duplicate labels", T("{ \"tokens\": [ %s, %s ] }", tok, tok), NULL, "label", false },
		{ "binding without url",
		  T("{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"thp\": \"%s\" } } ] }", thp),
		  NULL, "url", false },
		{ "url is not a string",
		  T("{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": 8080, \"thp\": \"%s\" } } ] }", thp),
		  NULL, "url", false },
		{ "binding without thp or adv",
		  T("{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\" } } ] }", url),
		  NULL, "thp", false },
		{ "token without a binding", "{ \"tokens\": [ { \"label\": \"tang\" } ] }", NULL,
		  "tang|binding", false },
		{ "timeout is a string",
		  T("{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" }, \"timeout\": \"5\" } ] }", url, thp),
		  NULL, "timeout", false },
		{ "timeout is negative",
		  T("{ \"tokens\": [ { \"label\": \"tang\", \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" }, \"timeout\": -1 } ] }", url, thp),
		  NULL, "timeout", false },
		{ "file named by TANG_PKCS11_CONF does not exist", NULL, path_in_tmp("no-such.conf"),
		  NULL, false },
		{ "TANG_PKCS11_CONF names a directory", NULL, tmp, NULL, false },
		{ "file named by pReserved config= does not exist", NULL,
		  path_in_tmp("no-such-either.conf"), NULL, true },
		{ "invalid file named by pReserved config=",
		  T("{ \"tokens\": [ { \"label\": 7, \"tang\": { \"url\": \"%s\", \"thp\": \"%s\" } } ] }", url, thp),
		  NULL, "label", true },
	};
#undef T
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		char name[160];
		snprintf(name, sizeof name, "bad config: %s -> CKR_FUNCTION_FAILED, one log line",
			 bads[i].name);
		run_case(name, case_bad, &bads[i]);
	}

	run_case("pReserved \"verbose=yes config=PATH other=1\", precedence over the environment",
		 case_reserved, NULL);
	run_case("two tokens: slots 1 and 2 in file order with their labels", case_two_tokens, NULL);
	run_case("two tokens, the first one's server down: the second works", case_one_of_two_down, NULL);
	static const adv_t refused = { "refused" }, hanging = { "hanging" }, untrusted = { "untrusted" };
	run_case("advertisement unreachable (refused): no keys, logged, within the timeout",
		 case_adv_unreachable, &refused);
	run_case("advertisement unreachable (hanging): no keys, logged, within the timeout",
		 case_adv_unreachable, &hanging);
	run_case("advertisement not trusted (thp of no signing key): no keys, logged",
		 case_adv_unreachable, &untrusted);
	run_case("adv given as a file relative to the configuration file", case_adv_given, "file");
	run_case("adv given inline", case_adv_given, "inline");
	run_case("thp as an S1 thumbprint", case_thp_s1, NULL);
	run_case("advertisement JWS: flattened and general form, every verify key signed, "
		 "tampering refused", case_adv_signatures, NULL);
	return tp_exit();
}
