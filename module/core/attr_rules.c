#include "core/attr_rules.h"

#include <stddef.h>

/* Flag shorthands for the tables. */
#define D TP_ATTR_DERIVE_OK
#define DF TP_ATTR_DEFAULT
#define C TP_ATTR_CREATE_OK
#define R TP_ATTR_REQUIRED
#define M TP_ATTR_MODIFY
#define CP TP_ATTR_COPY_ONLY
#define T1 TP_ATTR_ONLY_TRUE
#define F1 TP_ATTR_ONLY_FALSE

/* Attributes every storage object and every key has (PKCS#11 2.40 §4.4,
 * §4.7).  Tang key objects are built in code (object.c) with fixed
 * values: for them only existence and sensitivity matter. */
/* PKCS#11 2.40 §4.4: CKA_TOKEN, CKA_PRIVATE and CKA_MODIFIABLE may change
 * only in a copy; CKA_COPYABLE only from true to false; CKA_DESTROYABLE is
 * fixed at creation. */
#define STORAGE_RULES(token_flags) \
	{ CKA_CLASS, TP_KIND_ULONG, D | C | R, 0 }, \
	{ CKA_TOKEN, TP_KIND_BOOL, token_flags | C | CP, CK_FALSE }, \
	{ CKA_PRIVATE, TP_KIND_BOOL, D | DF | C | CP, CK_FALSE }, \
	{ CKA_MODIFIABLE, TP_KIND_BOOL, D | DF | C | CP, CK_TRUE }, \
	{ CKA_LABEL, TP_KIND_BYTES, D | DF | C | M, 0 }, \
	{ CKA_COPYABLE, TP_KIND_BOOL, D | DF | C | M | F1, CK_TRUE }, \
	{ CKA_DESTROYABLE, TP_KIND_BOOL, D | DF | C, CK_TRUE }

#define KEY_RULES \
	{ CKA_KEY_TYPE, TP_KIND_ULONG, D | C | R, 0 }, \
	{ CKA_ID, TP_KIND_BYTES, D | DF | C | M, 0 }, \
	{ CKA_START_DATE, TP_KIND_DATE, D | DF | C | M, 0 }, \
	{ CKA_END_DATE, TP_KIND_DATE, D | DF | C | M, 0 }, \
	{ CKA_DERIVE, TP_KIND_BOOL, D | DF | C | M, CK_FALSE }, \
	/* derived here, not generated: a template may not claim otherwise */ \
	{ CKA_LOCAL, TP_KIND_BOOL, DF, CK_FALSE }, \
	{ CKA_KEY_GEN_MECHANISM, TP_KIND_ULONG, DF, CK_UNAVAILABLE_INFORMATION }

static const tp_attr_rule public_key_rules[] = {
	STORAGE_RULES(0),
	KEY_RULES,
	{ CKA_SUBJECT, TP_KIND_BYTES, 0, 0 },
	{ CKA_ENCRYPT, TP_KIND_BOOL, 0, 0 },
	{ CKA_VERIFY, TP_KIND_BOOL, 0, 0 },
	{ CKA_VERIFY_RECOVER, TP_KIND_BOOL, 0, 0 },
	{ CKA_WRAP, TP_KIND_BOOL, 0, 0 },
	{ CKA_TRUSTED, TP_KIND_BOOL, 0, 0 },
	{ CKA_PUBLIC_KEY_INFO, TP_KIND_BYTES, 0, 0 },
	{ CKA_EC_PARAMS, TP_KIND_BYTES, 0, 0 },
	{ CKA_EC_POINT, TP_KIND_BYTES, 0, 0 },
};

static const tp_attr_rule private_key_rules[] = {
	STORAGE_RULES(0),
	KEY_RULES,
	{ CKA_SUBJECT, TP_KIND_BYTES, 0, 0 },
	{ CKA_SENSITIVE, TP_KIND_BOOL, 0, 0 },
	{ CKA_DECRYPT, TP_KIND_BOOL, 0, 0 },
	{ CKA_SIGN, TP_KIND_BOOL, 0, 0 },
	{ CKA_SIGN_RECOVER, TP_KIND_BOOL, 0, 0 },
	{ CKA_UNWRAP, TP_KIND_BOOL, 0, 0 },
	{ CKA_EXTRACTABLE, TP_KIND_BOOL, 0, 0 },
	{ CKA_ALWAYS_SENSITIVE, TP_KIND_BOOL, 0, 0 },
	{ CKA_NEVER_EXTRACTABLE, TP_KIND_BOOL, 0, 0 },
	{ CKA_WRAP_WITH_TRUSTED, TP_KIND_BOOL, 0, 0 },
	{ CKA_ALWAYS_AUTHENTICATE, TP_KIND_BOOL, 0, 0 },
	{ CKA_PUBLIC_KEY_INFO, TP_KIND_BYTES, 0, 0 },
	{ CKA_EC_PARAMS, TP_KIND_BYTES, 0, 0 },
	{ CKA_EC_POINT, TP_KIND_BYTES, 0, 0 },
	/* The private scalar lives on the Tang server: asking for it is
	 * asking for a sensitive value. */
	{ CKA_VALUE, TP_KIND_BYTES, TP_ATTR_NEVER_READ, 0 },
};

/* Derived secret keys (C_DeriveKey).  Defaults follow SoftHSMv2 where the
 * spec leaves them to the token, except CKA_SENSITIVE (true) and
 * CKA_EXTRACTABLE (false): a derived secret is revealed only when the
 * template asks for it, as systemd, pkcs11-provider and pkcs11-tool do. */
static const tp_attr_rule secret_key_rules[] = {
	/* CKA_TOKEN true is refused by keytmpl.c (derive and unwrap make
	 * session objects); C_CreateObject/C_GenerateKey may make token
	 * objects on a token with a store. */
	STORAGE_RULES(D | DF),
	KEY_RULES,
	{ CKA_SENSITIVE, TP_KIND_BOOL, D | DF | C | M | T1, CK_TRUE },
	{ CKA_ENCRYPT, TP_KIND_BOOL, D | DF | C | M, CK_TRUE },
	{ CKA_DECRYPT, TP_KIND_BOOL, D | DF | C | M, CK_TRUE },
	{ CKA_SIGN, TP_KIND_BOOL, D | DF | C | M, CK_TRUE },
	{ CKA_VERIFY, TP_KIND_BOOL, D | DF | C | M, CK_TRUE },
	{ CKA_WRAP, TP_KIND_BOOL, D | DF | C | M, CK_TRUE },
	{ CKA_UNWRAP, TP_KIND_BOOL, D | DF | C | M, CK_TRUE },
	{ CKA_EXTRACTABLE, TP_KIND_BOOL, D | DF | C | M | F1, CK_FALSE },
	/* The derived value passed through the caller's hands (peer point):
	 * never "always sensitive".  Created keys neither; generated ones
	 * get them from CKA_SENSITIVE and CKA_EXTRACTABLE (manage.c). */
	{ CKA_ALWAYS_SENSITIVE, TP_KIND_BOOL, DF, CK_FALSE },
	{ CKA_NEVER_EXTRACTABLE, TP_KIND_BOOL, DF, CK_FALSE },
	{ CKA_WRAP_WITH_TRUSTED, TP_KIND_BOOL, D | DF | C | M | T1, CK_FALSE },
	/* Only the SO may set CKA_TRUSTED: not offered. */
	{ CKA_TRUSTED, TP_KIND_BOOL, DF, CK_FALSE },
	{ CKA_VALUE, TP_KIND_BYTES, TP_ATTR_SENSITIVE | TP_ATTR_SECRET | C | R, 0 },
	/* Generate: required; create: checked against the value. */
	{ CKA_VALUE_LEN, TP_KIND_ULONG, D | C, 0 },
};

/* Data objects (§4.5). */
static const tp_attr_rule data_rules[] = {
	STORAGE_RULES(DF),
	{ CKA_APPLICATION, TP_KIND_BYTES, DF | C | M, 0 },
	{ CKA_OBJECT_ID, TP_KIND_BYTES, DF | C | M, 0 },
	{ CKA_VALUE, TP_KIND_BYTES, DF | C | M, 0 },
};

/* X.509 public key certificates (§4.6.3), the only certificate type. */
static const tp_attr_rule certificate_rules[] = {
	STORAGE_RULES(DF),
	{ CKA_CERTIFICATE_TYPE, TP_KIND_ULONG, C | R, 0 },
	{ CKA_TRUSTED, TP_KIND_BOOL, DF, CK_FALSE },
	{ CKA_CERTIFICATE_CATEGORY, TP_KIND_ULONG, DF | C, 0 /* unspecified */ },
	{ CKA_CHECK_VALUE, TP_KIND_BYTES, C, 0 },
	{ CKA_START_DATE, TP_KIND_DATE, DF | C | M, 0 },
	{ CKA_END_DATE, TP_KIND_DATE, DF | C | M, 0 },
	{ CKA_PUBLIC_KEY_INFO, TP_KIND_BYTES, DF | C, 0 },
	{ CKA_SUBJECT, TP_KIND_BYTES, C | R, 0 },
	{ CKA_ID, TP_KIND_BYTES, DF | C | M, 0 },
	{ CKA_ISSUER, TP_KIND_BYTES, DF | C | M, 0 },
	{ CKA_SERIAL_NUMBER, TP_KIND_BYTES, DF | C | M, 0 },
	{ CKA_VALUE, TP_KIND_BYTES, C | R, 0 },
	{ CKA_URL, TP_KIND_BYTES, DF | C, 0 },
	{ CKA_HASH_OF_SUBJECT_PUBLIC_KEY, TP_KIND_BYTES, DF | C, 0 },
	{ CKA_HASH_OF_ISSUER_PUBLIC_KEY, TP_KIND_BYTES, DF | C, 0 },
	{ CKA_JAVA_MIDP_SECURITY_DOMAIN, TP_KIND_ULONG, DF | C, 0 },
	{ CKA_NAME_HASH_ALGORITHM, TP_KIND_ULONG, C, 0 },
};

#undef D
#undef DF
#undef C
#undef R
#undef M
#undef CP
#undef T1
#undef F1

#define N(a) (sizeof(a) / sizeof((a)[0]))

const tp_attr_rule *attr_rules(CK_OBJECT_CLASS klass, size_t *n)
{
	switch (klass) {
	case CKO_PUBLIC_KEY:
		*n = N(public_key_rules);
		return public_key_rules;
	case CKO_PRIVATE_KEY:
		*n = N(private_key_rules);
		return private_key_rules;
	case CKO_SECRET_KEY:
		*n = N(secret_key_rules);
		return secret_key_rules;
	case CKO_DATA:
		*n = N(data_rules);
		return data_rules;
	case CKO_CERTIFICATE:
		*n = N(certificate_rules);
		return certificate_rules;
	default:
		*n = 0;
		return NULL;
	}
}

const tp_attr_rule *attr_rule(CK_OBJECT_CLASS klass, CK_ATTRIBUTE_TYPE type)
{
	size_t n = 0;
	const tp_attr_rule *rules = attr_rules(klass, &n);

	for (size_t i = 0; i < n; i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}
