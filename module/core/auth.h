/* Token lifecycle and login (DESIGN.md §5, docs/store.md): C_InitToken,
 * C_InitPIN, C_SetPIN, C_Login, C_Logout.  Login state is per token and
 * application (tp_token.login); the store checks PINs and counts failures
 * persistently.  Every Tang exchange and every scrypt runs unlocked. */
#ifndef TP_CORE_AUTH_H
#define TP_CORE_AUTH_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"

CK_RV auth_init_token(tp_lib *lib, CK_SLOT_ID slot, const CK_UTF8CHAR *pin, CK_ULONG len,
		      const CK_UTF8CHAR *label);
CK_RV auth_init_pin(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_UTF8CHAR *pin, CK_ULONG len);
CK_RV auth_set_pin(tp_lib *lib, CK_SESSION_HANDLE hs, const CK_UTF8CHAR *old_pin,
		   CK_ULONG old_len, const CK_UTF8CHAR *new_pin, CK_ULONG new_len);
CK_RV auth_login(tp_lib *lib, CK_SESSION_HANDLE hs, CK_USER_TYPE user,
		 const CK_UTF8CHAR *pin, CK_ULONG len);
CK_RV auth_logout(tp_lib *lib, CK_SESSION_HANDLE hs);
/* The last session of tok closed: the application is logged out. */
void auth_session_gone(tp_lib *lib, tp_token *tok);

#endif
