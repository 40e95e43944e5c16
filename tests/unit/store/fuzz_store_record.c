/* libFuzzer target: any bytes through the store's record parser (metadata,
 * object files and decrypted attribute lists all go through it). */
#include <stddef.h>
#include <stdint.h>

#include "store/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	store_record rec;

	if (store_record_parse(data, size, &rec) == STORE_OK)
		store_record_clear(&rec);
	return 0;
}
