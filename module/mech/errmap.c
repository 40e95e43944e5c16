#include "mech/errmap.h"

CK_RV errmap_rv(tp_err err, CK_RV input_rv)
{
	switch (err) {
	case TP_OK:
		return CKR_OK;
	case TP_ERR_NOMEM:
		return CKR_HOST_MEMORY;
	case TP_ERR_INPUT:
		return input_rv;
	/* Whatever went wrong between us and the server (or with its
	 * answer) is one CK_RV; the log line and ulDeviceError tell which. */
	case TP_ERR_UNREACHABLE:
	case TP_ERR_TIMEOUT:
	case TP_ERR_BAD_REQUEST:
	case TP_ERR_REFUSED:
	case TP_ERR_UNKNOWN_KEY:
	case TP_ERR_HTTP:
	case TP_ERR_BAD_REPLY:
	case TP_ERR_UNTRUSTED:
		return CKR_DEVICE_ERROR;
	case TP_ERR_CONFIG:
		return CKR_FUNCTION_FAILED;
	case TP_ERR_GENERAL:
		return CKR_GENERAL_ERROR;
	}
	return CKR_GENERAL_ERROR;
}
