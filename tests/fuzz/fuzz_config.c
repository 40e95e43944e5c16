/* libFuzzer: a configuration file's text (config_parse; relative "adv"
 * file names resolve under a directory that does not exist). */
#include "fuzz.h"

#include "util/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_copy(data, size);
	tp_config *cfg = NULL;

	if (config_parse(text, size, "/nonexistent/tang-pkcs11/fuzz.conf", &cfg) == TP_OK)
		config_free(cfg);
	free(text);
	return 0;
}
