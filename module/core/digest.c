#include "core/digest.h"

#include "core/op.h"
#include "core/session.h"
#include "mech/digest.h"

static const uint8_t empty[1];

CK_RV digestop_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech)
{
	return softop_init(lib, hs, TP_OPK_DIGEST, mech, CK_INVALID_HANDLE);
}

/* Digest and DigestFinal: the length is known before any work. */
static CK_RV digest_out(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_mode mode, const CK_BYTE *in,
			CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	void *ctx = NULL;
	bool keep = false;
	CK_RV rv = softop_take(lib, hs, TP_OPK_DIGEST, mode, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!out_len || (!in && in_len)) {
		rv = CKR_ARGUMENTS_BAD;
	} else {
		size_t n = digest_len(ctx);

		if (!out || *out_len < n) {
			rv = out ? CKR_BUFFER_TOO_SMALL : CKR_OK;
			*out_len = n;
			keep = true;
		} else {
			rv = digest_update(ctx, in ? in : empty, in_len);
			if (rv == CKR_OK)
				rv = digest_final(ctx, out);
			if (rv == CKR_OK)
				*out_len = n;
		}
	}
	return softop_give(lib, hs, TP_OPK_DIGEST, ctx, keep, rv);
}

CK_RV digestop_digest(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		      CK_BYTE *out, CK_ULONG *out_len)
{
	return digest_out(lib, hs, TP_OP_SINGLE, in, in_len, out, out_len);
}

CK_RV digestop_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG *out_len)
{
	return digest_out(lib, hs, TP_OP_MULTI, NULL, 0, out, out_len);
}

CK_RV digestop_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len)
{
	void *ctx = NULL;
	CK_RV rv = softop_take(lib, hs, TP_OPK_DIGEST, TP_OP_MULTI, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!in && in_len)
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = digest_update(ctx, in ? in : empty, in_len);
	return softop_give(lib, hs, TP_OPK_DIGEST, ctx, rv == CKR_OK, rv);
}

CK_RV digestop_key(tp_lib *lib, CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE key)
{
	void *ctx = NULL;
	tp_key_copy k;
	tp_session *s;
	CK_RV rv = softop_take(lib, hs, TP_OPK_DIGEST, TP_OP_MULTI, &ctx);

	if (rv != CKR_OK)
		return rv;
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	s = session_lookup_locked(lib, hs);
	rv = s ? softkey_copy_locked(lib, s, key, 0, &k) : CKR_SESSION_CLOSED;
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv == CKR_KEY_TYPE_INCONSISTENT)
		rv = CKR_KEY_INDIGESTIBLE;   /* a Tang key: no value here */
	if (rv == CKR_OK) {
		rv = digest_update(ctx, k.value, k.len);
		softkey_wipe(&k);
	}
	return softop_give(lib, hs, TP_OPK_DIGEST, ctx, rv == CKR_OK, rv);
}
