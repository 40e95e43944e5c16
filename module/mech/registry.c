#include "mech/registry.h"

#include <stdio.h>

#include "mech/mac.h"
#include "tang-pkcs11.h"

#define AES TP_KT_AES
#define HMAC_KEYS (TP_KT_GENERIC | TP_KT_HMAC | TP_KT_AES)
/* HMAC key sizes, in bytes. */
#define HMAC_MIN 1
#define HMAC_MAX 8192

#define ED (CKF_ENCRYPT | CKF_DECRYPT)
#define WU (CKF_WRAP | CKF_UNWRAP)
#define SV (CKF_SIGN | CKF_VERIFY)

/* An entry: type, key sizes, flags, key types, and the name for logs. */
#define E(t, min, max, flags, kt) { t, min, max, flags, kt, #t }

/* Every mechanism is flagged CKF_HW: pkcs11-tool only auto-selects those,
 * and the key really lives elsewhere (on the Tang server, or sealed by it). */
static const tp_mech mechs[] = {
	E(CKM_ECDH1_DERIVE, 256, 521,
	  CKF_HW | CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS, 0),
	/* Clevis JWE (mech/jwe.c): key sizes are the Tang keys' curves. */
	E(CKM_TANG_JWE, 256, 521, CKF_HW | ED | WU, 0),
	/* Secret keys (core/manage.c): AES sizes in bytes, generic secrets
	 * in bits (PKCS#11 2.40 §2.8, §2.10). */
	E(CKM_AES_KEY_GEN, 16, 32, CKF_HW | CKF_GENERATE, 0),
	E(CKM_GENERIC_SECRET_KEY_GEN, 8, 4096, CKF_HW | CKF_GENERATE, 0),

	/* AES (mech/aes.c): key sizes in bytes. */
	E(CKM_AES_ECB, 16, 32, CKF_HW | ED | WU, AES),
	E(CKM_AES_CBC, 16, 32, CKF_HW | ED | WU, AES),
	E(CKM_AES_CBC_PAD, 16, 32, CKF_HW | ED | WU, AES),
	E(CKM_AES_CTR, 16, 32, CKF_HW | ED | WU, AES),
	E(CKM_AES_GCM, 16, 32, CKF_HW | ED | WU, AES),
	E(CKM_AES_KEY_WRAP, 16, 32, CKF_HW | ED | WU, AES),
	E(CKM_AES_KEY_WRAP_PAD, 16, 32, CKF_HW | ED | WU, AES),
	/* MACs (mech/mac.c). */
	E(CKM_AES_MAC, 16, 32, CKF_HW | SV, AES),
	E(CKM_AES_MAC_GENERAL, 16, 32, CKF_HW | SV, AES),
	E(CKM_AES_CMAC, 16, 32, CKF_HW | SV, AES),
	E(CKM_AES_CMAC_GENERAL, 16, 32, CKF_HW | SV, AES),
	E(CKM_SHA_1_HMAC, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA_1_HMAC_GENERAL, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA224_HMAC, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA224_HMAC_GENERAL, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA256_HMAC, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA256_HMAC_GENERAL, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA384_HMAC, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA384_HMAC_GENERAL, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA512_HMAC, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	E(CKM_SHA512_HMAC_GENERAL, HMAC_MIN, HMAC_MAX, CKF_HW | SV, HMAC_KEYS),
	/* Digests (mech/digest.c): no key. */
	E(CKM_SHA_1, 0, 0, CKF_HW | CKF_DIGEST, 0),
	E(CKM_SHA224, 0, 0, CKF_HW | CKF_DIGEST, 0),
	E(CKM_SHA256, 0, 0, CKF_HW | CKF_DIGEST, 0),
	E(CKM_SHA384, 0, 0, CKF_HW | CKF_DIGEST, 0),
	E(CKM_SHA512, 0, 0, CKF_HW | CKF_DIGEST, 0),
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

const char *mech_name(CK_MECHANISM_TYPE type)
{
	static __thread char buf[40];
	const tp_mech *m = mech_find(type);

	if (m && m->name)
		return m->name;
	snprintf(buf, sizeof(buf), "mechanism 0x%lx", (unsigned long)type);
	return buf;
}

CK_RV mech_check_key(const tp_mech *m, CK_KEY_TYPE key_type, size_t len)
{
	bool ok = false;

	if (key_type == CKK_AES)
		ok = m->key_types & TP_KT_AES;
	else if (key_type == CKK_GENERIC_SECRET)
		ok = m->key_types & TP_KT_GENERIC;
	else if (m->key_types & TP_KT_HMAC)
		ok = key_type == mac_hmac_key_type(m->type);
	if (!ok)
		return CKR_KEY_TYPE_INCONSISTENT;
	if (len < m->min_key_size || len > m->max_key_size)
		return CKR_KEY_SIZE_RANGE;
	if (key_type == CKK_AES && len != 16 && len != 24 && len != 32)
		return CKR_KEY_SIZE_RANGE;
	return CKR_OK;
}
