#include "core/attrs.h"

#include <string.h>

bool attrs_valid_kind(tp_attr_kind kind, const CK_ATTRIBUTE *a)
{
	switch (kind) {
	case TP_KIND_BOOL:
		return a->pValue && a->ulValueLen == sizeof(CK_BBOOL);
	case TP_KIND_ULONG:
		return a->pValue && a->ulValueLen == sizeof(CK_ULONG);
	case TP_KIND_DATE:
		return a->ulValueLen == 0 || (a->pValue && a->ulValueLen == sizeof(CK_DATE));
	case TP_KIND_BYTES:
		return a->ulValueLen == 0 || a->pValue;
	}
	return false;
}

bool attrs_readable(const tp_object *obj, CK_ATTRIBUTE_TYPE type)
{
	const tp_attr_rule *rule = attr_rule(obj->klass, type);

	if (!rule || (rule->flags & TP_ATTR_NEVER_READ))
		return false;
	if ((rule->flags & TP_ATTR_SENSITIVE) &&
	    (object_bool(obj, CKA_SENSITIVE) || !object_bool(obj, CKA_EXTRACTABLE)))
		return false;
	return true;
}

/* The five cases of PKCS#11 2.40 §5.7 C_GetAttributeValue, for every
 * entry; the first failure decides the return value, but every entry is
 * still processed. */
CK_RV attrs_get(const tp_object *obj, CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	CK_RV rv = CKR_OK;

	for (CK_ULONG i = 0; i < count; i++) {
		CK_ATTRIBUTE *t = &tmpl[i];
		const tp_attr_rule *rule = attr_rule(obj->klass, t->type);
		const CK_ATTRIBUTE *a = rule ? object_get(obj, t->type) : NULL;
		CK_RV this_rv = CKR_OK;

		if (rule && !attrs_readable(obj, t->type))
			this_rv = CKR_ATTRIBUTE_SENSITIVE;
		else if (!a)
			this_rv = CKR_ATTRIBUTE_TYPE_INVALID;
		else if (!t->pValue)
			t->ulValueLen = a->ulValueLen;
		else if (t->ulValueLen < a->ulValueLen)
			this_rv = CKR_BUFFER_TOO_SMALL;
		else {
			if (a->ulValueLen)
				memcpy(t->pValue, a->pValue, a->ulValueLen);
			t->ulValueLen = a->ulValueLen;
		}
		if (this_rv != CKR_OK) {
			t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
			if (rv == CKR_OK)
				rv = this_rv;
		}
	}
	return rv;
}

bool attrs_match(const tp_object *obj, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		const CK_ATTRIBUTE *t = &tmpl[i];
		const tp_attr_rule *rule = attr_rule(obj->klass, t->type);
		const CK_ATTRIBUTE *a;

		/* A sensitive value never matches: no search oracle. */
		if (!rule || !attrs_readable(obj, t->type))
			return false;
		a = object_get(obj, t->type);
		if (!a)
			return false;
		if (rule->kind == TP_KIND_BOOL) {
			if (t->ulValueLen != sizeof(CK_BBOOL) || !t->pValue ||
			    !*(const CK_BBOOL *)t->pValue != !*(const CK_BBOOL *)a->pValue)
				return false;
			continue;
		}
		if (t->ulValueLen != a->ulValueLen)
			return false;
		if (a->ulValueLen && (!t->pValue || memcmp(t->pValue, a->pValue, a->ulValueLen) != 0))
			return false;
	}
	return true;
}
