/* attempt: every branch of the decision after a call, with fixed time and
 * randomness. */
#include "test_util.h"

#include "attempt.h"

static const struct attempt_policy P = {3, 100, 5000, 0};

static struct awserr aws(int status, int retryable)
{
	struct awserr e;
	memset(&e, 0, sizeof(e));
	e.http_status = status;
	e.retryable = retryable;
	snprintf(e.code, sizeof(e.code), "Code%d", status);
	return e;
}

static struct call_result response(long status, const struct awserr *ae)
{
	struct call_result r = {CG_OK, 0, NULL, status, ae, 0, 0, 0};
	return r;
}

static struct call_result transport(enum cg_err err, int not_sent)
{
	struct call_result r = {err, not_sent, "connection refused", 0, NULL, 0, 0, 0};
	return r;
}

static void decide(struct attempt_state *st, const struct attempt_policy *p,
                   const struct call_result *res, uint64_t now, uint64_t deadline, uint32_t rnd,
                   struct attempt_decision *d)
{
	attempt_begin(st);
	attempt_decide(st, p, res, now, deadline, rnd, d);
}

static void two_hundred_is_accepted(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct call_result r = response(200, NULL);
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ACCEPT);
	assert_int_equal(st.attempts, 1);
}

static void client_error_is_answered_at_once(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(400, 0);
	struct call_result r = response(400, &e);
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
	assert_ptr_equal(d.aws, &e);
}

static void server_error_is_retried_with_backoff_then_answered(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(500, 1);
	struct call_result r = response(500, &e);
	struct attempt_decision d;
	/* full jitter: rnd modulo (ceiling + 1), the ceiling 100 ms after the
	 * first attempt and 200 ms after the second */
	decide(&st, &P, &r, 1000, 30000, 100, &d);
	assert_int_equal(d.kind, AT_RETRY);
	assert_int_equal(d.at_ms, 1000 + 100 % 101);
	decide(&st, &P, &r, 2000, 30000, 150, &d);
	assert_int_equal(d.kind, AT_RETRY);
	assert_int_equal(d.at_ms, 2000 + 150 % 201);
	decide(&st, &P, &r, 3000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS); /* 3 attempts used */
	assert_string_equal(d.aws->code, "Code500");
	assert_ptr_equal(d.aws, &st.last_aws);
}

static void retry_never_passes_the_deadline(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(503, 1);
	struct call_result r = response(503, &e);
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 1050, 99, &d); /* delay 99 lands past 1050 */
	assert_int_equal(d.kind, AT_ANSWER_AWS);
}

static void shutdown_answers_instead_of_retrying(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct attempt_policy p = P;
	p.draining = 1;
	struct awserr e = aws(500, 1);
	struct call_result r = response(500, &e);
	struct attempt_decision d;
	decide(&st, &p, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
}

static void clock_skew_resigns_once_without_using_an_attempt(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(403, 0);
	e.clock_skew = 1;
	struct call_result r = response(403, &e);
	r.have_server_time = 1;
	r.server_time = 10600;
	r.local_time = 10000;
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_RESIGN);
	assert_int_equal(d.skew_s, 600);
	assert_int_equal(d.at_ms, 1000);
	assert_int_equal(st.attempts, 0);
	/* a second skew answer is final */
	decide(&st, &P, &r, 1100, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
}

static void clock_skew_without_a_date_is_final(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(403, 0);
	e.clock_skew = 1;
	struct call_result r = response(403, &e);
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
}

static void expired_token_refreshes_once(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(403, 0);
	e.expired_token = 1;
	struct call_result r = response(403, &e);
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_REFRESH);
	assert_int_equal(d.at_ms, 1000 + ATTEMPT_REFRESH_DELAY_MS);
	assert_int_equal(st.attempts, 0);
	decide(&st, &P, &r, 2000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
}

static void throttling_waits_to_the_deadline_using_no_attempt(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct awserr e = aws(429, 1);
	e.throttled = 1;
	struct call_result r = response(429, &e);
	struct attempt_decision d;
	for (int i = 0; i < 10; i++) { /* far more than max_attempts */
		decide(&st, &P, &r, 1000 + (uint64_t)i, 30000, 0, &d);
		assert_int_equal(d.kind, AT_THROTTLE);
		assert_int_equal(d.at_ms, 1000 + (uint64_t)i);
	}
	assert_int_equal(st.attempts, 0);
	assert_int_equal(st.throttled, 10);
	decide(&st, &P, &r, 30000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
	assert_int_equal(d.aws->http_status, 429);
}

static void unreachable_waits_without_attempts_then_one_last_try(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct call_result r = transport(CG_TRANSPORT, 1);
	struct attempt_decision d;
	for (int i = 0; i < 6; i++) {
		decide(&st, &P, &r, 1000, 30000, 7, &d);
		assert_int_equal(d.kind, AT_RETRY);
	}
	assert_int_equal(st.attempts, 0);
	assert_int_equal(st.waits, 6);
	/* near the deadline: a last try just before it */
	decide(&st, &P, &r, 29000, 30000, 4000, &d);
	assert_int_equal(d.kind, AT_RETRY);
	assert_int_equal(d.at_ms, 30000 - 50);
	/* at the margin: Unavailable with the transport message */
	decide(&st, &P, &r, 29960, 30000, 4000, &d);
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_UNAVAILABLE);
	assert_non_null(strstr(d.message, "connection refused"));
}

static void timeout_after_sending_uses_an_attempt(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct call_result r = transport(CG_TIMEOUT, 0);
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_RETRY);
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_UNAVAILABLE);
	assert_int_equal(st.attempts, 3);
}

static void transport_failure_past_the_deadline_is_expired(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct call_result r = transport(CG_TIMEOUT, 0);
	struct attempt_decision d;
	decide(&st, &P, &r, 30000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_EXPIRED);
}

static void refused_connect_seen_past_the_deadline_is_unavailable(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct call_result r = transport(CG_TRANSPORT, 1); /* refused: nothing was sent */
	struct attempt_decision d;
	decide(&st, &P, &r, 30010, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_UNAVAILABLE);
	assert_non_null(strstr(d.message, "endpoint unreachable"));
}

/* A request waiting for its next call when its deadline passes. */
static void deadline_while_waiting_answers_what_was_learned(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct attempt_decision d;
	attempt_at_deadline(&st, &d); /* nothing ended yet */
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_EXPIRED);

	struct call_result r = transport(CG_TRANSPORT, 1);
	decide(&st, &P, &r, 1000, 30000, 0, &d); /* refused: waits to retry */
	assert_int_equal(d.kind, AT_RETRY);
	attempt_at_deadline(&st, &d);
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_UNAVAILABLE);
	assert_non_null(strstr(d.message, "endpoint unreachable"));

	struct awserr e = aws(429, 1);
	e.throttled = 1;
	r = response(429, &e);
	decide(&st, &P, &r, 2000, 30000, 0, &d); /* then throttled */
	attempt_at_deadline(&st, &d);
	assert_int_equal(d.kind, AT_ANSWER_AWS);
	assert_int_equal(d.aws->http_status, 429);
}

static void non_retryable_transport_error_is_answered(void **s)
{
	(void)s;
	struct attempt_state st;
	attempt_init(&st);
	struct call_result r = transport(CG_INVALID, 0); /* e.g. a malformed URL */
	struct attempt_decision d;
	decide(&st, &P, &r, 1000, 30000, 0, &d);
	assert_int_equal(d.kind, AT_ANSWER_GATEWAY);
	assert_int_equal(d.code, GW_UNAVAILABLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(two_hundred_is_accepted),
	    TEST(client_error_is_answered_at_once),
	    TEST(server_error_is_retried_with_backoff_then_answered),
	    TEST(retry_never_passes_the_deadline),
	    TEST(shutdown_answers_instead_of_retrying),
	    TEST(clock_skew_resigns_once_without_using_an_attempt),
	    TEST(clock_skew_without_a_date_is_final),
	    TEST(expired_token_refreshes_once),
	    TEST(throttling_waits_to_the_deadline_using_no_attempt),
	    TEST(unreachable_waits_without_attempts_then_one_last_try),
	    TEST(timeout_after_sending_uses_an_attempt),
	    TEST(transport_failure_past_the_deadline_is_expired),
	    TEST(refused_connect_seen_past_the_deadline_is_unavailable),
	    TEST(deadline_while_waiting_answers_what_was_learned),
	    TEST(non_retryable_transport_error_is_answered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
