/* util/http.c against a tiny in-process HTTP server that behaves like tangd
 * (never closes a connection): framing by Content-Length, status pass-through,
 * no redirects, body cap, deadline, unreachable, fresh connection each time. */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/http.h"

enum mode { ANSWER, SILENT };

static struct {
	int fd;
	int port;
	enum mode mode;
	const char *response;       /* head; body appended */
	size_t body_len;            /* body of 'x' */
	char request[8192];
	int connections;
	pthread_mutex_t lock;
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The answer for the next connections (under the lock). */
static void answer(int mode, const char *response, size_t body_len)
{
	pthread_mutex_lock(&srv.lock);
	srv.mode = mode;
	srv.response = response;
	srv.body_len = body_len;
	pthread_mutex_unlock(&srv.lock);
}

/* The last request the server read (a copy taken under the lock). */
static const char *request(void)
{
	static char copy[8192];

	pthread_mutex_lock(&srv.lock);
	memcpy(copy, srv.request, sizeof(copy));
	pthread_mutex_unlock(&srv.lock);
	return copy;
}

static void serve(int c)
{
	char buf[8192];
	size_t got = 0;
	ssize_t n;

	/* read the request head (+ a small body) */
	while (got < sizeof(buf) - 1) {
		struct pollfd p = { c, POLLIN, 0 };
		if (poll(&p, 1, got && strstr(buf, "\r\n\r\n") ? 100 : 5000) <= 0)
			break;
		n = read(c, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
	}
	buf[got] = '\0';
	pthread_mutex_lock(&srv.lock);
	memcpy(srv.request, buf, got + 1);
	/* The main thread sets the answer before the client connects; the
	 * lock makes that visible to ThreadSanitizer too. */
	int mode = srv.mode;
	const char *response = srv.response;
	size_t body_len = srv.body_len;
	pthread_mutex_unlock(&srv.lock);
	if (mode == ANSWER) {
		char *big = malloc(body_len + 1);
		memset(big, 'x', body_len);
		if (write(c, response, strlen(response)) < 0 ||
		    write(c, big, body_len) < 0)
			fprintf(stderr, "server write failed\n");
		free(big);
	}
	/* like tangd: keep the connection until the client goes away */
	while (read(c, buf, sizeof(buf)) > 0)
		;
}

static void *server_main(void *arg)
{
	for (;;) {
		int c = accept(srv.fd, NULL, NULL);
		if (c < 0)
			return NULL;
		pthread_mutex_lock(&srv.lock);
		srv.connections++;
		pthread_mutex_unlock(&srv.lock);
		serve(c);
		close(c);
	}
	return arg;
}

static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0)
		exit(1);
	*port = ntohs(a.sin_port);
	return fd;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char url[128];

static void ok_and_framing(void)
{
	tp_http_reply r;
	double t0 = now();

	answer(ANSWER, "HTTP/1.1 200 OK\r\nContent-Type: application/jose+json\r\nContent-Length: 5\r\n\r\n", 5);
	CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 0, &r), TP_OK);
	CHECK(r.status == 200 && r.len == 5 && memcmp(r.body, "xxxxx", 6) == 0);
	/* framed by Content-Length: no waiting for an EOF that never comes */
	CHECK(now() - t0 < 2.0);
	CHECK(strncmp(request(), "GET /adv/ HTTP/1.1\r\n", 20) == 0);
	http_reply_clear(&r);
	CHECK(r.body == NULL && r.len == 0);

	/* empty body: still a valid NUL-terminated buffer */
	answer(ANSWER, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0);
	CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 0, &r), TP_OK);
	CHECK(r.status == 404 && r.len == 0 && r.body && r.body[0] == '\0');
	http_reply_clear(&r);

	/* POST: body and content type as given, no Expect */
	answer(ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 2);
	CHECK_ERR(http_request(url, "application/jwk+json", "{\"a\":1}", 7, 5, 0, &r), TP_OK);
	CHECK(r.status == 200 && r.len == 2);
	CHECK(strncmp(request(), "POST /adv/ HTTP/1.1\r\n", 21) == 0);
	CHECK(strstr(request(), "\r\nContent-Type: application/jwk+json\r\n") != NULL);
	CHECK(strstr(request(), "\r\nContent-Length: 7\r\n") != NULL);
	CHECK(strstr(request(), "Expect") == NULL);
	CHECK(strstr(request(), "\r\n\r\n{\"a\":1}") != NULL);
	http_reply_clear(&r);

	/* no redirects followed */
	answer(ANSWER, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n", 0);
	CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 0, &r), TP_OK);
	CHECK(r.status == 302);
	http_reply_clear(&r);
}

static void fresh_connections(void)
{
	tp_http_reply r;
	int before;

	answer(ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", 1);
	pthread_mutex_lock(&srv.lock);
	before = srv.connections;
	pthread_mutex_unlock(&srv.lock);
	for (int i = 0; i < 3; i++) {
		CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 0, &r), TP_OK);
		http_reply_clear(&r);
	}
	usleep(100000);
	pthread_mutex_lock(&srv.lock);
	CHECK(srv.connections - before == 3);
	pthread_mutex_unlock(&srv.lock);
}

static void caps(void)
{
	tp_http_reply r;

	/* announced too large */
	answer(ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n", 300000);
	CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 0, &r), TP_ERR_BAD_REPLY);
	CHECK(r.body == NULL);
	/* not announced (chunked would be similar): the write callback stops it */
	answer(ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", 2000);
	CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 1000, &r), TP_ERR_BAD_REPLY);
	CHECK_ERR(http_request(url, NULL, NULL, 0, 5, 2000, &r), TP_OK);
	CHECK(r.len == 2000);
	http_reply_clear(&r);
	/* garbage instead of HTTP */
	answer(ANSWER, "hello\r\n\r\n", 0);
	CHECK(http_request(url, NULL, NULL, 0, 2, 0, &r) != TP_OK);
}

static void failures(void)
{
	tp_http_reply r;
	char dead[128];
	int port, fd;
	double t0;

	/* a port nobody listens on */
	fd = listen_any(&port);
	close(fd);
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/adv/", port);
	CHECK_ERR(http_request(dead, NULL, NULL, 0, 5, 0, &r), TP_ERR_UNREACHABLE);
	/* a server that never answers: the deadline holds */
	answer(SILENT, NULL, 0);
	t0 = now();
	CHECK_ERR(http_request(url, NULL, NULL, 0, 1, 0, &r), TP_ERR_TIMEOUT);
	CHECK(now() - t0 < 4.0 && now() - t0 >= 0.9);
	/* a listening socket whose backlog nobody accepts: also a timeout */
	fd = listen_any(&port);
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/", port);
	t0 = now();
	CHECK_ERR(http_request(dead, NULL, NULL, 0, 1, 0, &r), TP_ERR_TIMEOUT);
	CHECK(now() - t0 < 4.0);
	close(fd);
	/* only http and https */
	CHECK_ERR(http_request("file:///etc/passwd", NULL, NULL, 0, 1, 0, &r), TP_ERR_INPUT);
	CHECK_ERR(http_request("ftp://127.0.0.1/", NULL, NULL, 0, 1, 0, &r), TP_ERR_INPUT);
	CHECK_ERR(http_request("dict://127.0.0.1/", NULL, NULL, 0, 1, 0, &r), TP_ERR_INPUT);
}

int main(void)
{
	pthread_t th;

	http_global_init();
	http_global_init();
	srv.fd = listen_any(&srv.port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/adv/", srv.port);
	pthread_create(&th, NULL, server_main, NULL);
	ok_and_framing();
	fresh_connections();
	caps();
	failures();
	shutdown(srv.fd, SHUT_RDWR);
	close(srv.fd);
	pthread_join(th, NULL);
	return test_exit("http");
}
