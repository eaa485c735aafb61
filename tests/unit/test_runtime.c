/* runtime: copies that never return NULL, a monotonic clock, and a random
 * source that fails closed. RAND_bytes is replaced here (the test binary's
 * definition wins over libcrypto's) so its failure can be provoked. */
#include "test_util.h"

#include <openssl/rand.h>

#include "runtime.h"

static int rand_fails;

int RAND_bytes(unsigned char *buf, int num)
{
	if (rand_fails)
		return 0;
	for (int i = 0; i < num; i++)
		buf[i] = (unsigned char)(0xA5 ^ i);
	return 1;
}

static void strdup_copies_and_treats_null_as_empty(void **state)
{
	(void)state;
	char *a = rt_strdup("thing-7");
	char *b = rt_strdup(NULL);
	assert_string_equal(a, "thing-7");
	assert_string_equal(b, "");
	free(a);
	free(b);
}

static void memdup_terminates_bytes_that_are_not_a_string(void **state)
{
	(void)state;
	char *d = rt_memdup("abc\0def", 7);
	assert_memory_equal(d, "abc\0def", 7);
	assert_int_equal(d[7], '\0');
	free(d);
}

static void monotonic_clock_never_goes_back(void **state)
{
	(void)state;
	uint64_t prev = rt_now_ms();
	for (int i = 0; i < 1000; i++) {
		uint64_t now = rt_now_ms();
		assert_true(now >= prev);
		prev = now;
	}
}

static void random_fills_the_buffer(void **state)
{
	(void)state;
	unsigned char b[16] = {0};
	rand_fails = 0;
	assert_int_equal(rt_random(b, sizeof(b)), 0);
	assert_int_equal(b[0], 0xA5);
	assert_int_equal(b[15], 0xA5 ^ 15);
}

static void random_fails_closed_when_the_csprng_fails(void **state)
{
	(void)state;
	unsigned char b[16];
	memset(b, 0x77, sizeof(b));
	rand_fails = 1;
	assert_int_equal(rt_random(b, sizeof(b)), -1);
	rand_fails = 0;
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0); /* nothing guessable handed back */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(strdup_copies_and_treats_null_as_empty),
	    TEST(memdup_terminates_bytes_that_are_not_a_string),
	    TEST(monotonic_clock_never_goes_back),
	    TEST(random_fills_the_buffer),
	    TEST(random_fails_closed_when_the_csprng_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
