#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum sink { SINK_SYSLOG, SINK_STDERR, SINK_FILE };

/* The sink is chosen once per C_Initialize; the mutex keeps lines whole
 * when several threads log at once. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum sink sink = SINK_SYSLOG;
static FILE *log_file;
static atomic_bool debug; /* read by every log_debug, without the lock */

void log_open(void)
{
	/* secure_getenv: a setuid host must not let its caller redirect
	 * the module's log into a file of the caller's choosing. */
	const char *where = secure_getenv("TANG_PKCS11_LOG");
	const char *dbg = secure_getenv("TANG_PKCS11_DEBUG");

	pthread_mutex_lock(&log_lock);
	atomic_store(&debug, dbg && *dbg && strcmp(dbg, "0") != 0);
	if (log_file) {
		fclose(log_file);
		log_file = NULL;
	}
	sink = SINK_SYSLOG;
	if (where && strcmp(where, "stderr") == 0) {
		sink = SINK_STDERR;
	} else if (where && *where && strcmp(where, "syslog") != 0) {
		log_file = fopen(where, "ae");
		if (log_file) {
			setvbuf(log_file, NULL, _IOLBF, 0);
			sink = SINK_FILE;
		}
	}
	pthread_mutex_unlock(&log_lock);
}

void log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	sink = SINK_SYSLOG;
	pthread_mutex_unlock(&log_lock);
}

bool log_debug_enabled(void)
{
	return atomic_load_explicit(&debug, memory_order_relaxed);
}

/* Around fork() (called by core/lib.c's fork handlers, after its own
 * locks: the order is init -> state -> log): the child must not inherit
 * the lock held by a thread that does not exist there. */
void log_fork_prepare(void)
{
	pthread_mutex_lock(&log_lock);
}

void log_fork_release(void)
{
	pthread_mutex_unlock(&log_lock);
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_INFO: return "info";
	case LOG_DEBUG: return "debug";
	default: return "notice";
	}
}

void log_msg(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (sink == SINK_SYSLOG) {
		syslog(LOG_USER | prio, "tang-pkcs11: %s", line);
	} else {
		FILE *f = sink == SINK_FILE ? log_file : stderr;
		fprintf(f, "tang-pkcs11[%ld]: %s: %s\n", (long)getpid(), prio_name(prio), line);
	}
	pthread_mutex_unlock(&log_lock);
}
