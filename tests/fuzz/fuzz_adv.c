/* libFuzzer: an advertisement (JWS, general or flattened, and its
 * payload's JWKs) as GET /adv returns it or a configuration names it:
 * adv_verify with the fixture's pin, and without a pin. */
#include "fuzz.h"

#include <string.h>

#include "tang/adv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_copy(data, size);
	tp_adv *adv = NULL;

	if (adv_verify(text, size, FUZZ_THP, "fuzz", &adv) == TP_OK)
		adv_free(adv);
	adv = NULL;
	if (adv_verify(text, size, NULL, "fuzz", &adv) == TP_OK)
		adv_free(adv);
	free(text);
	return 0;
}
