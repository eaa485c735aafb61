/* AWS error parsing and classification (docs/protocol.md, "AWS errors"). */
#include "test_util.h"

#include "awserr.h"

static void code_from_header_wins(void **s)
{
	(void)s;
	struct awserr e;
	const char *body = "{\"__type\":\"Other\",\"message\":\"slow down\"}";
	awserr_parse(429, "ThrottlingException:http://internal.amazon.com/coral/x/", body,
	             strlen(body), &e);
	assert_string_equal(e.code, "ThrottlingException");
	assert_string_equal(e.message, "slow down");
	assert_true(e.retryable);
	assert_true(e.throttled);
	assert_int_equal(e.http_status, 429);
}

static void code_from_body_type_or_code(void **s)
{
	(void)s;
	struct awserr e;
	const char *b1 = "{\"__type\":\"com.amazonaws.iot#ResourceNotFoundException\","
	                 "\"Message\":\"no thing\"}";
	awserr_parse(404, NULL, b1, strlen(b1), &e);
	assert_string_equal(e.code, "ResourceNotFoundException");
	assert_string_equal(e.message, "no thing");
	assert_false(e.retryable);
	const char *b2 = "{\"code\":\"ConflictException\",\"message\":\"dup\"}";
	awserr_parse(409, "", b2, strlen(b2), &e);
	assert_string_equal(e.code, "ConflictException");
	assert_false(e.retryable);
}

static void normalisation_drops_prefix_and_suffix(void **s)
{
	(void)s;
	char c1[] = "aws.protocoltests#Foo:http://x";
	awserr_code_normalise(c1);
	assert_string_equal(c1, "Foo");
	char c2[] = "Plain";
	awserr_code_normalise(c2);
	assert_string_equal(c2, "Plain");
}

static void missing_code_is_unknown_error(void **s)
{
	(void)s;
	struct awserr e;
	awserr_parse(418, NULL, "<html>", 6, &e);
	assert_string_equal(e.code, "UnknownError");
	assert_string_equal(e.message, "");
	assert_int_equal(e.http_status, 418);
	awserr_parse(400, NULL, NULL, 0, &e);
	assert_string_equal(e.code, "UnknownError");
}

static void server_errors_retry_client_errors_do_not(void **s)
{
	(void)s;
	struct awserr e;
	int statuses[] = {400, 402, 403, 404, 409};
	for (size_t i = 0; i < 5; i++) {
		awserr_parse(statuses[i], "X", NULL, 0, &e);
		assert_false(e.retryable);
	}
	awserr_parse(500, "InternalServerException", NULL, 0, &e);
	assert_true(e.retryable);
	awserr_parse(503, NULL, NULL, 0, &e);
	assert_true(e.retryable);
	assert_false(e.throttled);
}

static void clock_skew_and_expired_token_are_recognised(void **s)
{
	(void)s;
	struct awserr e;
	const char *b = "{\"message\":\"Signature expired: 20260101T000000Z is now earlier than "
	                "20260101T001000Z (5 min.)\"}";
	awserr_parse(403, "InvalidSignatureException", b, strlen(b), &e);
	assert_true(e.clock_skew);
	assert_false(e.retryable);
	awserr_parse(403, "InvalidSignatureException", "{\"message\":\"does not match\"}", 29, &e);
	assert_false(e.clock_skew);
	awserr_parse(403, "ExpiredTokenException", NULL, 0, &e);
	assert_true(e.expired_token);
}

static void execution_id_from_success(void **s)
{
	(void)s;
	char id[64], err[ERR_LEN];
	assert_int_equal(awserr_execution_id("{\"executionId\":\"abc\"}", 21, id, sizeof(id), err),
	                 CG_OK);
	assert_string_equal(id, "abc");
	assert_int_equal(awserr_execution_id("{}", 2, id, sizeof(id), err), CG_REMOTE);
	assert_int_equal(awserr_execution_id("nope", 4, id, sizeof(id), err), CG_REMOTE);
}

static void http_date(void **s)
{
	(void)s;
	time_t t;
	assert_int_equal(awserr_http_date("Sun, 30 Aug 2015 12:36:00 GMT", &t), 0);
	assert_int_equal((long)t, 1440938160L);
	assert_int_equal(awserr_http_date("Sat, 01 Jan 2000 00:00:00 GMT", &t), 0);
	if (sizeof(time_t) > 4) { /* a 32-bit time_t (armhf) ends in 2038 */
		assert_int_equal(awserr_http_date("Wed, 31 Dec 2199 23:59:59 GMT", &t), 0);
		assert_int_equal((int64_t)t, 7258118399LL);
	}
	/* SPEC section 5: only 2000..2200 corrects the clock */
	t = 42;
	assert_int_equal(awserr_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), -1);
	assert_int_equal(awserr_http_date("Fri, 31 Dec 1999 23:59:59 GMT", &t), -1);
	assert_int_equal(awserr_http_date("Thu, 01 Jan 2200 00:00:00 GMT", &t), -1);
	/* a leap second on the last day carries into 2200 (found by fuzz_date) */
	assert_int_equal(awserr_http_date("Wed, 31 Dec 2199 23:59:60 GMT", &t), -1);
	assert_int_equal(awserr_http_date("Mon, 01 Jan 99999 00:00:00 GMT", &t), -1);
	assert_int_equal(awserr_http_date("Mon, 01 Jan 2026 -1:00:00 GMT", &t), -1);
	assert_int_equal(t, 42);
	assert_int_equal(awserr_http_date("yesterday", &t), -1);
	assert_int_equal(awserr_http_date("Sun, 06 Foo 1994 08:49:37 GMT", &t), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(code_from_header_wins),
	    TEST(code_from_body_type_or_code),
	    TEST(normalisation_drops_prefix_and_suffix),
	    TEST(missing_code_is_unknown_error),
	    TEST(server_errors_retry_client_errors_do_not),
	    TEST(clock_skew_and_expired_token_are_recognised),
	    TEST(execution_id_from_success),
	    TEST(http_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
