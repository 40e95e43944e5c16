#include "core/handle.h"

#include <stdatomic.h>

static _Atomic unsigned long last_handle;

CK_ULONG handle_next(void)
{
	/* 0 is CK_INVALID_HANDLE: start at 1. */
	return atomic_fetch_add(&last_handle, 1) + 1;
}
