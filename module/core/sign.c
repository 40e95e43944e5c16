#include "core/sign.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/op.h"
#include "mech/mac.h"

static const uint8_t empty[1];

CK_RV signop_sign_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
		       CK_OBJECT_HANDLE key)
{
	return softop_init(lib, hs, TP_OPK_SIGN, mech, key);
}

CK_RV signop_verify_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
			 CK_OBJECT_HANDLE key)
{
	return softop_init(lib, hs, TP_OPK_VERIFY, mech, key);
}

/* Sign and SignFinal: the length is known before any work, so a length
 * query or a short buffer consumes nothing. */
static CK_RV sign_out(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_mode mode, const CK_BYTE *in,
		      CK_ULONG in_len, CK_BYTE *sig, CK_ULONG *sig_len)
{
	void *ctx = NULL;
	bool keep = false;
	CK_RV rv = softop_take(lib, hs, TP_OPK_SIGN, mode, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!sig_len || (!in && in_len)) {
		rv = CKR_ARGUMENTS_BAD;
	} else {
		size_t n = mac_len(ctx);

		if (!sig || *sig_len < n) {
			rv = sig ? CKR_BUFFER_TOO_SMALL : CKR_OK;
			*sig_len = n;
			keep = true;
		} else {
			rv = mac_update(ctx, in ? in : empty, in_len);
			if (rv == CKR_OK)
				rv = mac_final(ctx, sig);
			if (rv == CKR_OK)
				*sig_len = n;
		}
	}
	return softop_give(lib, hs, TP_OPK_SIGN, ctx, keep, rv);
}

CK_RV signop_sign(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		  CK_BYTE *sig, CK_ULONG *sig_len)
{
	return sign_out(lib, hs, TP_OP_SINGLE, in, in_len, sig, sig_len);
}

CK_RV signop_sign_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *sig, CK_ULONG *sig_len)
{
	return sign_out(lib, hs, TP_OP_MULTI, NULL, 0, sig, sig_len);
}

static CK_RV update(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_kind kind, const CK_BYTE *in,
		    CK_ULONG in_len)
{
	void *ctx = NULL;
	CK_RV rv = softop_take(lib, hs, kind, TP_OP_MULTI, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!in && in_len)
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = mac_update(ctx, in ? in : empty, in_len);
	return softop_give(lib, hs, kind, ctx, rv == CKR_OK, rv);
}

CK_RV signop_sign_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			 CK_ULONG in_len)
{
	return update(lib, hs, TP_OPK_SIGN, in, in_len);
}

CK_RV signop_verify_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			   CK_ULONG in_len)
{
	return update(lib, hs, TP_OPK_VERIFY, in, in_len);
}

/* Verify and VerifyFinal: always the end of the operation. */
static CK_RV verify_end(tp_lib *lib, CK_SESSION_HANDLE hs, tp_op_mode mode, const CK_BYTE *in,
			CK_ULONG in_len, const CK_BYTE *sig, CK_ULONG sig_len)
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	void *ctx = NULL;
	CK_RV rv = softop_take(lib, hs, TP_OPK_VERIFY, mode, &ctx);

	if (rv != CKR_OK)
		return rv;
	if ((!in && in_len) || (!sig && sig_len))
		rv = CKR_ARGUMENTS_BAD;
	else if (sig_len != mac_len(ctx))
		rv = CKR_SIGNATURE_LEN_RANGE;
	else
		rv = mac_update(ctx, in ? in : empty, in_len);
	if (rv == CKR_OK)
		rv = mac_final(ctx, mac);
	if (rv == CKR_OK && CRYPTO_memcmp(mac, sig, sig_len) != 0)
		rv = CKR_SIGNATURE_INVALID;
	OPENSSL_cleanse(mac, sizeof(mac));
	return softop_give(lib, hs, TP_OPK_VERIFY, ctx, false, rv);
}

CK_RV signop_verify(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		    const CK_BYTE *sig, CK_ULONG sig_len)
{
	return verify_end(lib, hs, TP_OP_SINGLE, in, in_len, sig, sig_len);
}

CK_RV signop_verify_final(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *sig,
			  CK_ULONG sig_len)
{
	return verify_end(lib, hs, TP_OP_MULTI, NULL, 0, sig, sig_len);
}
