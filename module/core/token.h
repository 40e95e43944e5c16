/* Virtual slots and tokens: one per configured token, slot ID = index + 1.
 * Nothing here touches the network except token_load_keys. */
#ifndef TP_CORE_TOKEN_H
#define TP_CORE_TOKEN_H

#include <p11-kit/pkcs11.h>

#include "core/lib.h"
#include "tang/server.h"
#include "util/config.h"

struct tp_token {
	CK_SLOT_ID slot_id;
	const tp_token_config *cfg;
	tp_tang_server *srv;         /* NULL for bindings we cannot use yet (sss) */
	char serial[17];             /* 16 hex digits of SHA-256(label) */
};

/* Fill tok from cfg (no network).  Fails only on allocation/setup errors. */
CK_RV token_init(tp_token *tok, CK_SLOT_ID id, const tp_token_config *cfg);
void token_clear(tp_token *tok);

/* NULL for an invalid slot ID.  Tokens are immutable after C_Initialize. */
tp_token *token_get(tp_lib *lib, CK_SLOT_ID id);

CK_RV token_slot_list(tp_lib *lib, CK_SLOT_ID *list, CK_ULONG *count);
CK_RV token_slot_info(tp_lib *lib, CK_SLOT_ID id, CK_SLOT_INFO *info);
CK_RV token_info(tp_lib *lib, CK_SLOT_ID id, CK_TOKEN_INFO *info);
CK_RV token_mechanism_list(tp_lib *lib, CK_SLOT_ID id, CK_MECHANISM_TYPE *list, CK_ULONG *count);
CK_RV token_mechanism_info(tp_lib *lib, CK_SLOT_ID id, CK_MECHANISM_TYPE type,
			   CK_MECHANISM_INFO *info);

/* Make sure the token shows an object pair for every exchange key of its
 * server's advertisement (fetched on first need; network, so call it with
 * no lock held).  Objects already shown keep their handles.  A failure
 * leaves the objects as they are: the tang layer has logged why.  Returns
 * the failure (TP_OK when the keys are shown, or the token has no Tang
 * binding) for the session's ulDeviceError. */
tp_err token_load_keys(tp_lib *lib, tp_token *tok);

#endif
