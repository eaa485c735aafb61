/* settle: which calls leave a request's fate unknown, and how a settling
 * call's decision ends the settling (SPEC section 5, "Ordering"). */
#include "test_util.h"

#include "settle.h"

static struct call_result response(long status)
{
	struct call_result r = {CG_OK, 0, NULL, status, NULL, 0, 0, 0};
	return r;
}

static struct call_result transport(enum cg_err err, int not_sent)
{
	struct call_result r = {err, not_sent, "timed out", 0, NULL, 0, 0, 0};
	return r;
}

static void timeout_after_sending_leaves_the_fate_unknown(void **s)
{
	(void)s;
	struct settle_state st = {0};
	struct call_result r = transport(CG_TIMEOUT, 0);
	settle_note(&st, &r);
	assert_true(st.unknown);
}

static void a_call_that_never_left_is_definite_not_created(void **s)
{
	(void)s;
	struct settle_state st = {0};
	struct call_result r = transport(CG_TRANSPORT, 1);
	settle_note(&st, &r);
	assert_false(st.unknown);
}

static void never_left_after_a_timeout_stays_unknown(void **s)
{
	(void)s;
	struct settle_state st = {0};
	struct call_result t = transport(CG_TIMEOUT, 0), refused = transport(CG_TRANSPORT, 1);
	settle_note(&st, &t);
	settle_note(&st, &refused); /* says nothing about the first call */
	assert_true(st.unknown);
}

static void server_error_leaves_the_fate_unknown(void **s)
{
	(void)s;
	struct settle_state st = {0};
	struct call_result r = response(503);
	settle_note(&st, &r);
	assert_true(st.unknown);
}

static void throttle_and_auth_refusals_say_nothing_of_earlier_calls(void **s)
{
	(void)s;
	long statuses[] = {429, 401, 403};
	for (size_t i = 0; i < 3; i++) {
		struct settle_state st = {.unknown = 1};
		struct call_result r = response(statuses[i]);
		settle_note(&st, &r);
		assert_true(st.unknown);
	}
}

static void success_and_body_refusals_are_definite(void **s)
{
	(void)s;
	long statuses[] = {200, 400, 404, 409};
	for (size_t i = 0; i < 4; i++) {
		struct settle_state st = {.unknown = 1};
		struct call_result r = response(statuses[i]);
		settle_note(&st, &r);
		assert_false(st.unknown);
	}
}

static void settling_calls_are_counted(void **s)
{
	(void)s;
	struct settle_state st = {.unknown = 1, .active = 1};
	struct call_result t = transport(CG_TIMEOUT, 0), ok = response(200);
	settle_note(&st, &t);
	settle_note(&st, &ok);
	assert_int_equal(st.calls, 2);
	struct settle_state idle = {0};
	settle_note(&idle, &ok);
	assert_int_equal(idle.calls, 0);
}

static void outcome_of_each_final_decision(void **s)
{
	(void)s;
	struct awserr refused = {.http_status = 404, .retryable = 0};
	struct awserr busy = {.http_status = 500, .retryable = 1};
	struct attempt_decision acc = {.kind = AT_ACCEPT};
	struct attempt_decision no = {.kind = AT_ANSWER_AWS, .aws = &refused};
	struct attempt_decision late = {.kind = AT_ANSWER_AWS, .aws = &busy};
	struct attempt_decision gw = {.kind = AT_ANSWER_GATEWAY, .code = GW_EXPIRED};
	assert_int_equal(settle_outcome_of(&acc, 0), SETTLE_ACCEPTED);
	assert_int_equal(settle_outcome_of(&no, 0), SETTLE_REFUSED);
	assert_int_equal(settle_outcome_of(&late, 0), SETTLE_ABANDONED);
	assert_int_equal(settle_outcome_of(&gw, 0), SETTLE_ABANDONED);
	assert_int_equal(settle_outcome_of(&gw, 1), SETTLE_STOPPED);
	assert_string_equal(settle_outcome_name(SETTLE_REFUSED), "refused");
}

static void only_answers_end_a_settling(void **s)
{
	(void)s;
	enum attempt_kind final[] = {AT_ACCEPT, AT_ANSWER_AWS, AT_ANSWER_GATEWAY};
	enum attempt_kind again[] = {AT_RETRY, AT_RESIGN, AT_REFRESH, AT_THROTTLE};
	for (size_t i = 0; i < 3; i++) {
		struct attempt_decision d = {.kind = final[i]};
		assert_true(settle_is_final(&d));
	}
	for (size_t i = 0; i < 4; i++) {
		struct attempt_decision d = {.kind = again[i]};
		assert_false(settle_is_final(&d));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(timeout_after_sending_leaves_the_fate_unknown),
	    TEST(a_call_that_never_left_is_definite_not_created),
	    TEST(never_left_after_a_timeout_stays_unknown),
	    TEST(server_error_leaves_the_fate_unknown),
	    TEST(throttle_and_auth_refusals_say_nothing_of_earlier_calls),
	    TEST(success_and_body_refusals_are_definite),
	    TEST(settling_calls_are_counted),
	    TEST(outcome_of_each_final_decision),
	    TEST(only_answers_end_a_settling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
