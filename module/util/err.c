#include "util/err.h"

const char *tp_err_str(tp_err err)
{
	switch (err) {
	case TP_OK: return "ok";
	case TP_ERR_GENERAL: return "internal error";
	case TP_ERR_NOMEM: return "out of memory";
	case TP_ERR_INPUT: return "invalid input";
	case TP_ERR_CONFIG: return "invalid configuration";
	case TP_ERR_UNREACHABLE: return "server unreachable";
	case TP_ERR_TIMEOUT: return "timeout";
	case TP_ERR_BAD_REQUEST: return "bad request (HTTP 400)";
	case TP_ERR_REFUSED: return "refused (HTTP 403)";
	case TP_ERR_UNKNOWN_KEY: return "unknown key (HTTP 404)";
	case TP_ERR_HTTP: return "unexpected HTTP status";
	case TP_ERR_BAD_REPLY: return "bad reply";
	case TP_ERR_UNTRUSTED: return "untrusted advertisement";
	}
	return "unknown error";
}
