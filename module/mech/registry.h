/* The mechanism registry: one table entry per mechanism the token offers.
 * C_GetMechanismList/Info read it; C_DeriveKey, C_Encrypt/DecryptInit and
 * C_Wrap/UnwrapKey check a mechanism against it (by its CKF_* flag) before
 * dispatching.  Adding a mechanism is one entry here plus its
 * implementation file. */
#ifndef TP_MECH_REGISTRY_H
#define TP_MECH_REGISTRY_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

typedef struct tp_mech {
	CK_MECHANISM_TYPE type;
	CK_ULONG min_key_size;       /* CK_MECHANISM_INFO, in bits for EC */
	CK_ULONG max_key_size;
	CK_FLAGS flags;              /* always includes CKF_HW */
} tp_mech;

size_t mech_count(void);
const tp_mech *mech_at(size_t i);
/* NULL when the token does not offer type. */
const tp_mech *mech_find(CK_MECHANISM_TYPE type);

#endif
