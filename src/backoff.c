/* backoff: retry delays with full or equal jitter under a capped exponential ceiling. */
#include "backoff.h"

/* min(cap_ms, base_ms * 2^(retry-1)), without overflow. */
static uint64_t ceiling(unsigned retry, uint64_t base_ms, uint64_t cap_ms)
{
	uint64_t c = base_ms;
	for (unsigned i = 1; i < retry && c < cap_ms; i++)
		c *= 2;
	return c > cap_ms ? cap_ms : c;
}

uint64_t backoff_full_jitter(unsigned retry, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd)
{
	return (uint64_t)rnd % (ceiling(retry, base_ms, cap_ms) + 1);
}

uint64_t backoff_equal_jitter(unsigned retry, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd)
{
	uint64_t half = ceiling(retry, base_ms, cap_ms) / 2;
	return half + (uint64_t)rnd % (half + 1);
}
