/* Reply JSON (docs/protocol.md, "Replies"): members, order, when each appears. */
#include "test_util.h"

#include "reply.h"

static void render(const struct outcome *o, const char *want)
{
	struct sbuf b;
	sbuf_init(&b);
	reply_render(o, &b);
	if (strcmp(b.data, want) != 0)
		fail_msg("got  %s\nwant %s", b.data, want);
	sbuf_clean_up(&b);
}

static void accepted_reply(void **s)
{
	(void)s;
	json_t *id = json_string("r-42");
	struct outcome o = {.accepted = 1, .execution_id = "e-1", .client_token = "tok", .id = id};
	render(&o, "{\"status\":\"accepted\",\"id\":\"r-42\",\"executionId\":\"e-1\","
	           "\"clientToken\":\"tok\"}");
	json_decref(id);
}

static void aws_rejection_has_http_status(void **s)
{
	(void)s;
	json_t *id = json_integer(42);
	struct outcome o = {.code = "ThrottlingException",
	                    .message = "slow",
	                    .aws = 1,
	                    .http_status = 429,
	                    .retryable = 1,
	                    .client_token = "t",
	                    .id = id};
	render(&o, "{\"status\":\"rejected\",\"id\":42,\"code\":\"ThrottlingException\","
	           "\"message\":\"slow\",\"source\":\"aws\",\"httpStatus\":429,\"retryable\":true,"
	           "\"clientToken\":\"t\"}");
	json_decref(id);
}

static void gateway_rejection_without_id_or_token(void **s)
{
	(void)s;
	struct outcome o = {0};
	reply_outcome_gateway(&o, GW_INVALID_REQUEST, "unknown member 'x'");
	render(&o,
	       "{\"status\":\"rejected\",\"code\":\"InvalidRequest\",\"message\":\"unknown member "
	       "'x'\",\"source\":\"gateway\",\"retryable\":false}");
}

static void gateway_codes_and_retry_rule(void **s)
{
	(void)s;
	struct {
		enum gw_code c;
		const char *name;
		int retry;
	} t[] = {
	    {GW_INVALID_REQUEST, "InvalidRequest", 0},
	    {GW_PAYLOAD_TOO_LARGE, "PayloadTooLarge", 0},
	    {GW_FORBIDDEN, "Forbidden", 0},
	    {GW_OVERLOADED, "Overloaded", 1},
	    {GW_EXPIRED, "Expired", 1},
	    {GW_UNAVAILABLE, "Unavailable", 1},
	    {GW_CREDENTIALS_UNAVAILABLE, "CredentialsUnavailable", 1},
	    {GW_INTERNAL_ERROR, "InternalError", 1},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_string_equal(reply_code_name(t[i].c), t[i].name);
		assert_int_equal(reply_code_retryable(t[i].c), t[i].retry);
	}
}

static void invalid_utf8_in_a_message_is_replaced(void **s)
{
	(void)s;
	struct outcome o = {0};
	reply_outcome_gateway(&o, GW_INVALID_REQUEST, "bad \xc3");
	render(&o, "{\"status\":\"rejected\",\"code\":\"InvalidRequest\",\"message\":\"bad ?\","
	           "\"source\":\"gateway\",\"retryable\":false}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(accepted_reply),
	    TEST(aws_rejection_has_http_status),
	    TEST(gateway_rejection_without_id_or_token),
	    TEST(gateway_codes_and_retry_rule),
	    TEST(invalid_utf8_in_a_message_is_replaced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
