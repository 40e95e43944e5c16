/* The mechanism registry: one table entry per mechanism the token offers.
 * C_GetMechanismList/Info read it; every C_*Init, C_DeriveKey and
 * C_Wrap/UnwrapKey check a mechanism against it (by its CKF_* flag) before
 * dispatching, and the soft-key mechanisms check their key against it
 * (mech_check_key).  Adding a mechanism is one entry here plus its
 * implementation file (mech/aes.c, mech/mac.c, mech/digest.c, ...). */
#ifndef TP_MECH_REGISTRY_H
#define TP_MECH_REGISTRY_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

/* Key types a mechanism accepts (tp_mech.key_types). */
enum {
	TP_KT_AES = 1u << 0,
	TP_KT_GENERIC = 1u << 1,
	TP_KT_HMAC = 1u << 2,        /* the CKK_SHA*_HMAC type of the same hash */
};

typedef struct tp_mech {
	CK_MECHANISM_TYPE type;
	CK_ULONG min_key_size;       /* CK_MECHANISM_INFO: bits for EC, bytes */
	CK_ULONG max_key_size;       /* for the secret-key mechanisms */
	CK_FLAGS flags;              /* always includes CKF_HW */
	unsigned key_types;          /* TP_KT_*; 0: no soft key (Tang, digest) */
	const char *name;            /* "CKM_AES_CBC_PAD", for logs (NULL: hex) */
} tp_mech;

size_t mech_count(void);
const tp_mech *mech_at(size_t i);
/* NULL when the token does not offer type. */
const tp_mech *mech_find(CK_MECHANISM_TYPE type);
/* The CKM_ name, or "mechanism 0x..." for unknown ones (static buffer per
 * thread). */
const char *mech_name(CK_MECHANISM_TYPE type);

/* Whether m takes a secret key of type key_type and len bytes:
 * CKR_KEY_TYPE_INCONSISTENT or CKR_KEY_SIZE_RANGE otherwise. */
CK_RV mech_check_key(const tp_mech *m, CK_KEY_TYPE key_type, size_t len);

#endif
