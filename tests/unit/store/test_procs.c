/* The store across real processes (fork): the PIN counter is exact under
 * concurrent wrong PINs, 4 writers x 200 objects give exactly 800 while a
 * reader checks every object it sees, and writers killed with SIGKILL in
 * the middle of their writes leave every acknowledged object intact. */
#include "store_test.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static char *scratch;

/* Waits for pid; its exit status, or -1 if it did not exit normally. */
static int wait_exit(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void setup_user_pin(store *st)
{
	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_OK);
	store_logout(st);
}

/* Child: n logins with a wrong PIN; exit code = how many said WRONG_PIN
 * (the others must say LOCKED). */
static int child_wrong_pins(const char *dir, int n)
{
	store *st = test_open(dir);
	int wrong = 0, other = 0;

	for (int i = 0; i < n; i++) {
		store_status s = test_login(st, STORE_USER, "bad");

		if (s == STORE_WRONG_PIN)
			wrong++;
		else if (s != STORE_LOCKED)
			other++;
	}
	store_close(st);
	return other ? 100 : wrong;
}

static void test_pin_counter(void)
{
	char *dir = test_path(scratch, "pins");
	store *st = test_create(dir, true);
	store_info info;
	pid_t pids[4];
	int wrong = 0;

	setup_user_pin(st);
	/* One child, one failure; the parent's handle sees it. */
	pids[0] = fork();
	if (pids[0] == 0)
		_exit(child_wrong_pins(dir, 1));
	CHECK(wait_exit(pids[0]) == 1);
	CHECK_ST(store_get_info(st, &info), STORE_OK);
	CHECK(info.user_fails == 1);
	/* A child logs in right: reset for everyone. */
	pids[0] = fork();
	if (pids[0] == 0) {
		store *c = test_open(dir);
		int rc = test_login(c, STORE_USER, TEST_USER_PIN) == STORE_OK ? 0 : 1;

		store_close(c);
		_exit(rc);
	}
	CHECK(wait_exit(pids[0]) == 0);
	CHECK_ST(store_get_info(st, &info), STORE_OK);
	CHECK(info.user_fails == 0);

	/* 4 processes x 4 wrong PINs at once: exactly STORE_PIN_MAX_TRIES
	 * are counted as wrong, the rest find the PIN locked. */
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(child_wrong_pins(dir, 4));
	}
	for (int i = 0; i < 4; i++) {
		int rc = wait_exit(pids[i]);

		CHECK(rc >= 0 && rc <= 4);
		wrong += rc;
	}
	CHECK(wrong == STORE_PIN_MAX_TRIES);
	CHECK_ST(store_get_info(st, &info), STORE_OK);
	CHECK(info.user_fails == STORE_PIN_MAX_TRIES);
	CHECK_ST(test_login(st, STORE_USER, TEST_USER_PIN), STORE_LOCKED);

	/* The SO, in another process, resets it; the private object made
	 * before survives. */
	pids[0] = fork();
	if (pids[0] == 0) {
		store *c = test_open(dir);
		int rc = 0;

		if (test_login(c, STORE_SO, TEST_SO_PIN) != STORE_OK ||
		    store_init_user_pin(c, (const uint8_t *)"fresh", 5) != STORE_OK)
			rc = 1;
		store_close(c);
		_exit(rc);
	}
	CHECK(wait_exit(pids[0]) == 0);
	CHECK_ST(test_login(st, STORE_USER, "fresh"), STORE_OK);
	store_close(st);
	free(dir);
}

/* Child: adds count public objects numbered base.. */
static int child_writer(const char *dir, unsigned base, unsigned count)
{
	store *st = test_open(dir);
	test_obj o;
	uint8_t id[STORE_ID_LEN];
	int failures = 0;

	for (unsigned i = 0; i < count; i++) {
		test_obj_init(&o, base + i, false);
		if (store_object_add(st, false, o.attrs, 6, id) != STORE_OK)
			failures++;
	}
	store_close(st);
	return failures ? 1 : 0;
}

/* Child: lists until it has seen `want` objects, checking each. */
static int child_reader(const char *dir, size_t want)
{
	store *st = test_open(dir);
	int bad = 0;
	size_t n = 0;

	for (int round = 0; round < 100000 && n < want && !bad; round++) {
		store_object **objs;

		if (store_objects_list(st, &objs, &n) != STORE_OK) {
			bad = 1;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			long k = test_obj_number(objs[i]);

			if (k < 0 || !test_obj_matches(objs[i], (unsigned)k))
				bad = 1;
		}
		store_objects_release(objs, n);
		usleep(2000);
	}
	store_close(st);
	return bad || n != want ? 1 : 0;
}

static void test_concurrent_writers(void)
{
	char *dir = test_path(scratch, "writers");
	store *st = test_create(dir, true);
	pid_t pids[5];
	store_object **objs;
	size_t n;
	static int seen[800];

	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(child_writer(dir, (unsigned)i * 200, 200));
	}
	pids[4] = fork();
	if (pids[4] == 0)
		_exit(child_reader(dir, 800));
	for (int i = 0; i < 5; i++)
		CHECK(wait_exit(pids[i]) == 0);
	CHECK_ST(store_objects_list(st, &objs, &n), STORE_OK);
	CHECK(n == 800);
	for (size_t i = 0; i < n; i++) {
		long k = test_obj_number(objs[i]);

		CHECK(k >= 0 && k < 800 && test_obj_matches(objs[i], (unsigned)k));
		if (k >= 0 && k < 800)
			seen[k]++;
	}
	for (int i = 0; i < 800; i++)
		CHECK(seen[i] == 1);
	store_objects_release(objs, n);
	store_close(st);
	free(dir);
}

/* Child: adds objects base.. forever, and after each OK writes its number
 * to fd (so the parent knows exactly which adds were acknowledged). */
static void child_acked_writer(const char *dir, unsigned base, int fd)
{
	store *st = test_open(dir);
	test_obj o;
	uint8_t id[STORE_ID_LEN];

	for (unsigned i = 0; ; i++) {
		/* Big values too, so that a kill can land inside a write. */
		test_obj_init(&o, base + i, false);
		if (store_object_add(st, false, o.attrs, 6, id) != STORE_OK)
			_exit(1);
		if (write(fd, &(uint32_t){ base + i }, 4) != 4)
			_exit(1);
	}
}

static void test_kill_writers(void)
{
	char *dir = test_path(scratch, "killed");
	store *st = test_create(dir, true);
	static uint8_t acked[100000];
	size_t n_acked = 0, n;
	store_object **objs;

	srand((unsigned)time(NULL));
	for (unsigned round = 0; round < 6; round++) {
		int pipefd[2];
		pid_t pid;
		uint32_t k;
		struct timespec delay = { 0, (long)(20 + rand() % 150) * 1000000L };

		CHECK(pipe(pipefd) == 0);
		pid = fork();
		if (pid == 0) {
			close(pipefd[0]);
			child_acked_writer(dir, round * 10000, pipefd[1]);
		}
		close(pipefd[1]);
		nanosleep(&delay, NULL);
		kill(pid, SIGKILL);
		CHECK(wait_exit(pid) == -1);
		while (read(pipefd[0], &k, 4) == 4)
			if (k < sizeof(acked) && !acked[k]) {
				acked[k] = 1;
				n_acked++;
			}
		close(pipefd[0]);
	}
	/* A fresh handle ("the next process"): every acknowledged object is
	 * there and intact; anything else there is intact too (an add may
	 * have completed without being acknowledged). */
	{
		store *fresh = test_open(dir);
		size_t found = 0;

		CHECK_ST(store_objects_list(fresh, &objs, &n), STORE_OK);
		for (size_t i = 0; i < n; i++) {
			long k = test_obj_number(objs[i]);

			CHECK(k >= 0 && test_obj_matches(objs[i], (unsigned)k));
			if (k >= 0 && (size_t)k < sizeof(acked) && acked[k])
				found++;
		}
		CHECK(found == n_acked);
		CHECK(n >= n_acked && n <= n_acked + 6);
		store_objects_release(objs, n);
		fprintf(stderr, "kill test: %zu acknowledged, %zu present\n", n_acked, n);
		/* The next writer cleans leftover temp files. */
		{
			test_obj o;
			uint8_t id[STORE_ID_LEN];
			DIR *d;
			struct dirent *de;
			int temps = 0;

			test_obj_init(&o, 99999, false);
			CHECK_ST(store_object_add(fresh, false, o.attrs, 6, id), STORE_OK);
			d = opendir(dir);
			while (d && (de = readdir(d)))
				if (!strncmp(de->d_name, ".tmp-", 5))
					temps++;
			if (d)
				closedir(d);
			CHECK(temps == 0);
		}
		store_close(fresh);
	}
	CHECK(n_acked > 0);
	store_close(st);
	free(dir);
}

int main(void)
{
	scratch = test_tmpdir();
	test_pin_counter();
	test_concurrent_writers();
	test_kill_writers();
	test_rmtree(scratch);
	free(scratch);
	return test_exit("store-procs");
}
