/* Backoff: capped exponential ceilings with full and with equal jitter. */
#include "test_util.h"

#include "backoff.h"

static void jitter_stays_within_the_capped_ceiling(void **s)
{
	(void)s;
	uint32_t rnds[] = {0, 1, 77, 12345, 0x7fffffff, 0xffffffff};
	for (unsigned retry = 1; retry <= 12; retry++) {
		uint64_t ceiling = 100ull << (retry - 1);
		if (ceiling > 5000)
			ceiling = 5000;
		for (size_t i = 0; i < 6; i++)
			assert_true(backoff_full_jitter(retry, 100, 5000, rnds[i]) <= ceiling);
	}
	/* the whole range is reachable: rnd == ceiling gives the ceiling */
	assert_int_equal(backoff_full_jitter(1, 100, 5000, 100), 100);
	assert_int_equal(backoff_full_jitter(3, 100, 5000, 400), 400);
	assert_int_equal(backoff_full_jitter(40, 100, 5000, 5000), 5000);
	assert_int_equal(backoff_full_jitter(2, 100, 5000, 0), 0);
}

static void equal_jitter_keeps_at_least_half_the_ceiling(void **s)
{
	(void)s;
	uint32_t rnds[] = {0, 1, 77, 12345, 0x7fffffff, 0xffffffff};
	for (unsigned retry = 1; retry <= 12; retry++) {
		uint64_t ceiling = 500ull << (retry - 1);
		if (ceiling > 10000)
			ceiling = 10000;
		for (size_t i = 0; i < 6; i++) {
			uint64_t d = backoff_equal_jitter(retry, 500, 10000, rnds[i]);
			assert_true(d >= ceiling / 2 && d <= ceiling);
		}
	}
	assert_int_equal(backoff_equal_jitter(1, 500, 10000, 0), 250);
	assert_int_equal(backoff_equal_jitter(1, 500, 10000, 250), 500);
	assert_int_equal(backoff_equal_jitter(30, 500, 10000, 0), 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(jitter_stays_within_the_capped_ceiling),
	    TEST(equal_jitter_keeps_at_least_half_the_ceiling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
