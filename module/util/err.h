/* Error codes of the layers below PKCS#11 (util, jose, tang).
 *
 * These layers never see CK_RV: they return a tp_err and log the details
 * (server, kid, what was wrong) themselves.  mech/errmap.c is the one place
 * that turns a tp_err into a CK_RV; the tp_err value itself is what
 * C_GetSessionInfo reports as ulDeviceError. */
#ifndef TP_UTIL_ERR_H
#define TP_UTIL_ERR_H

typedef enum tp_err {
	TP_OK = 0,
	TP_ERR_GENERAL = 1,      /* internal failure (OpenSSL, libcurl setup) */
	TP_ERR_NOMEM = 2,
	TP_ERR_INPUT = 3,        /* caller-supplied data malformed or out of range */
	TP_ERR_CONFIG = 4,       /* configuration unreadable or invalid */
	TP_ERR_UNREACHABLE = 5,  /* connect refused, reset, DNS failure */
	TP_ERR_TIMEOUT = 6,      /* the token's timeout expired */
	TP_ERR_BAD_REQUEST = 7,  /* server answered 400 */
	TP_ERR_REFUSED = 8,      /* server answered 403 */
	TP_ERR_UNKNOWN_KEY = 9,  /* server answered 404: no such key */
	TP_ERR_HTTP = 10,        /* any other non-200 status */
	TP_ERR_BAD_REPLY = 11,   /* reply malformed, too large, point off the curve */
	TP_ERR_UNTRUSTED = 12,   /* advertisement signature or thp pin check failed */
} tp_err;

/* A short, static, human-readable name ("unreachable", "timeout", ...). */
const char *tp_err_str(tp_err err);

#endif
