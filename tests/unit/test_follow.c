/* Following an execution (SPEC section 8): status ranks, the end rules, the
 * poll schedule, the messages and the signed GET. */
#include "test_util.h"

#include "follow.h"
#include "sigv4.h"

#define T0 1000000u /* accepted reply, monotonic ms */

static struct follow_answer answer(const char *json)
{
	struct follow_answer a;
	char err[ERR_LEN];
	if (follow_parse_answer(json, strlen(json), &a, err) != CG_OK)
		fail_msg("%s: %s", json, err);
	return a;
}

/* Feed one answer; returns the step. */
static struct follow_step feed(struct follow_state *st, const char *json, uint64_t now)
{
	struct follow_answer a = answer(json);
	struct follow_step s;
	follow_on_answer(st, &a, now, 0, &s);
	follow_answer_clean_up(&a);
	return s;
}

static void parses_status_reason_and_result(void **s)
{
	(void)s;
	struct follow_answer a = answer(
	    "{\"executionId\":\"e1\",\"status\":\"SUCCEEDED\",\"statusReason\":{\"reasonCode\":"
	    "\"OK\",\"reasonDescription\":\"valve "
	    "open\"},\"result\":{\"message\":{\"S\":\"done\"}},"
	    "\"createdAt\":1.7e9}");
	assert_int_equal(a.status, FOLLOW_SUCCEEDED);
	assert_string_equal(a.reason_code, "OK");
	assert_non_null(a.status_reason);
	assert_non_null(a.result);
	follow_answer_clean_up(&a);
	a = answer("{\"status\":\"IN_PROGRESS\",\"statusReason\":null}");
	assert_int_equal(a.status, FOLLOW_IN_PROGRESS);
	assert_null(a.status_reason);
	assert_null(a.result);
	assert_string_equal(a.reason_code, "");
	follow_answer_clean_up(&a);
	a = answer("{\"status\":\"PAUSED\"}");
	assert_int_equal(a.status, FOLLOW_UNKNOWN);
	follow_answer_clean_up(&a);
}

static void refuses_an_answer_without_status(void **s)
{
	(void)s;
	struct follow_answer a;
	char err[ERR_LEN];
	const char *bad[] = {"", "[]", "{\"status\":5}", "{\"executionId\":\"x\"}", "{\"status\""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(follow_parse_answer(bad[i], strlen(bad[i]), &a, err), CG_INVALID);
}

static void lifecycle_published_once_in_order(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 3600);
	struct follow_step p = feed(&st, "{\"status\":\"CREATED\"}", T0 + 500);
	assert_true(p.publish && !p.final && p.status == FOLLOW_CREATED);
	p = feed(&st, "{\"status\":\"CREATED\"}", T0 + 1500);
	assert_false(p.publish); /* never the same status twice */
	p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 3500);
	assert_true(p.publish && !p.final && p.status == FOLLOW_IN_PROGRESS);
	p = feed(&st, "{\"status\":\"CREATED\"}", T0 + 7500);
	assert_false(p.publish); /* never backwards (a stale read) */
	p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 9000);
	assert_false(p.publish);
	p = feed(&st, "{\"status\":\"SUCCEEDED\"}", T0 + 15500);
	assert_true(p.publish && p.final && p.status == FOLLOW_SUCCEEDED);
	assert_true(st.ended);
}

static void succeeded_failed_rejected_are_final(void **s)
{
	(void)s;
	const char *ends[] = {"{\"status\":\"SUCCEEDED\"}", "{\"status\":\"FAILED\"}",
	                      "{\"status\":\"REJECTED\"}"};
	for (size_t i = 0; i < 3; i++) {
		struct follow_state st;
		follow_state_init(&st, T0, 3600);
		struct follow_step p = feed(&st, ends[i], T0 + 500);
		assert_true(p.publish);
		assert_true(p.final);
		assert_true(st.ended);
	}
	assert_false(follow_is_final(FOLLOW_CREATED, NULL));
	assert_false(follow_is_final(FOLLOW_IN_PROGRESS, NULL));
	assert_false(follow_is_final(FOLLOW_UNKNOWN, NULL));
}

static void timed_out_without_device_answer_is_not_final_then_late_success(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 3600);
	feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 500);
	struct follow_step p = feed(&st,
	                            "{\"status\":\"TIMED_OUT\",\"statusReason\":{\"reasonCode\":\"$"
	                            "NO_RESPONSE_FROM_DEVICE\"}}",
	                            T0 + 1500);
	assert_true(p.publish);
	assert_false(p.final);
	assert_int_equal(p.status, FOLLOW_TIMED_OUT);
	assert_false(st.ended);
	assert_true(p.next_poll_ms > T0 + 1500);
	/* the same TIMED_OUT again: not published */
	p = feed(&st,
	         "{\"status\":\"TIMED_OUT\",\"statusReason\":{\"reasonCode\":\"$NO_RESPONSE_FROM_"
	         "DEVICE\"}}",
	         T0 + 3500);
	assert_false(p.publish);
	/* IN_PROGRESS after it would be backwards */
	p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 4000);
	assert_false(p.publish);
	p = feed(&st, "{\"status\":\"SUCCEEDED\",\"result\":{\"m\":{\"S\":\"late\"}}}", T0 + 7500);
	assert_true(p.publish && p.final && p.status == FOLLOW_SUCCEEDED);
}

static void other_timed_out_is_final(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 3600);
	struct follow_step p = feed(
	    &st, "{\"status\":\"TIMED_OUT\",\"statusReason\":{\"reasonCode\":\"DEVICE_TIMEOUT\"}}",
	    T0 + 500);
	assert_true(p.publish && p.final);
	follow_state_init(&st, T0, 3600);
	p = feed(&st, "{\"status\":\"TIMED_OUT\"}", T0 + 500);
	assert_true(p.publish && p.final);
	/* after a non-final TIMED_OUT, a final one still ends it with one message */
	follow_state_init(&st, T0, 3600);
	feed(&st,
	     "{\"status\":\"TIMED_OUT\",\"statusReason\":{\"reasonCode\":\"$NO_RESPONSE_FROM_"
	     "DEVICE\"}}",
	     T0 + 500);
	p = feed(&st, "{\"status\":\"TIMED_OUT\"}", T0 + 1500);
	assert_true(p.publish && p.final);
}

static void unknown_status_keeps_following_silently(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 3600);
	struct follow_step p = feed(&st, "{\"status\":\"PAUSED\"}", T0 + 500);
	assert_false(p.publish);
	assert_false(st.ended);
	assert_true(p.next_poll_ms > T0 + 500);
}

static void not_found_right_after_start_is_retried(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 3600);
	struct follow_step p;
	follow_on_failure(&st, 404, "ResourceNotFoundException", 0, T0 + 500, 0, &p);
	assert_false(p.publish);
	assert_false(st.ended);
	follow_on_failure(&st, 404, "ResourceNotFoundException", 0, T0 + 1500, 0, &p);
	assert_false(p.publish);
	p = feed(&st, "{\"status\":\"CREATED\"}", T0 + 3500);
	assert_true(p.publish);
	/* a 404 once a status was seen ends it */
	follow_on_failure(&st, 404, "ResourceNotFoundException", 0, T0 + 7500, 0, &p);
	assert_true(p.publish && p.final);
	assert_string_equal(p.code, "ResourceNotFoundException");
	assert_false(p.retryable);
	assert_int_equal(p.status, FOLLOW_CREATED);
	/* and so does one past the grace period */
	follow_state_init(&st, T0, 3600);
	follow_on_failure(&st, 404, "ResourceNotFoundException", 0, T0 + FOLLOW_NOT_FOUND_GRACE_MS,
	                  0, &p);
	assert_true(p.publish && p.final);
	assert_int_equal(p.status, FOLLOW_NONE);
}

static void forbidden_ends_with_code_and_not_retryable(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 3600);
	feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 500);
	struct follow_step p;
	follow_on_failure(&st, 403, "AccessDeniedException", 0, T0 + 1500, 0, &p);
	assert_true(p.publish && p.final);
	assert_string_equal(p.code, "AccessDeniedException");
	assert_false(p.retryable);
	assert_int_equal(p.status, FOLLOW_IN_PROGRESS);
	assert_true(st.ended);
}

static void retryable_failures_keep_following_until_follow_max_s(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 60);
	struct follow_step p;
	follow_on_failure(&st, 503, "InternalServerException", 1, T0 + 500, 0, &p);
	assert_false(p.publish);
	follow_on_failure(&st, 0, "CredentialsUnavailable", 1, T0 + 1500, 0, &p);
	assert_false(p.publish);
	assert_true(p.next_poll_ms <= T0 + 60000);
	assert_int_equal(follow_check_deadline(&st, T0 + 59999, &p), 0);
	assert_int_equal(follow_check_deadline(&st, T0 + 60000, &p), 1);
	assert_true(p.publish && p.final);
	assert_string_equal(p.code, "CredentialsUnavailable"); /* why it could not finish */
	assert_true(p.retryable);
	assert_int_equal(p.status, FOLLOW_NONE);
	assert_int_equal(follow_check_deadline(&st, T0 + 70000, &p), 0); /* once */
}

static void follow_max_s_ends_with_expired_and_last_status(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_init(&st, T0, 10);
	struct follow_step p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 500);
	p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 8000);
	assert_true(p.next_poll_ms <= T0 + 10000); /* never polls past the deadline */
	assert_int_equal(follow_check_deadline(&st, T0 + 10000, &p), 1);
	assert_true(p.publish && p.final);
	assert_string_equal(p.code, "Expired");
	assert_true(p.retryable);
	assert_int_equal(p.status, FOLLOW_IN_PROGRESS);
}

static void resumed_follow_does_not_republish(void **s)
{
	(void)s;
	struct follow_state st;
	follow_state_resume(&st, T0, T0 + 3600000, FOLLOW_IN_PROGRESS);
	struct follow_step p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", T0 + 500);
	assert_false(p.publish);
	follow_state_resume(&st, T0, T0 + 3600000, FOLLOW_TIMED_OUT);
	p = feed(&st,
	         "{\"status\":\"TIMED_OUT\",\"statusReason\":{\"reasonCode\":\"$NO_RESPONSE_FROM_"
	         "DEVICE\"}}",
	         T0 + 500);
	assert_false(p.publish);
	p = feed(&st, "{\"status\":\"FAILED\"}", T0 + 1500);
	assert_true(p.publish && p.final);
}

static void first_poll_within_a_second_then_backs_off_to_30s(void **s)
{
	(void)s;
	uint32_t rnds[] = {0, 1, 77, 0xffffffffu, 123456789u};
	for (size_t r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
		uint64_t first = follow_poll_delay_ms(0, 1000, rnds[r]);
		assert_true(first <= 1000 && first >= 300);
		uint64_t prev_max = 0;
		for (unsigned k = 1; k < 40; k++) {
			uint64_t d = follow_poll_delay_ms(k, 1000, rnds[r]);
			assert_true(d <= FOLLOW_POLL_CAP_MS);
			assert_true(d >= 750); /* never hammers */
			uint64_t max =
			    follow_poll_delay_ms(k, 1000, 0); /* no jitter: the ceiling */
			assert_true(max >= prev_max);
			prev_max = max;
		}
	}
	assert_int_equal(follow_poll_delay_ms(0, 1000, 0), 500);
	assert_int_equal(follow_poll_delay_ms(1, 1000, 0), 1000);
	assert_int_equal(follow_poll_delay_ms(2, 1000, 0), 2000);
	assert_int_equal(follow_poll_delay_ms(5, 1000, 0), 16000);
	assert_int_equal(follow_poll_delay_ms(6, 1000, 0), 30000);
	assert_int_equal(follow_poll_delay_ms(1000, 1000, 0), 30000);
	/* jitter differs with rnd, and stays within a quarter */
	assert_true(follow_poll_delay_ms(6, 1000, 1000) != follow_poll_delay_ms(6, 1000, 0));
	assert_true(follow_poll_delay_ms(6, 1000, 7500) == 30000 - 7500);
	/* 0 is the default step */
	assert_int_equal(follow_poll_delay_ms(3, 0, 0), follow_poll_delay_ms(3, 1000, 0));
}

/* gateway.follow_poll_ms sets the step: half of it first, then doubling from
 * it, the cap unchanged. */
static void poll_step_is_the_configured_one(void **s)
{
	(void)s;
	assert_int_equal(follow_poll_delay_ms(0, 250, 0), 125);
	assert_int_equal(follow_poll_delay_ms(1, 250, 0), 250);
	assert_int_equal(follow_poll_delay_ms(2, 250, 0), 500);
	assert_int_equal(follow_poll_delay_ms(4, 250, 0), 2000);
	assert_int_equal(follow_poll_delay_ms(1000, 250, 0), 30000);
	assert_int_equal(follow_poll_delay_ms(0, 2000, 0), 1000); /* the first within 1 s */
	struct follow_state st;
	follow_state_init(&st, 0, 3600);
	st.poll_ms = 250;
	struct follow_step p = feed(&st, "{\"status\":\"IN_PROGRESS\"}", 1000);
	assert_int_equal(p.next_poll_ms, 1000 + 250);
}

/* Polls a command ending at end_ms costs: the poll that sees the end
 * included. rnd_max: jitter drawn as its largest (1) or none (0). */
static unsigned polls_until(uint64_t end_ms, int jitter)
{
	struct follow_state st;
	follow_state_init(&st, 0, 3600);
	uint64_t t = follow_poll_delay_ms(0, 1000, jitter ? 125 : 0);
	for (;;) {
		struct follow_step p;
		p = t >= end_ms ? feed(&st, "{\"status\":\"SUCCEEDED\"}", t)
		                : feed(&st, "{\"status\":\"IN_PROGRESS\"}", t);
		if (st.ended)
			return st.polls + 1;
		uint64_t d = p.next_poll_ms - t;
		if (jitter) /* the shortest delay the jitter allows */
			d = follow_poll_delay_ms(
			    st.polls, 1000,
			    (uint32_t)(follow_poll_delay_ms(st.polls, 1000, 0) / 4));
		t += d;
	}
}

static void poll_cost_for_commands_ending_in_1_10_60_s(void **s)
{
	(void)s;
	/* No jitter: polls at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 61.5 s. */
	assert_int_equal(polls_until(1000, 0), 2);
	assert_int_equal(polls_until(10000, 0), 5);
	assert_int_equal(polls_until(60000, 0), 7);
	/* Largest jitter: 0.375, 1.125, 2.625, 5.625, 11.625, 23.625, 46.125, 68.625 s. */
	assert_int_equal(polls_until(1000, 1), 2);
	assert_int_equal(polls_until(10000, 1), 5);
	assert_int_equal(polls_until(60000, 1), 8);
	printf("polls per execution (no jitter / largest jitter): 1 s: %u/%u, 10 s: %u/%u, "
	       "60 s: %u/%u\n",
	       polls_until(1000, 0), polls_until(1000, 1), polls_until(10000, 0),
	       polls_until(10000, 1), polls_until(60000, 0), polls_until(60000, 1));
}

static void renders_status_messages_as_the_spec_shows(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct follow_answer a = answer("{\"status\":\"IN_PROGRESS\"}");
	follow_render_status(&b, "\"r-42\"", "e-1", &a, 0);
	assert_string_equal(b.data,
	                    "{\"id\":\"r-42\",\"executionId\":\"e-1\",\"status\":\"IN_PROGRESS\","
	                    "\"final\":false}");
	follow_answer_clean_up(&a);
	sbuf_reset(&b);
	a = answer("{\"executionId\":\"e-1\",\"status\":\"SUCCEEDED\",\"statusReason\":{"
	           "\"reasonCode\":\"OK\",\"reasonDescription\":\"open\"},\"result\":{\"message\":{"
	           "\"S\":\"done\"}},\"parameters\":{}}");
	follow_render_status(&b, "\"r-42\"", "e-1", &a, 1);
	assert_string_equal(
	    b.data,
	    "{\"id\":\"r-42\",\"executionId\":\"e-1\",\"status\":\"SUCCEEDED\",\"final\":true,"
	    "\"statusReason\":{\"reasonCode\":\"OK\",\"reasonDescription\":\"open\"},"
	    "\"result\":{\"message\":{\"S\":\"done\"}}}");
	follow_answer_clean_up(&a);
	sbuf_reset(&b);
	a = answer("{\"status\":\"CREATED\"}");
	follow_render_status(&b, NULL, "e-1", &a, 0); /* no id: no member */
	assert_string_equal(b.data,
	                    "{\"executionId\":\"e-1\",\"status\":\"CREATED\",\"final\":false}");
	follow_answer_clean_up(&a);
	sbuf_reset(&b);
	follow_render_status(&b, "7", "e-1", &a, 0); /* integer id stays an integer */
	assert_string_equal(
	    b.data, "{\"id\":7,\"executionId\":\"e-1\",\"status\":\"CREATED\",\"final\":false}");
	sbuf_clean_up(&b);
}

static void renders_the_early_end(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	follow_render_end(&b, "\"r-42\"", "e-1", FOLLOW_IN_PROGRESS, "AccessDeniedException", 0);
	assert_string_equal(b.data, "{\"id\":\"r-42\",\"executionId\":\"e-1\",\"final\":true,"
	                            "\"status\":\"IN_PROGRESS\",\"code\":\"AccessDeniedException\","
	                            "\"retryable\":false}");
	sbuf_reset(&b);
	follow_render_end(&b, NULL, "e-1", FOLLOW_NONE, "Expired", 1);
	assert_string_equal(b.data, "{\"executionId\":\"e-1\",\"final\":true,\"status\":null,"
	                            "\"code\":\"Expired\",\"retryable\":true}");
	sbuf_clean_up(&b);
}

#define EXEC "0b8be5a1-1111-4222-8333-444455556666"
#define ARN  "arn:aws:iot:eu-west-1:123456789012:thing/pump-7"

static void query_string_encodes_the_arn(void **s)
{
	(void)s;
	struct sbuf q, p;
	sbuf_init(&q);
	sbuf_init(&p);
	follow_request_query(&q, ARN);
	assert_string_equal(q.data, "includeResult=true&targetArn=arn%3Aaws%3Aiot%3Aeu-west-1%"
	                            "3A123456789012%3Athing%2Fpump-7");
	assert_int_equal(follow_request_path(&p, "", EXEC), 0);
	assert_string_equal(p.data, "/command-executions/" EXEC);
	sbuf_reset(&p);
	assert_int_equal(follow_request_path(&p, "/base", EXEC), 0);
	assert_string_equal(p.data, "/base/command-executions/" EXEC);
	assert_int_equal(follow_request_path(&p, "", "../x"), -1);
	assert_int_equal(follow_request_path(&p, "", ""), -1);
	assert_int_equal(follow_request_path(&p, "", "a/b"), -1);
	assert_int_equal(follow_request_path(&p, "", "a?b"), -1);
	assert_int_equal(follow_request_path(&p, "", ".."), -1);
	sbuf_clean_up(&q);
	sbuf_clean_up(&p);
}

/* Expected values computed with tests/fake_aws.py's own SigV4 (Python's
 * urllib quoting and hmac), not with src/sigv4.c. */
static void canonical_request_and_signature_match_an_independent_signer(void **s)
{
	(void)s;
	struct sbuf q, p, creq, sh, authz;
	sbuf_init(&q);
	sbuf_init(&p);
	sbuf_init(&creq);
	sbuf_init(&sh);
	sbuf_init(&authz);
	follow_request_query(&q, ARN);
	follow_request_path(&p, "", EXEC);
	char hash[65];
	sigv4_sha256_hex("", 0, hash);
	struct sigv4_header h[2] = {{"host", "iot.eu-west-1.amazonaws.com"},
	                            {"x-amz-date", "20261126T120000Z"}};
	struct sigv4_request r = {"GET", p.data, q.data, h, 2, hash};
	sigv4_canonical_request(&r, &creq, &sh);
	assert_string_equal(
	    creq.data,
	    "GET\n/command-executions/" EXEC "\n"
	    "includeResult=true&targetArn=arn%3Aaws%3Aiot%3Aeu-west-1%3A123456789012%3Athing%"
	    "2Fpump-7\n"
	    "host:iot.eu-west-1.amazonaws.com\nx-amz-date:20261126T120000Z\n\nhost;x-amz-date\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	struct sigv4_credentials cred = {"AKIDCMDGATETEST", "cmdgate-test-secret", NULL, 1};
	sigv4_authorize(&r, &cred, "eu-west-1", "iot", "20261126T120000Z", NULL, &authz);
	assert_string_equal(
	    authz.data,
	    "AWS4-HMAC-SHA256 Credential=AKIDCMDGATETEST/20261126/eu-west-1/iot/"
	    "aws4_request, SignedHeaders=host;x-amz-date, "
	    "Signature=8968cb27ca0888a230a8f8d1748e920ff703bb11d5d1701f971f2256f485c5cd");
	sbuf_clean_up(&q);
	sbuf_clean_up(&p);
	sbuf_clean_up(&creq);
	sbuf_clean_up(&sh);
	sbuf_clean_up(&authz);
}

static void execution_topic_expanded_in_two_steps(void **s)
{
	(void)s;
	struct route_vars v = {0};
	route_vars_set(&v, "thing", "pump-7");
	route_vars_set(&v, "command", "open-valve");
	route_vars_set(&v, "client_id", "gw");
	struct sbuf a, b;
	sbuf_init(&a);
	sbuf_init(&b);
	char err[ERR_LEN];
	assert_int_equal(
	    follow_topic_prepare("commands/{thing}/{command}/executions/{execution}", &v, &a, err),
	    CG_OK);
	assert_string_equal(a.data, "commands/pump-7/open-valve/executions/{execution}");
	assert_int_equal(follow_topic_finish(a.data, EXEC, &b, err), CG_OK);
	assert_string_equal(b.data, "commands/pump-7/open-valve/executions/" EXEC);
	sbuf_reset(&a);
	assert_int_not_equal(follow_topic_prepare("x/{nope}", &v, &a, err), CG_OK);
	sbuf_clean_up(&a);
	sbuf_clean_up(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(parses_status_reason_and_result),
	    TEST(refuses_an_answer_without_status),
	    TEST(lifecycle_published_once_in_order),
	    TEST(succeeded_failed_rejected_are_final),
	    TEST(timed_out_without_device_answer_is_not_final_then_late_success),
	    TEST(other_timed_out_is_final),
	    TEST(unknown_status_keeps_following_silently),
	    TEST(not_found_right_after_start_is_retried),
	    TEST(forbidden_ends_with_code_and_not_retryable),
	    TEST(retryable_failures_keep_following_until_follow_max_s),
	    TEST(follow_max_s_ends_with_expired_and_last_status),
	    TEST(resumed_follow_does_not_republish),
	    TEST(first_poll_within_a_second_then_backs_off_to_30s),
	    TEST(poll_step_is_the_configured_one),
	    TEST(poll_cost_for_commands_ending_in_1_10_60_s),
	    TEST(renders_status_messages_as_the_spec_shows),
	    TEST(renders_the_early_end),
	    TEST(query_string_encodes_the_arn),
	    TEST(canonical_request_and_signature_match_an_independent_signer),
	    TEST(execution_topic_expanded_in_two_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
