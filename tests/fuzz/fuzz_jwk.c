/* libFuzzer: one JWK (a /rec reply, an advertised key, a JWE's epk): the
 * point decoding and curve check, thumbprints and key_ops/use. */
#include "fuzz.h"

#include <jansson.h>

#include "jose/jwk.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	uint8_t point[TP_EC_MAX_POINT], raw[TP_THP_MAX_RAW];
	char b64[TP_THP_MAX_B64];
	const tp_curve *c = NULL;
	size_t len = 0;

	if (!j)
		return 0;
	(void)jwk_to_point(j, &c, point, &len);
	(void)jwk_thumbprint(j, TP_THP_S256, raw, b64);
	(void)jwk_thumbprint(j, TP_THP_S1, raw, b64);
	(void)jwk_allows(j, "deriveKey");
	(void)jwk_allows(j, "verify");
	json_decref(j);
	return 0;
}
