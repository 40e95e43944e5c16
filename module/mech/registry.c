#include "mech/registry.h"

#include "tang-pkcs11.h"

/* Every mechanism is flagged CKF_HW: pkcs11-tool only auto-selects those,
 * and the key really lives elsewhere (on the Tang server). */
static const tp_mech mechs[] = {
	{ CKM_ECDH1_DERIVE, 256, 521,
	  CKF_HW | CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS },
	/* Clevis JWE (mech/jwe.c): key sizes are the Tang keys' curves. */
	{ CKM_TANG_JWE, 256, 521,
	  CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP },
	/* Secret keys (core/manage.c): AES sizes in bytes, generic secrets
	 * in bits (PKCS#11 2.40 §2.8, §2.10). */
	{ CKM_AES_KEY_GEN, 16, 32, CKF_HW | CKF_GENERATE },
	{ CKM_GENERIC_SECRET_KEY_GEN, 8, 4096, CKF_HW | CKF_GENERATE },
};

size_t mech_count(void)
{
	return sizeof(mechs) / sizeof(mechs[0]);
}

const tp_mech *mech_at(size_t i)
{
	return i < mech_count() ? &mechs[i] : NULL;
}

const tp_mech *mech_find(CK_MECHANISM_TYPE type)
{
	for (size_t i = 0; i < mech_count(); i++)
		if (mechs[i].type == type)
			return &mechs[i];
	return NULL;
}
