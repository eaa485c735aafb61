/* libFuzzer: any bytes as a spool file; decoding must stop cleanly, for
 * request and follow records alike. */
#include "spool_format.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	while (spool_decode_record(data, size, &pos, &t, &e, &f) == 1) {
		if (pos > size)
			__builtin_trap();
		if (t == SPOOL_FOLLOW && f.target_arn.len && f.target_arn.ptr &&
		    (const unsigned char *)f.target_arn.ptr + f.target_arn.len > data + size)
			__builtin_trap();
	}
	return 0;
}
