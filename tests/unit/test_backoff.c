/* Backoff (capped exponential, full jitter) and the adaptive rate limiter. */
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

static void unlimited_until_throttled(void **s)
{
	(void)s;
	struct rate_limiter r;
	rate_init(&r, 0, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(rate_take(&r, 1000 + (uint64_t)i / 10), 0);
	rate_on_throttle(&r, 1100);
	assert_true(r.rate > 0);
	/* now some calls must wait */
	int waited = 0;
	for (int i = 0; i < 1000 && !waited; i++)
		waited = rate_take(&r, 1100) > 0;
	assert_true(waited);
}

static void max_rate_caps_and_recovery_stops_at_it(void **s)
{
	(void)s;
	struct rate_limiter r;
	rate_init(&r, 10, 0);
	int started = 0;
	for (uint64_t t = 0; t < 2000; t++)
		started += rate_take(&r, t) == 0;
	/* 10/s for 2 s plus the initial burst of 10 */
	assert_in_range(started, 25, 31);
	rate_on_throttle(&r, 2000);
	assert_true(r.rate <= 7.0);
	double after_one = r.rate;
	/* a burst of throttled answers within a second is one signal */
	rate_on_throttle(&r, 2100);
	rate_on_throttle(&r, 2200);
	assert_true(r.rate == after_one);
	rate_on_throttle(&r, 3200);
	assert_true(r.rate < after_one);
	for (int i = 0; i < 1000; i++)
		rate_on_success(&r);
	assert_true(r.rate == 10.0);
}

static void recovery_is_quick_after_a_deep_cut(void **s)
{
	(void)s;
	struct rate_limiter r;
	rate_init(&r, 0, 0);
	for (uint64_t t = 0; t < 3000; t++)
		rate_take(&r, t); /* 1000 calls/s observed */
	rate_on_throttle(&r, 3000);
	assert_in_range((long)r.rate, 500, 800);
	/* 100 successes bring it back above what was sent, then unlimited */
	for (int i = 0; i < 100 && r.rate > 0; i++)
		rate_on_success(&r);
	assert_true(r.rate == 0 || r.rate > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(jitter_stays_within_the_capped_ceiling),
	    TEST(equal_jitter_keeps_at_least_half_the_ceiling),
	    TEST(unlimited_until_throttled),
	    TEST(max_rate_caps_and_recovery_stops_at_it),
	    TEST(recovery_is_quick_after_a_deep_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
