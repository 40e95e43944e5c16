/* tp-outage: Tang stopped or hanging.
 *
 * The derive fails with CKR_DEVICE_ERROR within the token's timeout (5 s in
 * with-tangd's configuration) plus a margin, says why in the log and in
 * ulDeviceError, and meanwhile another thread's C_GetTokenInfo,
 * C_GetSlotList, C_GetSessionInfo and C_OpenSession return at once (no lock
 * held across network I/O).  When Tang is back, the derive works again. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tang-pkcs11.h"
#include "tp_test.h"

#define TIMEOUT 5.0 /* the fixture's "timeout" */
#define MARGIN 5.0
#define QUICK 1.0   /* a call that needs no network: generous bound */

static CK_SLOT_ID slot;
static CK_SESSION_HANDLE other;
static volatile int running;

typedef struct {
	int rounds;
	double worst;
	const char *worst_call;
	int errors;
} probe_t;

static void timed(probe_t *pr, const char *name, CK_RV rv, double t0)
{
	double dt = tp_now() - t0;
	if (dt > pr->worst) {
		pr->worst = dt;
		pr->worst_call = name;
	}
	if (rv != CKR_OK) {
		pr->errors++;
		printf("# probe: %s -> %s\n", name, tp_rv_name(rv));
	}
}

static void *prober(void *arg)
{
	probe_t *pr = arg;
	while (__atomic_load_n(&running, __ATOMIC_SEQ_CST)) {
		CK_TOKEN_INFO ti;
		CK_SLOT_ID slots[8];
		CK_ULONG n = 8;
		CK_SESSION_INFO si;
		CK_SESSION_HANDLE s;
		double t0 = tp_now();
		timed(pr, "C_GetTokenInfo", P->C_GetTokenInfo(slot, &ti), t0);
		t0 = tp_now();
		timed(pr, "C_GetSlotList", P->C_GetSlotList(CK_TRUE, slots, &n), t0);
		t0 = tp_now();
		timed(pr, "C_GetSessionInfo", P->C_GetSessionInfo(other, &si), t0);
		t0 = tp_now();
		CK_RV rv = P->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
		timed(pr, "C_OpenSession", rv, t0);
		if (rv == CKR_OK) {
			t0 = tp_now();
			timed(pr, "C_CloseSession", P->C_CloseSession(s), t0);
		}
		pr->rounds++;
		usleep(20000);
	}
	return NULL;
}

typedef struct {
	EVP_PKEY *peer;
	uint8_t raw[1 + 2 * TP_P521_LEN];
	uint8_t z[TP_P521_LEN];
} peer_t;

static void new_peer(peer_t *p, tp_server_key *k)
{
	p->peer = tp_ec_gen("P-521");
	REQUIRE(tp_ec_point(p->peer, p->raw, sizeof p->raw) == sizeof p->raw);
	REQUIRE(tp_ecdh(p->peer, k->pkey, p->z) == TP_P521_LEN);
}

static void outage(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, tp_server_key *k,
		   const char *what, CK_ULONG want_deverr, const char *log_word)
{
	const char *log = tp_env("TANG_PKCS11_LOG");
	probe_t pr = { 0 };
	pthread_t th;
	peer_t p;
	uint8_t out[128];
	size_t ol = 0;

	new_peer(&p, k);
	size_t off = tp_file_size(log);
	__atomic_store_n(&running, 1, __ATOMIC_SEQ_CST);
	pthread_create(&th, NULL, prober, &pr);
	usleep(50000);
	double t0 = tp_now();
	CK_RV rv = tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw, CKK_GENERIC_SECRET,
			     0, out, &ol);
	double dt = tp_now() - t0;
	usleep(50000);
	__atomic_store_n(&running, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);

	tp_note("%s: derive -> %s after %.2f s; other thread: %d rounds, slowest %s %.3f s",
		what, tp_rv_name(rv), dt, pr.rounds, pr.worst_call ? pr.worst_call : "-", pr.worst);
	CHECKF(rv == CKR_DEVICE_ERROR, "%s: expected CKR_DEVICE_ERROR, got %s", what, tp_rv_name(rv));
	CHECKF(dt < TIMEOUT + MARGIN, "%s: derive returned after %.1f s (timeout %.0f s)", what, dt,
	       TIMEOUT);
	CHECKF(pr.rounds >= 1, "%s: the other thread completed no round", what);
	CHECKF(pr.worst < QUICK, "%s: %s took %.2f s in another thread during the exchange", what,
	       pr.worst_call, pr.worst);
	CHECKF(pr.errors == 0, "%s: %d calls failed in the other thread", what, pr.errors);
	if (dt > 2.0)
		CHECKF(pr.rounds >= 5, "%s: other thread only completed %d rounds in %.1f s", what,
		       pr.rounds, dt);

	CK_SESSION_INFO si;
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECKF(si.ulDeviceError == want_deverr, "%s: ulDeviceError %lu, expected %lu", what,
	       (unsigned long)si.ulDeviceError, (unsigned long)want_deverr);
	char *text = tp_read_file(log, off);
	tp_note("module log: %s", text ? text : "(none)");
	CHECKF(tp_contains_ci(text, log_word), "%s: module log does not say \"%s\"", what, log_word);
	CHECKF(tp_contains_ci(text, tp_env("TANG_URL")), "%s: module log does not name the URL", what);
	free(text);
	EVP_PKEY_free(p.peer);
}

static void works(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, tp_server_key *k, const char *what)
{
	peer_t p;
	uint8_t out[128];
	size_t ol = 0;
	new_peer(&p, k);
	CK_RV rv = tp_derive(s, priv, CKD_NULL, NULL, 0, p.raw, sizeof p.raw, CKK_GENERIC_SECRET, 0,
			     out, &ol);
	CHECKF(rv == CKR_OK, "%s: derive -> %s", what, tp_rv_name(rv));
	if (rv == CKR_OK)
		CHECK_MEM(out, ol, p.z, TP_P521_LEN, what);
	EVP_PKEY_free(p.peer);
	/* ulDeviceError tells the last exchange: 0 once one worked again. */
	CK_SESSION_INFO si;
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECKF(si.ulDeviceError == 0, "%s: ulDeviceError %lu after a success", what,
	       (unsigned long)si.ulDeviceError);
}

/* A fresh initialization while Tang is down: the search succeeds without
 * Tang keys and ulDeviceError says why; once Tang is back the same search
 * finds the key and ulDeviceError is 0. */
static void search_during_outage(tp_server_key *k)
{
	CK_SESSION_INFO si;

	tp_tang("stop");
	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = tp_open(tp_slot("tang"));
	CHECKF(tp_find_key(s, CKO_PRIVATE_KEY, k->id) == CK_INVALID_HANDLE,
	       "Tang key found although the advertisement cannot be had");
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECKF(si.ulDeviceError == TANG_PKCS11_DEVERR_UNREACHABLE,
	       "search with Tang down: ulDeviceError %lu, want %lu", (unsigned long)si.ulDeviceError,
	       (unsigned long)TANG_PKCS11_DEVERR_UNREACHABLE);
	tp_tang("start");
	sleep(3);   /* a failed fetch is not retried for 2 s (docs/errors.md) */
	CHECKF(tp_find_key(s, CKO_PRIVATE_KEY, k->id) != CK_INVALID_HANDLE,
	       "Tang key not found once the server is back");
	CHECK_RV(P->C_GetSessionInfo(s, &si), CKR_OK);
	CHECKF(si.ulDeviceError == 0, "search with Tang up: ulDeviceError %lu",
	       (unsigned long)si.ulDeviceError);
}

int main(void)
{
	tp_server_key k;
	tp_load();
	REQUIRE_RV(tp_initialize(NULL), CKR_OK);
	REQUIRE(tp_server_keys(&k, 1, false) == 1);
	slot = tp_slot("tang");
	CK_SESSION_HANDLE s = tp_open(slot);
	other = tp_open(slot);
	CK_OBJECT_HANDLE priv = tp_find_key(s, CKO_PRIVATE_KEY, k.id);
	REQUIRE(priv != CK_INVALID_HANDLE);

	tp_case_begin("Tang up: derive works");
	works(s, priv, &k, "baseline");
	tp_case_end();

	tp_case_begin("Tang stopped (connection refused): CKR_DEVICE_ERROR, others unblocked");
	tp_tang("stop");
	outage(s, priv, &k, "stopped", TANG_PKCS11_DEVERR_UNREACHABLE, "unreachable");
	tp_case_end();

	tp_case_begin("Tang hanging (accepts, never answers): CKR_DEVICE_ERROR within the timeout");
	int port = atoi(tp_env("TANG_PORT"));
	int fd = tp_blackhole(&port);
	outage(s, priv, &k, "hanging", TANG_PKCS11_DEVERR_TIMEOUT, "timeout");
	close(fd);
	tp_case_end();

	tp_case_begin("Tang started again: derive works");
	tp_tang("start");
	works(s, priv, &k, "after restart");
	tp_case_end();

	tp_case_begin("search in a fresh initialization while Tang is down: no Tang keys, ulDeviceError");
	search_during_outage(&k);
	tp_case_end();

	CHECK_RV(P->C_Finalize(NULL), CKR_OK);
	tp_server_key_free(&k);
	return tp_exit();
}
