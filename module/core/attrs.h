/* CK_ATTRIBUTE array handling: C_GetAttributeValue copy-out and template
 * matching, implemented once for every object class. */
#ifndef TP_CORE_ATTRS_H
#define TP_CORE_ATTRS_H

#include <stdbool.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#include "core/attr_rules.h"
#include "core/object.h"

/* The spec's C_GetAttributeValue algorithm: every entry is processed; an
 * unreadable entry gets ulValueLen = CK_UNAVAILABLE_INFORMATION and the
 * call never returns CKR_OK if one failed. */
CK_RV attrs_get(const tp_object *obj, CK_ATTRIBUTE *tmpl, CK_ULONG count);
/* True iff every template entry equals the object's readable attribute. */
bool attrs_match(const tp_object *obj, const CK_ATTRIBUTE *tmpl, CK_ULONG count);
/* True iff the attribute may be revealed (not sensitive on this object). */
bool attrs_readable(const tp_object *obj, CK_ATTRIBUTE_TYPE type);
/* Checks that a template entry has the size its kind needs. */
bool attrs_valid_kind(tp_attr_kind kind, const CK_ATTRIBUTE *a);

/* The CK_ULONG value of a template entry (checked: pValue holds
 * sizeof(CK_ULONG) bytes).  The caller's buffer may be unaligned: the
 * application owns it, so it is copied, never dereferenced as CK_ULONG. */
static inline CK_ULONG attrs_ulong(const CK_ATTRIBUTE *a)
{
	CK_ULONG v;

	memcpy(&v, a->pValue, sizeof(v));
	return v;
}

#endif
