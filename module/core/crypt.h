/* C_Encrypt* and C_Decrypt*: one encryption and one decryption operation
 * per session.  CKM_TANG_JWE (mech/jwe.c) is handled here; the AES
 * mechanisms on soft keys are dispatched to core/cipher.c (core/op.h has
 * their operation rules, the same as below).
 *
 * Operation rules (PKCS#11 2.40 §5.2, §5.8, §5.9): Init on an active
 * operation is CKR_OPERATION_ACTIVE; a step without Init is
 * CKR_OPERATION_NOT_INITIALIZED; mixing single-part and multi-part steps is
 * CKR_OPERATION_ACTIVE (the operation stays); a length query (NULL output
 * buffer) and CKR_BUFFER_TOO_SMALL keep the operation, every other result
 * ends it.  Update steps produce no output (the whole JWE or plaintext is
 * needed): an Update with a NULL output buffer is a length query (0) and
 * consumes nothing.
 *
 * Neither a length query nor a too-small buffer costs a network exchange:
 * the plaintext of a JWE is exactly as long as its ciphertext, known from
 * the local parse.  Encryption is offline; its JWE is computed once and
 * kept in the operation until delivered.  The exchange runs with no lock
 * held: the step marks the operation busy, takes what it needs, and looks
 * the session up again afterwards. */
#ifndef TP_CORE_CRYPT_H
#define TP_CORE_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "core/op.h"
#include "tang/adv.h"

typedef struct tp_crypt_op {
	bool active;
	bool busy;                   /* a step runs with the lock dropped */
	tp_op_mode mode;
	CK_MECHANISM_TYPE mech;
	tp_token *token;
	tp_exchange_key key;
	uint8_t *in;                 /* Update input: JWE text or plaintext (wiped) */
	size_t in_len, in_cap;
	char *out;                   /* encrypt: the JWE, until delivered */
	size_t out_len;
	uint8_t out_digest[32];      /* SHA-256 of the plaintext out was made of */
} tp_crypt_op;

/* Ends the operation: wipes and frees its buffers. */
void crypt_op_clear(tp_crypt_op *op);

CK_RV crypt_encrypt_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
			 CK_OBJECT_HANDLE key);
CK_RV crypt_encrypt(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		    CK_BYTE *out, CK_ULONG *out_len);
CK_RV crypt_encrypt_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			   CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len);
CK_RV crypt_encrypt_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG *out_len);

CK_RV crypt_decrypt_init(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_MECHANISM *mech,
			 CK_OBJECT_HANDLE key);
CK_RV crypt_decrypt(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in, CK_ULONG in_len,
		    CK_BYTE *out, CK_ULONG *out_len);
CK_RV crypt_decrypt_update(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_BYTE *in,
			   CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len);
CK_RV crypt_decrypt_final(tp_lib *lib, CK_SESSION_HANDLE hs, CK_BYTE *out, CK_ULONG *out_len);

#endif
