/* Signing and verification with secret keys (PKCS#11 2.40 current
 * mechanisms): HMAC with SHA-1/224/256/384/512 (CKM_SHA*_HMAC and their
 * _GENERAL forms), CMAC (CKM_AES_CMAC, CKM_AES_CMAC_GENERAL) and the
 * FIPS 113 CBC-MAC (CKM_AES_MAC, CKM_AES_MAC_GENERAL).  OpenSSL EVP in the
 * module's private library context; no locks.  The MAC length is fixed at
 * init (mac_len), so the two-call convention never needs the data. */
#ifndef TP_MECH_MAC_H
#define TP_MECH_MAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

typedef struct tp_mac tp_mac;

/* True for the mechanisms of this file. */
bool mac_is_mac(CK_MECHANISM_TYPE type);
/* The hash of an HMAC mechanism's matching key type (CKK_SHA256_HMAC for
 * CKM_SHA256_HMAC...), or CKK_VENDOR_DEFINED for the AES MACs. */
CK_KEY_TYPE mac_hmac_key_type(CK_MECHANISM_TYPE type);

/* CKR_OK or CKR_MECHANISM_PARAM_INVALID (reason in *why). */
CK_RV mac_check_param(const CK_MECHANISM *mech, const char **why);

/* A new MAC computation with key.  The key's size is checked by the
 * caller (registry); AES MACs need 16/24/32 bytes (CKR_KEY_SIZE_RANGE). */
CK_RV mac_new(const CK_MECHANISM *mech, const uint8_t *key, size_t key_len, tp_mac **out);
void mac_free(tp_mac *m);
/* The signature length (the _GENERAL parameter, or the full length). */
size_t mac_len(const tp_mac *m);
CK_RV mac_update(tp_mac *m, const uint8_t *in, size_t in_len);
/* Writes mac_len bytes; the computation is over (free it). */
CK_RV mac_final(tp_mac *m, uint8_t *out);

#endif
