/* libFuzzer: any bytes as a spool file; decoding must stop cleanly. */
#include "spool_format.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	while (spool_decode(data, size, &pos, &t, &e) == 1)
		if (pos > size)
			__builtin_trap();
	return 0;
}
