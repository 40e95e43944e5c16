/* tang-pkcs11: public constants for applications. */
#ifndef TANG_PKCS11_H
#define TANG_PKCS11_H

#include <p11-kit/pkcs11.h>

/* Clevis JWE (compact, "tang" pin) with a Tang key of the token: C_Decrypt
 * and C_UnwrapKey recover, C_Encrypt and C_WrapKey produce.  No parameter. */
#define CKM_TANG_JWE (CKM_VENDOR_DEFINED | 0x54470001UL)

/* ulDeviceError values in CK_SESSION_INFO after a failed Tang operation. */
#define TANG_PKCS11_DEVERR_UNREACHABLE 5UL
#define TANG_PKCS11_DEVERR_TIMEOUT 6UL
#define TANG_PKCS11_DEVERR_BAD_REQUEST 7UL
#define TANG_PKCS11_DEVERR_REFUSED 8UL
#define TANG_PKCS11_DEVERR_UNKNOWN_KEY 9UL
#define TANG_PKCS11_DEVERR_HTTP 10UL
#define TANG_PKCS11_DEVERR_BAD_REPLY 11UL
#define TANG_PKCS11_DEVERR_UNTRUSTED 12UL

#endif
