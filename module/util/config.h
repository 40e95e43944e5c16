/* The configuration file (JSON), DESIGN.md §2.
 *
 * Lookup: "config=PATH" among the whitespace-separated words of
 * CK_C_INITIALIZE_ARGS.pReserved, else $TANG_PKCS11_CONF, else the default
 * path (meson's sysconfdir).  No file named and no default file: zero tokens,
 * TP_OK.  A named or existing file that is unreadable or invalid:
 * TP_ERR_CONFIG and exactly one log line naming file, field and problem. */
#ifndef TP_UTIL_CONFIG_H
#define TP_UTIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define TP_LABEL_MAX 32          /* CK_TOKEN_INFO.label is 32 bytes */
#define TP_DEFAULT_TIMEOUT 10    /* seconds */
#define TP_DEFAULT_LEASE 300     /* seconds the store's root secret is kept */

typedef enum tp_binding_kind {
	TP_BINDING_TANG = 0,
	TP_BINDING_SSS = 1,          /* recognised, not supported yet: no keys */
} tp_binding_kind;

typedef struct tp_token_config {
	char label[TP_LABEL_MAX + 1];
	tp_binding_kind binding;
	char *url;                   /* "tang.url" verbatim */
	char *thp;                   /* "tang.thp" or NULL */
	char *adv;                   /* JWS text of "tang.adv" (object re-serialised,
	                                or the file's content), or NULL */
	char *store;                 /* the sealed store's directory (a relative path
	                                is made relative to the configuration file's
	                                directory); NULL if absent */
	bool pin;                    /* default true */
	long timeout;                /* seconds, > 0; default TP_DEFAULT_TIMEOUT */
	long lease;                  /* seconds, >= 0; default TP_DEFAULT_LEASE */
} tp_token_config;

typedef struct tp_config {
	char *path;                  /* file read, NULL when none */
	size_t n_tokens;
	tp_token_config *tokens;     /* file order: slot ID = index + 1 */
} tp_config;

/* reserved: the pReserved string or NULL.  *out is always set on TP_OK. */
tp_err config_load(const char *reserved, tp_config **out);
/* Parse a configuration from text; path is used for messages and to resolve
 * relative "adv" file names (may be NULL: relative to the working dir). */
tp_err config_parse(const char *text, size_t len, const char *path, tp_config **out);
void config_free(tp_config *cfg);

#endif
