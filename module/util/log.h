/* Logging.  Default sink: syslog (ident "tang-pkcs11").
 * TANG_PKCS11_LOG=stderr, or a file path (appended), redirects it;
 * TANG_PKCS11_DEBUG=1 enables log_debug lines.  Never log a secret. */
#ifndef TP_UTIL_LOG_H
#define TP_UTIL_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* Reads the environment; called by C_Initialize. Idempotent. */
void log_open(void);
/* Closes a log file opened by log_open; called by C_Finalize. */
void log_close(void);
bool log_debug_enabled(void);
/* fork handlers: take the log lock before fork(), release it after, in
 * the parent and in the child. */
void log_fork_prepare(void);
void log_fork_release(void);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_debug_enabled()) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
