/* The one place where a tp_err (util/jose/tang) becomes a CK_RV. */
#ifndef TP_MECH_ERRMAP_H
#define TP_MECH_ERRMAP_H

#include <p11-kit/pkcs11.h>

#include "util/err.h"

/* Network and server failures -> CKR_DEVICE_ERROR; TP_ERR_NOMEM ->
 * CKR_HOST_MEMORY; TP_ERR_INPUT -> input_rv (what bad caller data means in
 * this operation: CKR_MECHANISM_PARAM_INVALID for a derive,
 * CKR_ENCRYPTED_DATA_INVALID for a decrypt...); anything else ->
 * CKR_FUNCTION_FAILED / CKR_GENERAL_ERROR. */
CK_RV errmap_rv(tp_err err, CK_RV input_rv);

#endif
