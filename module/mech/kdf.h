/* Key derivation functions over the module's private OpenSSL context. */
#ifndef TP_MECH_KDF_H
#define TP_MECH_KDF_H

#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

/* ANSI X9.63 KDF (CKD_SHA1_KDF ... CKD_SHA512_KDF): out = H(z||counter||shared)...
 * (kdf is a CK_ULONG: p11-kit 0.24 has no CK_EC_KDF_TYPE typedef.)
 * CKR_MECHANISM_PARAM_INVALID for an unsupported kdf. */
CK_RV kdf_x963(CK_ULONG kdf, const uint8_t *z, size_t z_len,
	       const uint8_t *shared, size_t shared_len,
	       uint8_t *out, size_t out_len);

#endif
