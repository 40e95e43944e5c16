/* The store in one process: lifecycle, keys, PINs and counters across two
 * handles, tamper detection of every byte, no plaintext on disk, the
 * generation-driven cache, lease parking, damaged and newer stores left
 * byte-identical, temp-file cleanup, threads on one handle. */
#include "store_test.h"

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "store/file.h"

static char *scratch;

static char *new_store_dir(const char *name)
{
	return test_path(scratch, name);
}

static void test_uninitialized(void)
{
	char *dir = new_store_dir("absent");
	store *st = NULL;
	store_info info;
	store_object **objs;
	size_t n;
	test_obj o;
	uint8_t id[STORE_ID_LEN];

	CHECK_ST(store_open(dir, &st), STORE_UNINITIALIZED);
	CHECK(st != NULL);
	CHECK_ST(store_get_info(st, &info), STORE_UNINITIALIZED);
	CHECK(!info.is_initialized);
	CHECK_ST(store_set_root(st, test_root), STORE_UNINITIALIZED);
	CHECK_ST(store_objects_list(st, &objs, &n), STORE_UNINITIALIZED);
	test_obj_init(&o, 1, false);
	CHECK(store_object_add(st, false, o.attrs, 6, id) != STORE_OK);
	store_close(st);
	/* An empty directory is uninitialized too. */
	CHECK(mkdir(dir, 0700) == 0);
	CHECK_ST(store_open(dir, &st), STORE_UNINITIALIZED);
	store_close(st);
	free(dir);
}

static void test_lifecycle(void)
{
	char *dir = new_store_dir("life");
	store *st = test_create(dir, true);
	store *other;
	store_info info;
	test_obj pub, priv;
	uint8_t pub_id[STORE_ID_LEN], priv_id[STORE_ID_LEN];
	store_object *obj = NULL;
	char *sealed = NULL;

	CHECK_ST(store_get_info(st, &info), STORE_OK);
	CHECK(info.is_initialized && info.pin_model && !info.user_pin_set);
	CHECK(info.user_fails == 0 && info.so_fails == 0);
	CHECK_ST(store_sealed_root(st, &sealed), STORE_OK);
	CHECK(sealed && !strcmp(sealed, TEST_SEALED));
	free(sealed);

	test_obj_init(&pub, 1, false);
	test_obj_init(&priv, 2, true);
	CHECK_ST(store_object_add(st, false, pub.attrs, 6, pub_id), STORE_OK);
	/* Private objects need a user login; no user PIN yet. */
	CHECK_ST(store_object_add(st, true, priv.attrs, 6, priv_id), STORE_NO_KEY);
	CHECK_ST(test_login(st, STORE_USER, TEST_USER_PIN), STORE_PIN_NOT_SET);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_NO_KEY);
	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK(store_logged_in(st) == STORE_SO);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_OK);
	/* The SO does not see or write private objects. */
	CHECK_ST(store_object_add(st, true, priv.attrs, 6, priv_id), STORE_NO_KEY);
	store_logout(st);
	CHECK_ST(test_login(st, STORE_USER, TEST_USER_PIN), STORE_OK);
	CHECK_ST(store_object_add(st, true, priv.attrs, 6, priv_id), STORE_OK);
	CHECK(test_count(st) == 2);

	/* A second handle ("another process"): public without login. */
	other = test_open(dir);
	CHECK(test_count(other) == 1);
	CHECK_ST(store_object_get(other, pub_id, &obj), STORE_OK);
	CHECK(obj && test_obj_matches(obj, 1) && !obj->is_private);
	store_object_release(obj);
	CHECK_ST(store_object_get(other, priv_id, &obj), STORE_NOT_FOUND);
	CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
	CHECK(test_count(other) == 2);
	CHECK_ST(store_object_get(other, priv_id, &obj), STORE_OK);
	CHECK(obj && test_obj_matches(obj, 2) && obj->is_private);
	store_object_release(obj);

	/* Replace and remove, seen by the other handle. */
	test_obj_init(&pub, 3, false);
	CHECK_ST(store_object_replace(st, pub_id, false, pub.attrs, 6), STORE_OK);
	CHECK_ST(store_object_get(other, pub_id, &obj), STORE_OK);
	CHECK(obj && test_obj_matches(obj, 3));
	store_object_release(obj);
	CHECK_ST(store_object_remove(other, priv_id), STORE_OK);
	CHECK_ST(store_object_remove(st, priv_id), STORE_NOT_FOUND);
	CHECK(test_count(st) == 1);

	/* Logout hides private objects again. */
	CHECK_ST(store_object_add(st, true, priv.attrs, 6, priv_id), STORE_OK);
	store_logout(other);
	CHECK(test_count(other) == 1);
	CHECK_ST(store_object_remove(other, priv_id), STORE_NOT_FOUND);

	/* Lease: forget drops R and every decrypted object; the login is
	 * parked and returns with R, without the PIN. */
	store_forget(st);
	CHECK(!store_has_root(st));
	CHECK(test_count(st) == (size_t)-1);
	CHECK_ST(store_object_get(st, pub_id, &obj), STORE_NO_KEY);
	CHECK_ST(store_set_root(st, test_root), STORE_OK);
	CHECK(store_logged_in(st) == STORE_USER);
	CHECK(test_count(st) == 2);
	store_logout(st);
	store_forget(st);
	CHECK_ST(store_set_root(st, test_root), STORE_OK);
	CHECK(store_logged_in(st) == STORE_NOBODY);
	CHECK(test_count(st) == 1);

	/* A wrong R does not authenticate the metadata. */
	{
		uint8_t bad[STORE_ROOT_LEN];

		memcpy(bad, test_root, sizeof(bad));
		bad[0] ^= 1;
		CHECK_ST(store_set_root(other, bad), STORE_DAMAGED);
	}

	/* Re-create wipes everything; the other handle notices the new
	 * store and drops its keys. */
	store_close(st);
	st = test_create(dir, true);
	CHECK(test_count(st) == 0);
	CHECK_ST(store_object_get(other, pub_id, &obj), STORE_NO_KEY);
	CHECK_ST(store_set_root(other, test_root), STORE_OK);
	CHECK(test_count(other) == 0);
	store_close(other);
	store_close(st);
	free(dir);
}

static void test_pins(void)
{
	char *dir = new_store_dir("pins");
	store *a = test_create(dir, true);
	store *b;
	store_info info;
	test_obj priv;
	uint8_t id[STORE_ID_LEN];

	CHECK_ST(test_login(a, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(a, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_OK);
	store_logout(a);
	CHECK_ST(test_login(a, STORE_USER, TEST_USER_PIN), STORE_OK);
	test_obj_init(&priv, 7, true);
	CHECK_ST(store_object_add(a, true, priv.attrs, 6, id), STORE_OK);
	store_logout(a);

	/* Failures counted persistently, seen by the other handle. */
	b = test_open(dir);
	CHECK_ST(test_login(a, STORE_USER, "wrong"), STORE_WRONG_PIN);
	CHECK_ST(store_get_info(b, &info), STORE_OK);
	CHECK(info.user_fails == 1 && info.so_fails == 0);
	CHECK_ST(test_login(b, STORE_USER, "wrong"), STORE_WRONG_PIN);
	CHECK_ST(store_get_info(a, &info), STORE_OK);
	CHECK(info.user_fails == 2);
	/* Success resets. */
	CHECK_ST(test_login(a, STORE_USER, TEST_USER_PIN), STORE_OK);
	CHECK_ST(store_get_info(b, &info), STORE_OK);
	CHECK(info.user_fails == 0);
	store_logout(a);

	/* Up to the limit, alternating handles; then locked, even with the
	 * right PIN, and nothing more is counted. */
	for (int i = 0; i < STORE_PIN_MAX_TRIES; i++)
		CHECK_ST(test_login(i % 2 ? a : b, STORE_USER, "nope"), STORE_WRONG_PIN);
	CHECK_ST(store_get_info(a, &info), STORE_OK);
	CHECK(info.user_fails == STORE_PIN_MAX_TRIES);
	CHECK_ST(test_login(a, STORE_USER, TEST_USER_PIN), STORE_LOCKED);
	CHECK_ST(test_login(b, STORE_USER, "nope"), STORE_LOCKED);
	CHECK_ST(store_get_info(a, &info), STORE_OK);
	CHECK(info.user_fails == STORE_PIN_MAX_TRIES);

	/* The SO resets the user PIN; the private object survives. */
	CHECK_ST(test_login(b, STORE_SO, "bad-so"), STORE_WRONG_PIN);
	CHECK_ST(store_get_info(a, &info), STORE_OK);
	CHECK(info.so_fails == 1);
	CHECK_ST(test_login(b, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(b, (const uint8_t *)"new-user", 8), STORE_OK);
	store_logout(b);
	CHECK_ST(store_get_info(a, &info), STORE_OK);
	CHECK(info.user_fails == 0 && info.so_fails == 0 && info.user_pin_set);
	CHECK_ST(test_login(a, STORE_USER, TEST_USER_PIN), STORE_WRONG_PIN);
	CHECK_ST(test_login(a, STORE_USER, "new-user"), STORE_OK);
	CHECK(test_count(a) == 1);
	{
		store_object *obj = NULL;

		CHECK_ST(store_object_get(a, id, &obj), STORE_OK);
		CHECK(obj && test_obj_matches(obj, 7));
		store_object_release(obj);
	}

	/* Change PINs: the old one is checked and counted. */
	CHECK_ST(store_change_pin(b, STORE_USER, (const uint8_t *)"x", 1,
				  (const uint8_t *)"u2", 2), STORE_WRONG_PIN);
	CHECK_ST(store_get_info(b, &info), STORE_OK);
	CHECK(info.user_fails == 1);
	CHECK_ST(store_change_pin(b, STORE_USER, (const uint8_t *)"new-user", 8,
				  (const uint8_t *)"u2", 2), STORE_OK);
	CHECK_ST(store_change_pin(b, STORE_SO, (const uint8_t *)TEST_SO_PIN, strlen(TEST_SO_PIN),
				  (const uint8_t *)"s2", 2), STORE_OK);
	CHECK_ST(store_get_info(b, &info), STORE_OK);
	CHECK(info.user_fails == 0);
	store_logout(a);
	CHECK_ST(test_login(a, STORE_USER, "new-user"), STORE_WRONG_PIN);
	CHECK_ST(test_login(a, STORE_USER, "u2"), STORE_OK);
	CHECK(test_count(a) == 1);
	CHECK_ST(test_login(a, STORE_SO, TEST_SO_PIN), STORE_WRONG_PIN);
	CHECK_ST(test_login(a, STORE_SO, "s2"), STORE_OK);
	/* Without R nothing can be checked, and nothing is counted. */
	store_forget(b);
	CHECK_ST(test_login(b, STORE_USER, "whatever"), STORE_NO_KEY);
	CHECK_ST(store_get_info(b, &info), STORE_OK);
	CHECK(info.user_fails == 0);
	store_close(a);
	store_close(b);
	free(dir);
}

static void test_nopin(void)
{
	char *dir = new_store_dir("nopin");
	store *st = test_create(dir, false);
	store *other;
	test_obj priv;
	uint8_t id[STORE_ID_LEN];
	store_info info;

	CHECK_ST(store_get_info(st, &info), STORE_OK);
	CHECK(!info.pin_model);
	CHECK_ST(store_login(st, STORE_USER, NULL, 0), STORE_OK);
	test_obj_init(&priv, 9, true);
	CHECK_ST(store_object_add(st, true, priv.attrs, 6, id), STORE_OK);
	other = test_open(dir);
	CHECK(test_count(other) == 0);
	/* A PIN passed anyway is ignored. */
	CHECK_ST(test_login(other, STORE_USER, "anything"), STORE_OK);
	CHECK(test_count(other) == 1);
	CHECK_ST(test_login(other, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(other, (const uint8_t *)"x", 1), STORE_INVALID);
	store_close(other);
	store_close(st);
	free(dir);
}

/* The only object file of dir (the one name of 32 hex digits). */
static char *only_object_file(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *found = NULL;

	while (d && (de = readdir(d)))
		if (strlen(de->d_name) == 32 && !found)
			found = test_path(dir, de->d_name);
	if (d)
		closedir(d);
	return found;
}

static void test_tamper(void)
{
	char *dir = new_store_dir("tamper");
	store *st = test_create(dir, true);
	store *other;
	test_obj o;
	uint8_t id[STORE_ID_LEN];
	char *file;
	uint8_t *orig, *buf;
	size_t len = 0, undetected = 0;
	store_stats stats;

	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_OK);
	store_logout(st);
	CHECK_ST(test_login(st, STORE_USER, TEST_USER_PIN), STORE_OK);
	for (int priv = 0; priv < 2; priv++) {
		test_obj_init(&o, 20 + priv, priv);
		CHECK_ST(store_object_add(st, priv, o.attrs, 6, id), STORE_OK);
		file = only_object_file(dir);
		CHECK(file != NULL);
		orig = test_read_file(file, &len);
		buf = malloc(len);
		/* Flip one bit of every byte, one byte at a time (the bit
		 * position walks, so every position is hit). */
		for (size_t i = 0; i < len; i++) {
			{
				memcpy(buf, orig, len);
				buf[i] ^= (uint8_t)(1u << (i % 8));
				test_write_file(file, buf, len);
				other = test_open(dir);
				CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
				if (test_count(other) != 0)
					undetected++;
				store_get_stats(other, &stats);
				CHECK(stats.bad_files == 1);
				store_close(other);
			}
		}
		CHECK(undetected == 0);
		/* Truncated, and extended. */
		test_write_file(file, orig, len - 1);
		other = test_open(dir);
		CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
		CHECK(test_count(other) == 0);
		store_close(other);
		memcpy(buf, orig, len);
		test_write_file(file, orig, len);
		{
			FILE *f = fopen(file, "ab");

			fputc(0, f);
			fclose(f);
		}
		other = test_open(dir);
		CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
		CHECK(test_count(other) == 0);
		store_close(other);
		/* Restored: fine again. */
		test_write_file(file, orig, len);
		other = test_open(dir);
		CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
		CHECK(test_count(other) == 1);
		store_close(other);
		/* Under another name (object id in the AAD): refused. */
		{
			char *moved = test_path(dir, "00000000000000000000000000000000");

			CHECK(rename(file, moved) == 0);
			other = test_open(dir);
			CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
			CHECK(test_count(other) == 0);
			store_close(other);
			CHECK(rename(moved, file) == 0);
			free(moved);
		}
		/* Into another store (store id in the AAD, other keys): refused. */
		{
			char *dir2 = new_store_dir(priv ? "tamper3" : "tamper2");
			store *st2 = test_create(dir2, true);
			char *dst = test_path(dir2, strrchr(file, '/') + 1);

			CHECK_ST(test_login(st2, STORE_SO, TEST_SO_PIN), STORE_OK);
			CHECK_ST(store_init_user_pin(st2, (const uint8_t *)TEST_USER_PIN,
						     strlen(TEST_USER_PIN)), STORE_OK);
			test_write_file(dst, orig, len);
			other = test_open(dir2);
			CHECK_ST(test_login(other, STORE_USER, TEST_USER_PIN), STORE_OK);
			CHECK(test_count(other) == 0);
			store_get_stats(other, &stats);
			CHECK(stats.bad_files == 1);
			store_close(other);
			store_close(st2);
			free(dst);
			free(dir2);
		}
		CHECK_ST(store_object_remove(st, id), STORE_OK);
		free(orig);
		free(buf);
		free(file);
	}
	store_close(st);
	free(dir);
}

/* Does needle occur anywhere in any file of dir? */
static bool dir_contains(const char *dir, const void *needle, size_t nlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	while (d && (de = readdir(d))) {
		char *p = test_path(dir, de->d_name);
		size_t len;
		uint8_t *buf = test_read_file(p, &len);

		for (size_t i = 0; buf && len >= nlen && i <= len - nlen && !found; i++)
			if (!memcmp(buf + i, needle, nlen))
				found = true;
		free(buf);
		free(p);
	}
	if (d)
		closedir(d);
	return found;
}

static void test_no_plaintext(void)
{
	char *dir = new_store_dir("plain");
	store *st = test_create(dir, true);
	uint8_t id[STORE_ID_LEN];
	test_obj objs[8];

	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_OK);
	store_logout(st);
	CHECK_ST(test_login(st, STORE_USER, TEST_USER_PIN), STORE_OK);
	for (unsigned i = 0; i < 8; i++) {
		test_obj_init(&objs[i], 100 + i, i % 2);
		CHECK_ST(store_object_add(st, i % 2, objs[i].attrs, 6, id), STORE_OK);
	}
	/* Sanity of the search itself: the sealed string is in plain. */
	CHECK(dir_contains(dir, TEST_SEALED, strlen(TEST_SEALED)));
	for (unsigned i = 0; i < 8; i++) {
		CHECK(!dir_contains(dir, objs[i].label, strlen(objs[i].label)));
		CHECK(!dir_contains(dir, objs[i].id, sizeof(objs[i].id)));
		CHECK(!dir_contains(dir, objs[i].value, sizeof(objs[i].value)));
		CHECK(!dir_contains(dir, objs[i].value, 8));
		CHECK(!dir_contains(dir, objs[i].value + 24, 8));
	}
	CHECK(!dir_contains(dir, "label-", 6));
	CHECK(!dir_contains(dir, TEST_USER_PIN, strlen(TEST_USER_PIN)));
	CHECK(!dir_contains(dir, TEST_SO_PIN, strlen(TEST_SO_PIN)));
	CHECK(!dir_contains(dir, test_root, sizeof(test_root)));
	CHECK(!dir_contains(dir, test_root, 8));
	store_close(st);
	free(dir);
}

static void test_generation_cache(void)
{
	char *dir = new_store_dir("gen");
	store *a = test_create(dir, true);
	store *b;
	store_stats s0, s1;
	test_obj o;
	uint8_t id[STORE_ID_LEN], last[STORE_ID_LEN];

	for (unsigned i = 0; i < 50; i++) {
		test_obj_init(&o, i, false);
		CHECK_ST(store_object_add(a, false, o.attrs, 6, id), STORE_OK);
	}
	b = test_open(dir);
	CHECK(test_count(b) == 50);
	store_get_stats(b, &s0);
	CHECK(s0.decrypts == 50 && s0.rescans == 1);

	/* Unchanged: no listing, no reads. */
	CHECK(test_count(b) == 50);
	CHECK(test_count(b) == 50);
	store_get_stats(b, &s1);
	CHECK(s1.rescans == s0.rescans && s1.file_reads == s0.file_reads &&
	      s1.decrypts == s0.decrypts);

	/* One new object elsewhere: one listing, one decrypt. */
	test_obj_init(&o, 50, false);
	CHECK_ST(store_object_add(a, false, o.attrs, 6, last), STORE_OK);
	CHECK(test_count(b) == 51);
	store_get_stats(b, &s1);
	CHECK(s1.rescans == s0.rescans + 1 && s1.decrypts == s0.decrypts + 1 &&
	      s1.file_reads == s0.file_reads + 1);

	/* A replaced object: only it is read again. */
	s0 = s1;
	test_obj_init(&o, 60, false);
	CHECK_ST(store_object_replace(a, last, false, o.attrs, 6), STORE_OK);
	{
		store_object *obj = NULL;

		CHECK_ST(store_object_get(b, last, &obj), STORE_OK);
		CHECK(obj && test_obj_matches(obj, 60));
		store_object_release(obj);
	}
	store_get_stats(b, &s1);
	CHECK(s1.decrypts == s0.decrypts + 1);

	/* A removal: a listing, no decrypts. */
	s0 = s1;
	CHECK_ST(store_object_remove(a, last), STORE_OK);
	CHECK(test_count(b) == 50);
	store_get_stats(b, &s1);
	CHECK(s1.decrypts == s0.decrypts && s1.rescans == s0.rescans + 1);

	/* The writer's own handle never re-reads what it wrote. */
	store_get_stats(a, &s0);
	CHECK(test_count(a) == 50);
	store_get_stats(a, &s1);
	CHECK(s1.decrypts == 0);
	store_close(a);
	store_close(b);
	free(dir);
}

static void check_refused(const char *dir, store_status want)
{
	test_snapshot before = test_snap(dir), after;
	store *st = NULL;
	store_info info;
	store_create_args args = {
		.sealed_root = TEST_SEALED, .root = test_root,
		.so_pin = (const uint8_t *)TEST_SO_PIN, .so_pin_len = strlen(TEST_SO_PIN),
		.pin_model = true, .kdf_log2n = 10,
	};
	test_obj o;
	uint8_t id[STORE_ID_LEN];

	CHECK_ST(store_open(dir, &st), want);
	CHECK(st != NULL);
	CHECK_ST(store_state(st), want);
	CHECK_ST(store_get_info(st, &info), want);
	CHECK_ST(store_set_root(st, test_root), want);
	CHECK_ST(test_login(st, STORE_USER, TEST_USER_PIN), want);
	CHECK_ST(test_login(st, STORE_SO, "wrong"), want);
	CHECK_ST(store_create(st, &args), want);
	test_obj_init(&o, 1, false);
	CHECK(store_object_add(st, false, o.attrs, 6, id) != STORE_OK);
	store_close(st);
	after = test_snap(dir);
	CHECK(before.len > 0 && test_snap_eq(&before, &after));
	free(before.data);
	free(after.data);
}

static void test_damaged_and_newer(void)
{
	char *dir = new_store_dir("damaged");
	store *st = test_create(dir, true);
	char *meta = test_path(dir, "metadata");
	uint8_t *orig, *buf;
	size_t len = 0;
	test_obj o;
	uint8_t id[STORE_ID_LEN];

	test_obj_init(&o, 1, false);
	CHECK_ST(store_object_add(st, false, o.attrs, 6, id), STORE_OK);
	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)TEST_USER_PIN, strlen(TEST_USER_PIN)),
		 STORE_OK);
	store_close(st);
	orig = test_read_file(meta, &len);
	buf = malloc(len);

	/* Structurally damaged: bad magic, truncated, trailing byte, empty. */
	memcpy(buf, orig, len);
	buf[1] ^= 0xff;
	test_write_file(meta, buf, len);
	check_refused(dir, STORE_DAMAGED);
	test_write_file(meta, orig, len - 5);
	check_refused(dir, STORE_DAMAGED);
	memcpy(buf, orig, len);
	test_write_file(meta, buf, 0);
	check_refused(dir, STORE_DAMAGED);

	/* Newer format. */
	memcpy(buf, orig, len);
	buf[4] = STORE_FORMAT_VERSION + 1;
	test_write_file(meta, buf, len);
	check_refused(dir, STORE_NEWER_FORMAT);

	/* Well-formed but not authentic (a counter reset by hand): found
	 * out as soon as R is there; nothing is written. */
	memcpy(buf, orig, len);
	buf[28] = 5;   /* user_fails */
	test_write_file(meta, buf, len);
	{
		test_snapshot before = test_snap(dir), after;
		store *x = NULL;

		CHECK_ST(store_open(dir, &x), STORE_OK);
		CHECK_ST(store_set_root(x, test_root), STORE_DAMAGED);
		CHECK_ST(test_login(x, STORE_USER, "wrong"), STORE_NO_KEY);
		CHECK(store_object_add(x, false, o.attrs, 6, id) != STORE_OK);
		store_close(x);
		after = test_snap(dir);
		CHECK(test_snap_eq(&before, &after));
		free(before.data);
		free(after.data);
	}

	/* Restored: works again. */
	test_write_file(meta, orig, len);
	st = test_open(dir);
	CHECK(test_count(st) == 1);
	/* Damage arriving while a handle holds R. */
	memcpy(buf, orig, len);
	buf[len - 1] ^= 1;   /* the MAC */
	test_write_file(meta, buf, len);
	{
		test_snapshot before = test_snap(dir), after;

		CHECK_ST(store_state(st), STORE_DAMAGED);
		CHECK(store_object_add(st, false, o.attrs, 6, id) != STORE_OK);
		CHECK(test_login(st, STORE_USER, "wrong") != STORE_OK);
		after = test_snap(dir);
		CHECK(test_snap_eq(&before, &after));
		free(before.data);
		free(after.data);
	}
	store_close(st);
	free(orig);
	free(buf);
	free(meta);
	free(dir);
}

static void test_temp_files(void)
{
	char *dir = new_store_dir("temps");
	store *st = test_create(dir, true);
	char *tmp = test_path(dir, ".tmp-0123456789abcdef");
	char *bogus = test_path(dir, "0123456789abcdef0123456789abcdef");
	uint8_t junk[100];
	test_obj o;
	uint8_t id[STORE_ID_LEN];
	store *other;

	memset(junk, 0x42, sizeof(junk));
	test_write_file(tmp, junk, sizeof(junk));
	test_obj_init(&o, 1, false);
	CHECK_ST(store_object_add(st, false, o.attrs, 6, id), STORE_OK);
	/* Another handle ignores the temp file and a foreign "object". */
	test_write_file(tmp, junk, sizeof(junk));
	test_write_file(bogus, junk, sizeof(junk));
	other = test_open(dir);
	CHECK(test_count(other) == 1);
	/* Its next write removes the temp file (not the unknown object). */
	CHECK_ST(store_object_add(other, false, o.attrs, 6, id), STORE_OK);
	CHECK(access(tmp, F_OK) != 0);
	CHECK(access(bogus, F_OK) == 0);
	CHECK(test_count(other) == 2);
	store_close(other);
	store_close(st);
	free(tmp);
	free(bogus);
	free(dir);
}

/* HMAC (inside scrypt) pads short keys with zeros and hashes long ones:
 * without care "1234" and "1234\0\0" would be one PIN, and a long PIN's
 * SHA-256 would open it too.  Every distinct byte string is its own PIN. */
static void test_pin_spellings(void)
{
	char *dir = new_store_dir("spellings");
	store *st = test_create(dir, true);
	uint8_t long_pin[100], digest[32];
	unsigned int dlen = 0;

	memset(long_pin, 'p', sizeof(long_pin));
	CHECK(EVP_Digest(long_pin, sizeof(long_pin), digest, &dlen, EVP_sha256(), NULL) == 1);
	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)"1234", 4), STORE_OK);
	store_logout(st);
	CHECK_ST(store_login(st, STORE_USER, (const uint8_t *)"1234\0\0", 6), STORE_WRONG_PIN);
	CHECK_ST(store_login(st, STORE_USER, (const uint8_t *)"1234\0", 5), STORE_WRONG_PIN);
	CHECK_ST(store_login(st, STORE_USER, (const uint8_t *)"1234", 4), STORE_OK);
	store_logout(st);
	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, (const uint8_t *)"\0\0\0\0", 4), STORE_OK);
	store_logout(st);
	CHECK_ST(store_login(st, STORE_USER, (const uint8_t *)"", 0), STORE_WRONG_PIN);
	CHECK_ST(store_login(st, STORE_USER, (const uint8_t *)"\0", 1), STORE_WRONG_PIN);
	CHECK_ST(store_login(st, STORE_USER, (const uint8_t *)"\0\0\0\0", 4), STORE_OK);
	store_logout(st);
	CHECK_ST(test_login(st, STORE_SO, TEST_SO_PIN), STORE_OK);
	CHECK_ST(store_init_user_pin(st, long_pin, sizeof(long_pin)), STORE_OK);
	store_logout(st);
	CHECK_ST(store_login(st, STORE_USER, digest, sizeof(digest)), STORE_WRONG_PIN);
	CHECK_ST(store_login(st, STORE_USER, long_pin, sizeof(long_pin)), STORE_OK);
	store_close(st);
	free(dir);
}

static void *open_and_info(void *arg)
{
	store *st = NULL;
	store_info info;

	if (store_open(arg, &st) == STORE_OK)
		store_get_info(st, &info);
	store_close(st);
	return (void *)1;
}

/* Special files planted in a store directory: a FIFO as the lock file
 * must not block (it hung C_Initialize), a directory as the lock file
 * refuses writes as damage, an object file that is a FIFO is skipped. */
static void test_planted_files(void)
{
	char *dir = new_store_dir("planted");
	store *st = test_create(dir, true);
	char *lock = test_path(dir, "lock");
	test_obj o;
	uint8_t id[STORE_ID_LEN], id2[STORE_ID_LEN];
	char name[STORE_OBJ_NAME_LEN + 1], *obj_path;
	pthread_t th;
	struct timespec deadline;
	void *done = NULL;
	store *other;

	test_obj_init(&o, 1, false);
	CHECK_ST(store_object_add(st, false, o.attrs, 6, id), STORE_OK);
	test_obj_init(&o, 2, false);
	CHECK_ST(store_object_add(st, false, o.attrs, 6, id2), STORE_OK);
	store_close(st);

	CHECK(unlink(lock) == 0 && mkfifo(lock, 0600) == 0);
	pthread_create(&th, NULL, open_and_info, dir);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;   /* generous: it returns at once when right */
	CHECK(pthread_timedjoin_np(th, &done, &deadline) == 0 && done == (void *)1);
	if (!done) {
		fprintf(stderr, "store_open/store_get_info blocked on a FIFO lock file\n");
		exit(1);   /* the thread is stuck in open(): cannot clean up */
	}
	st = test_open(dir);
	CHECK(test_count(st) == 2);
	test_obj_init(&o, 3, false);
	CHECK_ST(store_object_add(st, false, o.attrs, 6, id), STORE_DAMAGED);
	store_close(st);

	CHECK(unlink(lock) == 0 && mkdir(lock, 0700) == 0);
	st = test_open(dir);
	CHECK_ST(store_object_add(st, false, o.attrs, 6, id), STORE_DAMAGED);
	store_close(st);
	CHECK(rmdir(lock) == 0);

	/* An object file replaced by a FIFO: skipped, the other one stays. */
	file_obj_hex(id2, name);
	obj_path = test_path(dir, name);
	CHECK(unlink(obj_path) == 0 && mkfifo(obj_path, 0600) == 0);
	other = test_open(dir);
	CHECK(test_count(other) == 1);
	store_close(other);
	free(obj_path);
	free(lock);
	free(dir);
}

/* Threads sharing one handle: adds and lists interleaved. */
typedef struct thread_arg {
	store *st;
	unsigned base;
	int failures;
} thread_arg;

static void *thread_main(void *p)
{
	thread_arg *t = p;
	test_obj o;
	uint8_t id[STORE_ID_LEN];

	for (unsigned i = 0; i < 25; i++) {
		test_obj_init(&o, t->base + i, false);
		if (store_object_add(t->st, false, o.attrs, 6, id) != STORE_OK)
			t->failures++;
		if (test_count(t->st) == (size_t)-1)
			t->failures++;
	}
	return NULL;
}

static void test_threads(void)
{
	char *dir = new_store_dir("threads");
	store *st = test_create(dir, true);
	pthread_t th[4];
	thread_arg args[4];
	store_object **objs;
	size_t n;
	int seen[100] = { 0 };
	store *other;

	for (int i = 0; i < 4; i++) {
		args[i] = (thread_arg){ st, (unsigned)i * 25, 0 };
		pthread_create(&th[i], NULL, thread_main, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(args[i].failures == 0);
	}
	other = test_open(dir);
	CHECK_ST(store_objects_list(other, &objs, &n), STORE_OK);
	CHECK(n == 100);
	for (size_t i = 0; i < n; i++) {
		long k = test_obj_number(objs[i]);

		CHECK(k >= 0 && k < 100 && test_obj_matches(objs[i], (unsigned)k));
		if (k >= 0 && k < 100)
			seen[k]++;
	}
	for (int i = 0; i < 100; i++)
		CHECK(seen[i] == 1);
	store_objects_release(objs, n);
	CHECK(test_count(st) == 100);
	store_close(other);
	store_close(st);
	free(dir);
}

static void test_bad_args(void)
{
	char *dir = new_store_dir("args");
	store *st = test_create(dir, true);
	uint8_t id[STORE_ID_LEN];
	uint8_t one = 1;
	CK_ATTRIBUTE bad = { CKA_CLASS, &one, 1 };
	CK_ATTRIBUTE null_val = { CKA_LABEL, NULL, 5 };
	uint8_t big_pin[STORE_MAX_PIN + 1];
	store_create_args args = {
		.sealed_root = "has space", .root = test_root, .pin_model = true,
	};

	memset(big_pin, 'p', sizeof(big_pin));
	CHECK_ST(store_object_add(st, false, &bad, 1, id), STORE_INVALID);
	CHECK_ST(store_object_add(st, false, &null_val, 1, id), STORE_INVALID);
	CHECK_ST(store_login(st, STORE_SO, big_pin, sizeof(big_pin)), STORE_INVALID);
	CHECK_ST(store_login(st, STORE_NOBODY, big_pin, 1), STORE_INVALID);
	CHECK_ST(store_create(st, &args), STORE_INVALID);
	store_close(st);
	CHECK_ST(store_open("", &st), STORE_INVALID);
	CHECK(st == NULL);
	free(dir);
}

int main(void)
{
	scratch = test_tmpdir();
	test_uninitialized();
	test_lifecycle();
	test_pins();
	test_pin_spellings();
	test_planted_files();
	test_nopin();
	test_tamper();
	test_no_plaintext();
	test_generation_cache();
	test_damaged_and_newer();
	test_temp_files();
	test_threads();
	test_bad_args();
	test_rmtree(scratch);
	free(scratch);
	return test_exit("store");
}
