#include "core/cipher.h"

#include <openssl/crypto.h>

#include "core/op.h"
#include "mech/aes.h"

/* Stands in for a NULL input of length 0. */
static const uint8_t empty[1];

static tp_op_kind kind_of(bool enc)
{
	return enc ? TP_OPK_ENCRYPT : TP_OPK_DECRYPT;
}

static void wipe(uint8_t *res, size_t n)
{
	if (res)
		OPENSSL_clear_free(res, n);
}

CK_RV softcipher_single(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, const CK_BYTE *in,
			CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	void *ctx = NULL;
	uint8_t *res = NULL;
	size_t n = 0;
	bool keep = false;
	CK_RV rv = softop_take(lib, hs, kind_of(enc), TP_OP_SINGLE, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!out_len || (!in && in_len)) {
		rv = CKR_ARGUMENTS_BAD;
	} else {
		/* From the initial state, which stays for a retry. */
		rv = aes_cipher_oneshot(ctx, in ? in : empty, in_len, &res, &n);
		if (rv == CKR_OK)
			softop_deliver(res, n, out, out_len, &rv, &keep);
	}
	wipe(res, n);
	return softop_give(lib, hs, kind_of(enc), ctx, keep, rv);
}

/* The AES key wraps are single-part only (PKCS#11 2.40 §2.14); the
 * operation ends and core/op.c logs it. */
static CK_RV not_multipart(bool enc, const char *step)
{
	(void)enc;
	(void)step;
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV softcipher_update(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, const CK_BYTE *in,
			CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	void *ctx = NULL;
	size_t n = 0;
	bool keep = false;
	CK_RV rv = softop_take(lib, hs, kind_of(enc), TP_OP_MULTI, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!out_len || (!in && in_len))
		rv = CKR_ARGUMENTS_BAD;
	else if (!aes_cipher_multipart(ctx))
		rv = not_multipart(enc, "Update");
	else
		rv = aes_cipher_update_len(ctx, in_len, &n);
	if (rv == CKR_OK) {
		if (!out || *out_len < n) {
			/* A length query consumes nothing. */
			rv = out ? CKR_BUFFER_TOO_SMALL : CKR_OK;
			*out_len = n;
			keep = true;
		} else {
			rv = aes_cipher_update(ctx, in ? in : empty, in_len, out, &n);
			if (rv == CKR_OK) {
				*out_len = n;
				keep = true;
			}
		}
	}
	return softop_give(lib, hs, kind_of(enc), ctx, keep, rv);
}

CK_RV softcipher_final(tp_lib *lib, CK_SESSION_HANDLE hs, bool enc, CK_BYTE *out,
		       CK_ULONG *out_len)
{
	void *ctx = NULL;
	uint8_t *res = NULL;
	size_t n = 0;
	bool keep = false;
	CK_RV rv = softop_take(lib, hs, kind_of(enc), TP_OP_MULTI, &ctx);

	if (rv != CKR_OK)
		return rv;
	if (!out_len) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (!aes_cipher_multipart(ctx)) {
		rv = not_multipart(enc, "Final");
	} else {
		/* Computed on a copy: the context stays for a retry. */
		rv = aes_cipher_final(ctx, &res, &n);
		if (rv == CKR_OK)
			softop_deliver(res, n, out, out_len, &rv, &keep);
	}
	wipe(res, n);
	return softop_give(lib, hs, kind_of(enc), ctx, keep, rv);
}
