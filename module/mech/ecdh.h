/* CKM_ECDH1_DERIVE on a Tang private key: the recovery exchange (the peer
 * point is the client's epk C; the result is x(s·C), then the KDF). */
#ifndef TP_MECH_ECDH_H
#define TP_MECH_ECDH_H

#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "tang/server.h"
#include "util/err.h"

/* Largest CKA_VALUE_LEN a KDF derive produces (bounds the allocation a
 * caller can ask for). */
#define TP_ECDH_MAX_OUT 4096

/* Validate a CK_MECHANISM's CK_ECDH1_DERIVE_PARAMS for key's curve without
 * any network: parameter length, kdf (CKD_NULL, CKD_SHA1..SHA512_KDF),
 * shared data (must be empty for CKD_NULL), peer point raw or DER-wrapped,
 * on the curve.  CKR_MECHANISM_PARAM_INVALID otherwise (one log line naming
 * srv, which may be NULL, and the kid). */
CK_RV ecdh_check_params(const tp_tang_server *srv, const tp_exchange_key *key,
			const CK_MECHANISM *mech);

/* Performs the exchange and the KDF; writes out_len bytes of key material
 * into out.  CKD_NULL: out_len <= field_len, the last out_len bytes of z
 * (SoftHSMv2 keeps the trailing bytes; docs/mechanisms.md).  Network
 * failures -> CKR_DEVICE_ERROR with the tang layer's tp_err in *dev_err
 * (TP_OK on success; dev_err may be NULL). */
CK_RV ecdh_tang_derive(tp_tang_server *srv, const tp_exchange_key *key,
		       const CK_MECHANISM *mech, uint8_t *out, size_t out_len,
		       tp_err *dev_err);

#endif
