/* Attribute behaviour as data (STYLE.md rule 5): one table per object
 * class saying which attributes exist, their kind, whether a C_DeriveKey
 * template may set them, their default, and whether they are sensitive. */
#ifndef TP_CORE_ATTR_RULES_H
#define TP_CORE_ATTR_RULES_H

#include <p11-kit/pkcs11.h>

typedef enum tp_attr_kind {
	TP_KIND_BOOL,
	TP_KIND_ULONG,
	TP_KIND_BYTES,
	TP_KIND_DATE,                /* CK_DATE or empty */
} tp_attr_kind;

enum {
	TP_ATTR_DERIVE_OK = 1u << 0,   /* a C_DeriveKey / C_UnwrapKey template may set it */
	TP_ATTR_DEFAULT = 1u << 1,     /* set to dflt (bytes/date: empty) when not given */
	TP_ATTR_SENSITIVE = 1u << 2,   /* unreadable when CKA_SENSITIVE or !CKA_EXTRACTABLE */
	TP_ATTR_NEVER_READ = 1u << 3,  /* never readable (the value is not here) */
	TP_ATTR_SECRET = 1u << 4,      /* value wiped when freed */
	/* Object management (core/manage.c): */
	TP_ATTR_CREATE_OK = 1u << 5,   /* a C_CreateObject template may set it */
	TP_ATTR_REQUIRED = 1u << 6,    /* C_CreateObject needs it */
	TP_ATTR_MODIFY = 1u << 7,      /* C_SetAttributeValue/C_CopyObject may change it */
	TP_ATTR_COPY_ONLY = 1u << 8,   /* only C_CopyObject may change it */
	TP_ATTR_ONLY_TRUE = 1u << 9,   /* once true, stays true (CKA_SENSITIVE) */
	TP_ATTR_ONLY_FALSE = 1u << 10, /* once false, stays false (CKA_EXTRACTABLE) */
	/* TP_ATTR_DERIVE_OK also means: a C_GenerateKey template may set it. */
};

typedef struct tp_attr_rule {
	CK_ATTRIBUTE_TYPE type;
	tp_attr_kind kind;
	unsigned flags;
	CK_ULONG dflt;               /* TP_ATTR_DEFAULT, bool or ulong */
} tp_attr_rule;

/* NULL when objects of klass have no attribute type.  Classes with
 * tables: public, private and secret keys, data objects, certificates
 * (X.509). */
const tp_attr_rule *attr_rule(CK_OBJECT_CLASS klass, CK_ATTRIBUTE_TYPE type);
/* The rules of klass (for defaults). */
const tp_attr_rule *attr_rules(CK_OBJECT_CLASS klass, size_t *n);

#endif
