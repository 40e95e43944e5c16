#include "store/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/crypt.h"
#include "util/log.h"

bool file_ident_eq(const file_ident *a, const file_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void ident_from(const struct stat *sb, file_ident *id)
{
	if (!id)
		return;
	memset(id, 0, sizeof(*id));
	id->dev = sb->st_dev;
	id->ino = sb->st_ino;
	id->size = sb->st_size;
	id->mtime = sb->st_mtim;
	id->ctime = sb->st_ctim;
}

store_status file_errno_status(int e)
{
	switch (e) {
	case EROFS:
	case EACCES:
	case EPERM:
		return STORE_READ_ONLY;
	case ENOMEM:
		return STORE_NOMEM;
	case ENOENT:
		return STORE_NOT_FOUND;
	default:
		return STORE_IO;
	}
}

int file_open_dir(const char *dir)
{
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static bool path_read_only(const char *path)
{
	struct statvfs vfs;

	if (statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		return true;
	/* access() answers for the real uid and, for root, still reports
	 * EROFS; permission bits alone never stop root (handled by the
	 * write attempts returning STORE_READ_ONLY). */
	return access(path, W_OK) != 0 && (errno == EROFS || errno == EACCES || errno == EPERM);
}

bool file_dir_read_only(const char *dir)
{
	char *copy;
	bool ro;

	if (access(dir, F_OK) == 0)
		return path_read_only(dir);
	copy = strdup(dir);
	if (!copy)
		return false;
	ro = path_read_only(dirname(copy));
	free(copy);
	return ro;
}

static store_status read_all(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return file_errno_status(errno) == STORE_NOMEM ? STORE_NOMEM : STORE_IO;
		if (n == 0)
			return STORE_DAMAGED;   /* shrank under us: not the file we measured */
		done += (size_t)n;
	}
	return STORE_OK;
}

store_status file_stat(int dirfd, const char *name, file_ident *ident)
{
	struct stat sb;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? STORE_NOT_FOUND : STORE_IO;
	if (!S_ISREG(sb.st_mode))
		return STORE_DAMAGED;
	ident_from(&sb, ident);
	return STORE_OK;
}

store_status file_read(int dirfd, const char *name, size_t max,
		       uint8_t **buf, size_t *len, file_ident *ident)
{
	store_status s = STORE_IO;
	int fd = -1;
	struct stat sb;
	uint8_t *data = NULL;

	*buf = NULL;
	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		s = errno == ENOENT ? STORE_NOT_FOUND : errno == ELOOP ? STORE_DAMAGED : STORE_IO;
		goto out;
	}
	if (fstat(fd, &sb) != 0)
		goto out;
	if (!S_ISREG(sb.st_mode) || sb.st_size < 0 || (uint64_t)sb.st_size > max) {
		s = STORE_DAMAGED;
		goto out;
	}
	data = malloc(sb.st_size ? (size_t)sb.st_size : 1);
	if (!data) {
		s = STORE_NOMEM;
		goto out;
	}
	s = read_all(fd, data, (size_t)sb.st_size);
	if (s != STORE_OK)
		goto out;
	ident_from(&sb, ident);
	*buf = data;
	*len = (size_t)sb.st_size;
	data = NULL;
out:
	free(data);
	if (fd >= 0)
		close(fd);
	return s;
}

static store_status write_all(int fd, const uint8_t *data, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return file_errno_status(errno) == STORE_READ_ONLY ? STORE_READ_ONLY : STORE_IO;
		done += (size_t)n;
	}
	return STORE_OK;
}

store_status file_sync_dir(int dirfd)
{
	return fsync(dirfd) == 0 ? STORE_OK : STORE_IO;
}

static store_status temp_name(char name[64])
{
	uint8_t rnd[8];
	store_status s = crypt_random(rnd, sizeof(rnd));

	if (s != STORE_OK)
		return s;
	snprintf(name, 64, "%s%02x%02x%02x%02x%02x%02x%02x%02x", STORE_TEMP_PREFIX,
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	return STORE_OK;
}

store_status file_write_atomic(int dirfd, const char *name, const uint8_t *data,
			       size_t len, file_ident *ident)
{
	store_status s;
	char tmp[64];
	int fd = -1;
	struct stat sb;
	bool linked = false;

	s = temp_name(tmp);
	if (s != STORE_OK)
		goto out;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		s = file_errno_status(errno) == STORE_READ_ONLY ? STORE_READ_ONLY : STORE_IO;
		goto out;
	}
	linked = true;
	s = write_all(fd, data, len);
	if (s != STORE_OK)
		goto out;
	/* The data must be on disk before the rename makes it the file:
	 * otherwise a crash can leave the new name pointing at an empty or
	 * partial file. */
	if (fsync(fd) != 0) {
		s = STORE_IO;
		goto out;
	}
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		s = file_errno_status(errno) == STORE_READ_ONLY ? STORE_READ_ONLY : STORE_IO;
		goto out;
	}
	linked = false;
	/* And the rename itself must be durable before we report success. */
	s = file_sync_dir(dirfd);
	if (s != STORE_OK)
		goto out;
	if (fstat(fd, &sb) != 0) {
		s = STORE_IO;
		goto out;
	}
	ident_from(&sb, ident);
out:
	if (fd >= 0)
		close(fd);
	if (linked)
		unlinkat(dirfd, tmp, 0);
	return s;
}

store_status file_remove(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) != 0) {
		store_status s = file_errno_status(errno);

		return s == STORE_NOT_FOUND || s == STORE_READ_ONLY ? s : STORE_IO;
	}
	return file_sync_dir(dirfd);
}

store_status file_lock(int dirfd, int *lockfd)
{
	int fd;

	struct stat sb;

	*lockfd = -1;
	/* O_NONBLOCK: a FIFO planted as the lock file must not block us. */
	fd = openat(dirfd, STORE_LOCK_NAME,
		    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	if (fd < 0) {
		store_status s = file_errno_status(errno);

		if (errno == EISDIR || errno == ELOOP)
			return STORE_DAMAGED;
		return s == STORE_READ_ONLY || s == STORE_NOMEM ? s : STORE_IO;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return STORE_DAMAGED;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			close(fd);
			return STORE_IO;
		}
	}
	*lockfd = fd;
	return STORE_OK;
}

void file_unlock(int lockfd)
{
	/* Closing the only descriptor of this open file description drops
	 * the flock.  (A fresh open per transaction: a descriptor inherited
	 * across fork would share the lock with the other process.) */
	if (lockfd >= 0)
		close(lockfd);
}

/* The lock file holds the generation as u64 LE followed by its complement,
 * written in place under the lock; the complement tells a torn read. */
static void gen_decode(const uint8_t b[16], uint64_t *gen, uint64_t *check)
{
	*gen = 0;
	*check = 0;
	for (int i = 7; i >= 0; i--) {
		*gen = *gen << 8 | b[i];
		*check = *check << 8 | b[8 + i];
	}
}

static ssize_t pread_full(int fd, uint8_t *buf, size_t len)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

bool file_gen_read(int dirfd, uint64_t *gen)
{
	uint8_t b[16];
	uint64_t check;
	ssize_t n;
	int fd;

	struct stat sb;

	*gen = 0;
	/* O_NONBLOCK and a regular file only: a FIFO planted as the lock file
	 * would otherwise block C_Initialize for ever. */
	fd = openat(dirfd, STORE_LOCK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return false;
	}
	n = pread_full(fd, b, sizeof(b));
	close(fd);
	if (n == 0)
		return true;
	if (n != (ssize_t)sizeof(b))
		return false;
	gen_decode(b, gen, &check);
	return check == ~*gen;
}

store_status file_gen_bump(int lockfd, uint64_t *gen)
{
	uint8_t b[16];
	uint64_t g = 0, check;
	ssize_t n = pread_full(lockfd, b, sizeof(b));

	/* An unreadable old value restarts from a random-ish point rather
	 * than 0 so that readers holding an old value still see a change. */
	if (n == (ssize_t)sizeof(b)) {
		gen_decode(b, &g, &check);
		if (check != ~g)
			g = (uint64_t)time(NULL) << 20;
	}
	g++;
	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(g >> (8 * i));
		b[8 + i] = (uint8_t)(~g >> (8 * i));
	}
	do
		n = pwrite(lockfd, b, sizeof(b), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(b))
		return STORE_IO;
	*gen = g;
	return STORE_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool file_obj_name(const char *name, uint8_t id[STORE_ID_LEN])
{
	if (strlen(name) != STORE_OBJ_NAME_LEN)
		return false;
	for (size_t i = 0; i < STORE_ID_LEN; i++) {
		int hi = hexval(name[2 * i]), lo = hexval(name[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

void file_obj_hex(const uint8_t id[STORE_ID_LEN], char name[STORE_OBJ_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < STORE_ID_LEN; i++) {
		name[2 * i] = hex[id[i] >> 4];
		name[2 * i + 1] = hex[id[i] & 15];
	}
	name[STORE_OBJ_NAME_LEN] = '\0';
}

bool file_is_temp(const char *name)
{
	return strncmp(name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)) == 0;
}

void file_sweep_temps(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	bool removed = false;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (!file_is_temp(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0) {
			removed = true;
			log_info("store: removed %s left by an interrupted writer", de->d_name);
		}
	}
	closedir(d);
	if (removed)
		file_sync_dir(dirfd);
}
