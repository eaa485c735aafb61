/* libFuzzer: any text as a configuration file. */
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	char err[ERR_LEN];
	config_free(config_load_text(text, "fuzz.conf", err));
	free(text);
	return 0;
}
