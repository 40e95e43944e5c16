#!/bin/bash
# exports.sh MODULE: the module exports every standard PKCS#11 2.40 C_*
# function (Barbican dlsym()s each by name) and nothing else.
set -u
module=${1:-$TANG_PKCS11_MODULE}
if ! command -v nm >/dev/null; then
	echo "nm (binutils) is missing"
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi
want=$(printf '%s\n' C_Initialize C_Finalize C_GetInfo C_GetFunctionList \
	C_GetSlotList C_GetSlotInfo C_GetTokenInfo C_GetMechanismList \
	C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession \
	C_CloseSession C_CloseAllSessions C_GetSessionInfo C_GetOperationState \
	C_SetOperationState C_Login C_Logout C_CreateObject C_CopyObject \
	C_DestroyObject C_GetObjectSize C_GetAttributeValue C_SetAttributeValue \
	C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit \
	C_Encrypt C_EncryptUpdate C_EncryptFinal C_DecryptInit C_Decrypt \
	C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest C_DigestUpdate \
	C_DigestKey C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal \
	C_SignRecoverInit C_SignRecover C_VerifyInit C_Verify C_VerifyUpdate \
	C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover C_DigestEncryptUpdate \
	C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate \
	C_GenerateKey C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey \
	C_SeedRandom C_GenerateRandom C_GetFunctionStatus C_CancelFunction \
	C_WaitForSlotEvent | sort)
got=$(nm -D --defined-only "$module" | awk '$2 ~ /^[TtWwiV]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
rc=0
missing=$(comm -23 <(echo "$want") <(echo "$got"))
extra=$(comm -13 <(echo "$want") <(echo "$got"))
if [ -n "$missing" ]; then echo "FAIL: not exported:" $missing; rc=1; fi
if [ -n "$extra" ]; then echo "FAIL: exported but not a PKCS#11 2.40 function:" $extra; rc=1; fi
n=$(echo "$got" | grep -c .)
[ $rc = 0 ] && echo "ok - exactly the 68 standard functions are exported ($n symbols)"
exit $rc
