/* The store directory on disk: bounded reads, atomic replacement (temp file
 * in the same directory, fsync, rename, fsync the directory), the lock file
 * (flock LOCK_EX serializes writers across processes) and the generation
 * counter kept inside it.  Every function works relative to a directory fd
 * the caller opened with file_open_dir, and never follows symlinks. */
#ifndef TP_STORE_FILE_H
#define TP_STORE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store/store.h"

#define STORE_META_NAME "metadata"
#define STORE_LOCK_NAME "lock"
#define STORE_TEMP_PREFIX ".tmp-"
#define STORE_OBJ_NAME_LEN (2 * STORE_ID_LEN)

/* What identifies one version of a file without reading it: a rewrite is a
 * rename of a new inode, which changes ino and ctime (and usually mtime). */
typedef struct file_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
} file_ident;

bool file_ident_eq(const file_ident *a, const file_ident *b);

/* errno -> status: EROFS, EACCES, EPERM are STORE_READ_ONLY, ENOMEM
 * STORE_NOMEM, ENOENT STORE_NOT_FOUND, anything else STORE_IO. */
store_status file_errno_status(int e);

/* O_DIRECTORY fd, or -1 with errno. */
int file_open_dir(const char *dir);
/* True if the directory (or, when it does not exist, its parent) cannot be
 * written: a read-only file system or no write permission. */
bool file_dir_read_only(const char *dir);

/* Reads a whole regular file of at most max bytes.  STORE_NOT_FOUND,
 * STORE_DAMAGED (not a regular file, or larger than max), STORE_IO,
 * STORE_NOMEM.  *buf is malloc'd; ident may be NULL. */
store_status file_read(int dirfd, const char *name, size_t max,
		       uint8_t **buf, size_t *len, file_ident *ident);
store_status file_stat(int dirfd, const char *name, file_ident *ident);

/* Replaces name atomically with data: a reader or a crash sees the old
 * file or the new one, never a mixture.  ident (may be NULL) gets the new
 * file's identity.  Caller holds the lock. */
store_status file_write_atomic(int dirfd, const char *name, const uint8_t *data,
			       size_t len, file_ident *ident);
/* unlink + fsync of the directory.  STORE_NOT_FOUND if absent. */
store_status file_remove(int dirfd, const char *name);
store_status file_sync_dir(int dirfd);

/* Takes the writers' lock (creating the lock file); *lockfd to file_unlock. */
store_status file_lock(int dirfd, int *lockfd);
void file_unlock(int lockfd);
/* The generation: false when it cannot be trusted (unreadable, torn), in
 * which case the reader must rescan.  An absent or empty lock file is
 * generation 0. */
bool file_gen_read(int dirfd, uint64_t *gen);
/* Increments the generation; caller holds the lock. */
store_status file_gen_bump(int lockfd, uint64_t *gen);

/* Object file names: the 32 lowercase hex digits of the id. */
bool file_obj_name(const char *name, uint8_t id[STORE_ID_LEN]);
void file_obj_hex(const uint8_t id[STORE_ID_LEN], char name[STORE_OBJ_NAME_LEN + 1]);
bool file_is_temp(const char *name);
/* Removes leftover temp files of killed writers.  Caller holds the lock
 * (so no live writer has a temp file). */
void file_sweep_temps(int dirfd);

#endif
