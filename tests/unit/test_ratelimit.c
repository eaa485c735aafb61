/* The adaptive rate limiter: unlimited until throttled, cuts, recovery, the cap. */
#include "test_util.h"

#include "ratelimit.h"

static void unlimited_until_throttled(void **s)
{
	(void)s;
	struct ratelimit r;
	ratelimit_init(&r, 0, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take(&r, 1000 + (uint64_t)i / 10), 0);
	ratelimit_on_throttle(&r, 1100);
	assert_true(r.rate > 0);
	/* now some calls must wait */
	int waited = 0;
	for (int i = 0; i < 1000 && !waited; i++)
		waited = ratelimit_take(&r, 1100) > 0;
	assert_true(waited);
}

static void max_rate_caps_and_recovery_stops_at_it(void **s)
{
	(void)s;
	struct ratelimit r;
	ratelimit_init(&r, 10, 0);
	int started = 0;
	for (uint64_t t = 0; t < 2000; t++)
		started += ratelimit_take(&r, t) == 0;
	/* 10/s for 2 s plus the initial burst of 10 */
	assert_in_range(started, 25, 31);
	ratelimit_on_throttle(&r, 2000);
	assert_true(r.rate <= 7.0);
	double after_one = r.rate;
	/* a burst of throttled answers within a second is one signal */
	ratelimit_on_throttle(&r, 2100);
	ratelimit_on_throttle(&r, 2200);
	assert_true(r.rate == after_one);
	ratelimit_on_throttle(&r, 3200);
	assert_true(r.rate < after_one);
	for (int i = 0; i < 1000; i++)
		ratelimit_on_success(&r);
	assert_true(r.rate == 10.0);
}

static void recovery_is_quick_after_a_deep_cut(void **s)
{
	(void)s;
	struct ratelimit r;
	ratelimit_init(&r, 0, 0);
	for (uint64_t t = 0; t < 3000; t++)
		ratelimit_take(&r, t); /* 1000 calls/s observed */
	ratelimit_on_throttle(&r, 3000);
	assert_in_range((long)r.rate, 500, 800);
	/* 100 successes bring it back above what was sent, then unlimited */
	for (int i = 0; i < 100 && r.rate > 0; i++)
		ratelimit_on_success(&r);
	assert_true(r.rate == 0 || r.rate > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(unlimited_until_throttled),
	    TEST(max_rate_caps_and_recovery_stops_at_it),
	    TEST(recovery_is_quick_after_a_deep_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
