/* libFuzzer: HTTP response handling.  A loopback server in this process
 * answers every request with the input's bytes (after the first one) and
 * closes; the first byte picks the client:
 *   0  util/http.c alone (GET: status, framing, caps)
 *   1  GET /adv through tang/server.c (fetch, then adv_verify of the body)
 *   2  POST /rec through tang_recover (status mapping, the JWK reply, the
 *      point check and unblinding)
 * The exchange key for 2 comes from the fixture advertisement. */
#include "fuzz.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tang/server.h"
#include "util/http.h"

static int lfd;
static char url[64];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *answer;
static size_t answer_len;
static tp_exchange_key *keys;
static size_t n_keys;

static void read_request(int c)
{
	char buf[16384];
	size_t n = 0, need = 0;
	char *end = NULL;

	while (n < sizeof(buf) - 1) {
		ssize_t r = recv(c, buf + n, sizeof(buf) - 1 - n, 0);

		if (r <= 0)
			return;
		n += (size_t)r;
		buf[n] = 0;
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");

			need = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (end && n >= need)
			return;
	}
}

static void *serve(void *arg)
{
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		struct timeval tv = { 2, 0 };

		if (c < 0)
			continue;
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		read_request(c);
		pthread_mutex_lock(&mu);
		for (size_t off = 0; off < answer_len;) {
			ssize_t w = send(c, answer + off, answer_len - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
		pthread_mutex_unlock(&mu);
		close(c);
	}
	return arg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	pthread_t th;
	char *adv = fuzz_read(FUZZ_ADV);
	tp_tang_server *srv;

	fuzz_setup();
	http_global_init();
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
		abort();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	if (pthread_create(&th, NULL, serve, NULL) != 0)
		abort();
	/* The fixture's exchange key (offline: a configured adv). */
	srv = tang_server_new(url, FUZZ_THP, adv, 1);
	if (!srv || tang_server_keys(srv, 0, &keys, &n_keys) != TP_OK || n_keys == 0)
		abort();
	tang_server_free(srv);
	free(adv);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tp_tang_server *srv = NULL;
	tp_exchange_key *k = NULL;
	tp_http_reply r;
	uint8_t z[TP_EC_MAX_FIELD];
	size_t nk = 0;

	if (size == 0)
		return 0;
	pthread_mutex_lock(&mu);
	free(answer);
	answer = malloc(size);
	if (!answer)
		abort();
	memcpy(answer, data + 1, size - 1);
	answer_len = size - 1;
	pthread_mutex_unlock(&mu);

	switch (data[0] % 3) {
	case 0:
		if (http_request(url, NULL, NULL, 0, 1, 0, &r) == TP_OK)
			http_reply_clear(&r);
		break;
	case 1:
		srv = tang_server_new(url, FUZZ_THP, NULL, 1);
		if (srv && tang_server_keys(srv, 0, &k, &nk) == TP_OK)
			free(k);
		break;
	default:
		srv = tang_server_new(url, FUZZ_THP, NULL, 1);
		if (srv)
			(void)tang_recover(srv, &keys[0], keys[0].point, keys[0].point_len, z,
					   keys[0].curve->field_len);
		break;
	}
	tang_server_free(srv);
	return 0;
}
