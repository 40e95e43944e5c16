/* libFuzzer: a compact JWE as C_Decrypt(CKM_TANG_JWE) receives it: the
 * structure (jose/jwe.c) and every Clevis check that needs no network
 * (tang/clevis.c), against a server configured with the fixture adv.  The
 * input is not NUL-terminated, as C_DecryptUpdate collects it. */
#include "fuzz.h"

#include "jose/jwe.h"
#include "tang/clevis.h"
#include "tang/server.h"

static tp_tang_server *srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *adv = fuzz_read(FUZZ_ADV);

	fuzz_setup();
	srv = tang_server_new(FUZZ_URL, FUZZ_THP, adv, 1);
	free(adv);
	return srv ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_copy(data, size);
	const char *why = NULL;
	tp_clevis_jwe cj;
	tp_jwe jwe;

	if (jwe_parse(text, size, &jwe, &why) == TP_OK) {
		(void)jwe_check_ecdh_es(&jwe, &why);
		jwe_clear(&jwe);
	}
	/* As the module does: cleared whatever the outcome (tang/clevis.h). */
	(void)clevis_jwe_parse(srv, text, size, &cj);
	clevis_jwe_clear(&cj);
	free(text);
	return 0;
}
