/* The proxy's pure parts (SPEC 9): topics, answer validation and the
 * documents written, the per-execution update rules, expiry arithmetic. */
#include "test_util.h"

#include "proxy_answer.h"
#include "proxy_exec.h"
#include "proxy_topic.h"

/* ---- topics ------------------------------------------------------------- */

static void request_topics_give_thing_id_and_format(void **s)
{
	(void)s;
	struct proxy_topic t;
	assert_int_equal(
	    proxy_topic_parse("$aws/commands",
	                      "$aws/commands/things/press-1/executions/9f0e-11/request/json", &t),
	    PROXY_T_REQUEST);
	assert_string_equal(t.thing, "press-1");
	assert_string_equal(t.execution_id, "9f0e-11");
	assert_string_equal(t.format, "json");
	assert_int_equal(proxy_topic_parse("$aws/commands",
	                                   "$aws/commands/things/a/executions/e/request/cbor", &t),
	                 PROXY_T_REQUEST);
	assert_string_equal(t.format, "cbor");
	assert_int_equal(
	    proxy_topic_parse("$aws/commands", "$aws/commands/things/a/executions/e/request", &t),
	    PROXY_T_REQUEST);
	assert_string_equal(t.format, "");
}

static void response_topics_are_told_apart(void **s)
{
	(void)s;
	struct proxy_topic t;
	const char *p = "$aws/commands";
	assert_int_equal(
	    proxy_topic_parse(p, "$aws/commands/things/a/executions/e/response/json", &t),
	    PROXY_T_ANSWER);
	assert_int_equal(
	    proxy_topic_parse(p, "$aws/commands/things/a/executions/e/response/accepted/json", &t),
	    PROXY_T_ACCEPTED);
	assert_int_equal(
	    proxy_topic_parse(p, "$aws/commands/things/a/executions/e/response/rejected/json", &t),
	    PROXY_T_REJECTED);
}

static void other_shapes_and_bad_names_are_not_ours(void **s)
{
	(void)s;
	struct proxy_topic t;
	const char *p = "$aws/commands";
	const char *bad[] = {
	    "$aws/commands/things/a/executions/e/request/xml",
	    "$aws/commands/things/a/executions/e",
	    "$aws/commands/things/a/executions/e/response",
	    "$aws/commands/things/a/executions//request",
	    "$aws/commands/things/a b/executions/e/request",
	    "$aws/commands/things/a/jobs/e/request",
	    "$aws/commandsX/things/a/executions/e/request",
	    "other/things/a/executions/e/request",
	    "$aws/commands/things/a/executions/e/request/json/more",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(proxy_topic_parse(p, bad[i], &t), PROXY_T_NONE);
	char longname[200];
	memset(longname, 'a', 129);
	longname[129] = '\0';
	char topic[300];
	snprintf(topic, sizeof(topic), "$aws/commands/things/%s/executions/e/request", longname);
	assert_int_equal(proxy_topic_parse(p, topic, &t), PROXY_T_NONE);
}

static void local_prefix_mirrors_the_topics(void **s)
{
	(void)s;
	struct proxy_topic t;
	assert_int_equal(
	    proxy_topic_parse("lan/cmd", "lan/cmd/things/m1/executions/x/response/json", &t),
	    PROXY_T_ANSWER);
	assert_string_equal(t.thing, "m1");
	struct sbuf b;
	sbuf_init(&b);
	proxy_topic_build(&b, "lan/cmd", "m1", "x", proxy_topic_request_suffix("cbor"));
	assert_string_equal(b.data, "lan/cmd/things/m1/executions/x/request/cbor");
	sbuf_clean_up(&b);
	char *f = proxy_topic_answer_filter("$aws/commands", "m1");
	assert_string_equal(f, "$aws/commands/things/m1/executions/+/response/json");
	free(f);
	char *lf[PROXY_LINK_FILTERS];
	proxy_topic_link_filters("m1", lf);
	assert_string_equal(lf[0], "$aws/commands/things/m1/executions/+/request/json");
	assert_string_equal(lf[2], "$aws/commands/things/m1/executions/+/request");
	assert_string_equal(lf[4], "$aws/commands/things/m1/executions/+/response/rejected/json");
	for (int i = 0; i < PROXY_LINK_FILTERS; i++)
		free(lf[i]);
}

/* ---- answers ------------------------------------------------------------ */

static enum cg_err check(const char *json, struct sbuf *body, struct proxy_answer_error *why)
{
	enum proxy_status st;
	sbuf_reset(body);
	return proxy_answer_check(json, strlen(json), body, &st, why);
}

static void good_answer_keeps_only_what_aws_knows(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct proxy_answer_error why;
	enum proxy_status st;
	const char *in =
	    "{\"status\":\"SUCCEEDED\",\"executionId\":\"x\",\"clientToken\":\"t\","
	    "\"statusReason\":{\"reasonCode\":\"OK_1\",\"reasonDescription\":\"done\"},"
	    "\"result\":{\"msg\":{\"S\":\"hi\"},\"ok\":{\"b\":true},"
	    "\"blob\":{\"BIN\":\"AP8=\"}}}";
	assert_int_equal(proxy_answer_check(in, strlen(in), &b, &st, &why), CG_OK);
	assert_int_equal(st, PROXY_S_SUCCEEDED);
	assert_string_equal(b.data,
	                    "{\"status\":\"SUCCEEDED\",\"statusReason\":{\"reasonCode\":"
	                    "\"OK_1\",\"reasonDescription\":\"done\"},\"result\":{\"msg\":{"
	                    "\"s\":\"hi\"},\"ok\":{\"b\":true},\"blob\":{\"bin\":\"AP8=\"}}}");
	assert_int_equal(check("{\"status\":\"IN_PROGRESS\"}", &b, &why), CG_OK);
	assert_string_equal(b.data, "{\"status\":\"IN_PROGRESS\"}");
	sbuf_clean_up(&b);
}

static void bad_answers_name_the_field(void **s)
{
	(void)s;
	struct {
		const char *json, *code, *prefix;
	} cases[] = {
	    {"not json", "InvalidJson", "payload:"},
	    {"", "InvalidJson", "payload:"},
	    {"[1]", "InvalidRequest", "payload:"},
	    {"{}", "InvalidRequest", "status:"},
	    {"{\"status\":\"CREATED\"}", "InvalidRequest", "status:"},
	    {"{\"status\":\"DONE\"}", "InvalidRequest", "status:"},
	    {"{\"status\":1}", "InvalidRequest", "status:"},
	    {"{\"status\":\"FAILED\",\"statusReason\":{\"reasonCode\":\"bad code\"}}",
	     "InvalidRequest", "statusReason.reasonCode:"},
	    {"{\"status\":\"FAILED\",\"statusReason\":{}}", "InvalidRequest",
	     "statusReason.reasonCode:"},
	    {"{\"status\":\"FAILED\",\"statusReason\":{\"reasonCode\":\"X\","
	     "\"reasonDescription\":\"a\\u0001b\"}}",
	     "InvalidRequest", "statusReason.reasonDescription:"},
	    {"{\"status\":\"SUCCEEDED\",\"result\":{}}", "InvalidRequest", "result:"},
	    {"{\"status\":\"SUCCEEDED\",\"result\":{\"a\":{\"s\":5}}}", "InvalidRequest",
	     "result.a.s:"},
	    {"{\"status\":\"SUCCEEDED\",\"result\":{\"a\":{\"b\":\"yes\"}}}", "InvalidRequest",
	     "result.a.b:"},
	    {"{\"status\":\"SUCCEEDED\",\"result\":{\"a\":{\"bin\":\"!!\"}}}", "InvalidRequest",
	     "result.a.bin:"},
	    {"{\"status\":\"SUCCEEDED\",\"result\":{\"a\":{\"s\":\"x\",\"b\":true}}}",
	     "InvalidRequest", "result.a:"},
	    {"{\"status\":\"SUCCEEDED\",\"result\":{\"a\":{\"i\":1}}}", "InvalidRequest",
	     "result.a:"},
	    {"{\"status\":\"SUCCEEDED\",\"status\":\"FAILED\"}", "InvalidJson", "payload:"},
	};
	struct sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proxy_answer_error why;
		assert_int_equal(check(cases[i].json, &b, &why), CG_INVALID);
		assert_string_equal(why.code, cases[i].code);
		if (strncmp(why.message, cases[i].prefix, strlen(cases[i].prefix)) != 0)
			fail_msg("case %zu: '%s' does not start with '%s'", i, why.message,
			         cases[i].prefix);
		assert_int_equal(b.len, 0);
	}
	sbuf_clean_up(&b);
}

static void description_is_counted_in_characters(void **s)
{
	(void)s;
	struct sbuf json, b;
	sbuf_init(&json);
	sbuf_init(&b);
	struct proxy_answer_error why;
	sbuf_puts(&json, "{\"status\":\"FAILED\",\"statusReason\":{\"reasonCode\":\"E\","
	                 "\"reasonDescription\":\"");
	for (int i = 0; i < 1024; i++)
		sbuf_puts(&json, "\xc3\xa9"); /* 2 bytes, one character */
	sbuf_puts(&json, "\"}}");
	assert_int_equal(check(json.data, &b, &why), CG_OK);
	json.len -= 3;
	json.data[json.len] = '\0';
	sbuf_puts(&json, "x\"}}");
	assert_int_equal(check(json.data, &b, &why), CG_INVALID);
	assert_non_null(strstr(why.message, "1024"));
	sbuf_clean_up(&json);
	sbuf_clean_up(&b);
}

static void documents_for_the_machine(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	proxy_answer_rejection(&b, "InvalidRequest", "status: \"x\"", "e-1");
	assert_string_equal(b.data, "{\"error\":\"InvalidRequest\",\"errorMessage\":\"status: "
	                            "\\\"x\\\"\",\"executionId\":\"e-1\"}");
	sbuf_reset(&b);
	proxy_answer_accepted(&b, "e-1");
	assert_string_equal(b.data, "{\"executionId\":\"e-1\"}");
	char code[64];
	const char *rej = "{\"error\":\"DataConflict\",\"errorMessage\":\"m\"}";
	proxy_answer_error_code(rej, strlen(rej), code, sizeof(code));
	assert_string_equal(code, "DataConflict");
	proxy_answer_error_code("{}", 2, code, sizeof(code));
	assert_string_equal(code, "");
	sbuf_clean_up(&b);
}

/* ---- executions --------------------------------------------------------- */

static struct proxy_update *upd(enum proxy_status st)
{
	return proxy_update_new("{}", 2, st, 0);
}

static void one_update_in_flight_the_next_waits(void **s)
{
	(void)s;
	struct proxy_exec ex;
	proxy_exec_init(&ex, "m1", "e1", 1000, 30);
	proxy_exec_answer(&ex, upd(PROXY_S_IN_PROGRESS), 1000);
	proxy_exec_answer(&ex, upd(PROXY_S_SUCCEEDED), 1000);
	assert_true(proxy_exec_send_due(&ex, 1000));
	proxy_exec_sent(&ex, 1000, 10000);
	assert_false(proxy_exec_send_due(&ex, 1500)); /* in flight */
	struct proxy_update *done;
	assert_int_equal(proxy_exec_verdict(&ex, 1, "", 1600, 0, &done), PXV_RELAY);
	assert_int_equal(done->status, PROXY_S_IN_PROGRESS);
	proxy_update_free(done);
	assert_false(ex.final_accepted);
	assert_true(proxy_exec_send_due(&ex, 1600)); /* the next one */
	proxy_exec_sent(&ex, 1600, 10000);
	assert_int_equal(proxy_exec_verdict(&ex, 1, "", 1700, 0, &done), PXV_RELAY);
	proxy_update_free(done);
	assert_true(ex.final_accepted);
	assert_true(proxy_exec_forgettable(&ex, 1700));
	/* a verdict with nothing sent is stray */
	assert_int_equal(proxy_exec_verdict(&ex, 1, "", 1800, 0, &done), PXV_STRAY);
	assert_null(done);
	proxy_exec_clean_up(&ex);
}

static void no_verdict_within_the_timeout_sends_again(void **s)
{
	(void)s;
	struct proxy_exec ex;
	proxy_exec_init(&ex, "m1", "e1", 0, 30);
	proxy_exec_answer(&ex, upd(PROXY_S_SUCCEEDED), 0);
	proxy_exec_sent(&ex, 0, 10000);
	assert_false(proxy_exec_send_due(&ex, 9999));
	assert_true(proxy_exec_send_due(&ex, 10000));
	proxy_exec_sent(&ex, 10000, 10000);
	assert_int_equal(ex.head->sends, 2);
	/* the re-sent terminal update meets TerminalStateReached: applied before */
	struct proxy_update *done;
	assert_int_equal(proxy_exec_verdict(&ex, 0, "TerminalStateReached", 10100, 0, &done),
	                 PXV_RELAY_ACCEPTED);
	proxy_update_free(done);
	assert_true(ex.final_accepted);
	proxy_exec_clean_up(&ex);
}

static void terminal_state_reached_on_a_first_send_is_relayed(void **s)
{
	(void)s;
	struct proxy_exec ex;
	proxy_exec_init(&ex, "m1", "e1", 0, 30);
	proxy_exec_answer(&ex, upd(PROXY_S_FAILED), 0);
	proxy_exec_sent(&ex, 0, 10000);
	struct proxy_update *done;
	assert_int_equal(proxy_exec_verdict(&ex, 0, "TerminalStateReached", 5, 0, &done),
	                 PXV_RELAY);
	proxy_update_free(done);
	assert_false(ex.final_accepted);
	/* but after a restart, an update sent before it counts as applied */
	struct proxy_update *u = upd(PROXY_S_FAILED);
	u->sent_before = 1;
	proxy_exec_answer(&ex, u, 10);
	proxy_exec_sent(&ex, 10, 10000);
	assert_int_equal(proxy_exec_verdict(&ex, 0, "TerminalStateReached", 20, 0, &done),
	                 PXV_RELAY_ACCEPTED);
	proxy_update_free(done);
	/* an IN_PROGRESS re-sent is no terminal update: relayed */
	proxy_exec_answer(&ex, upd(PROXY_S_IN_PROGRESS), 30);
	proxy_exec_sent(&ex, 30, 10);
	proxy_exec_sent(&ex, 40, 10);
	assert_int_equal(proxy_exec_verdict(&ex, 0, "TerminalStateReached", 45, 0, &done),
	                 PXV_RELAY);
	proxy_update_free(done);
	proxy_exec_clean_up(&ex);
}

static void conflict_and_throttle_back_off_then_retry(void **s)
{
	(void)s;
	struct proxy_exec ex;
	proxy_exec_init(&ex, "m1", "e1", 0, 30);
	proxy_exec_answer(&ex, upd(PROXY_S_SUCCEEDED), 0);
	proxy_exec_sent(&ex, 0, 10000);
	struct proxy_update *done;
	assert_int_equal(proxy_exec_verdict(&ex, 0, "DataConflict", 100, 0, &done), PXV_RETRY);
	assert_null(done);
	/* equal jitter: at least half the 100 ms base, at most the base */
	assert_false(proxy_exec_send_due(&ex, 149));
	assert_true(proxy_exec_send_due(&ex, 200));
	proxy_exec_sent(&ex, 200, 10000);
	assert_int_equal(proxy_exec_verdict(&ex, 0, "RequestThrottled", 300, 0xffffffffu, &done),
	                 PXV_RETRY);
	assert_true(ex.next_ms >= 300 + 100 && ex.next_ms <= 300 + 200);
	proxy_exec_sent(&ex, ex.next_ms, 10000);
	assert_int_equal(proxy_exec_verdict(&ex, 1, "", 700, 0, &done), PXV_RELAY);
	proxy_update_free(done);
	assert_true(ex.final_accepted);
	proxy_exec_clean_up(&ex);
}

static void other_rejections_end_the_update_not_the_execution(void **s)
{
	(void)s;
	struct proxy_exec ex;
	proxy_exec_init(&ex, "m1", "e1", 0, 30);
	proxy_exec_answer(&ex, upd(PROXY_S_SUCCEEDED), 0);
	proxy_exec_sent(&ex, 0, 10000);
	struct proxy_update *done;
	assert_int_equal(proxy_exec_verdict(&ex, 0, "InvalidStateTransition", 5, 0, &done),
	                 PXV_RELAY);
	proxy_update_free(done);
	assert_false(ex.final_accepted);
	assert_false(proxy_exec_forgettable(&ex, 5));
	assert_int_equal(proxy_exec_next_ms(&ex), 30000 + PROXY_GRACE_MS);
	assert_true(proxy_exec_forgettable(&ex, 30000 + PROXY_GRACE_MS));
	proxy_exec_clean_up(&ex);
}

static void lost_link_sends_the_update_again(void **s)
{
	(void)s;
	struct proxy_exec ex;
	proxy_exec_init(&ex, "m1", "e1", 0, -1);
	assert_int_equal(ex.forget_ms, PROXY_DEFAULT_TIMEOUT_S * 1000ull + PROXY_GRACE_MS);
	proxy_exec_answer(&ex, upd(PROXY_S_SUCCEEDED), 0);
	proxy_exec_sent(&ex, 0, 10000);
	proxy_exec_link_lost(&ex, 50);
	assert_true(proxy_exec_send_due(&ex, 50));
	/* an answer waiting is never forgotten, whatever the time */
	assert_false(proxy_exec_forgettable(&ex, UINT64_MAX));
	proxy_exec_clean_up(&ex);
}

static void expiry_is_whole_seconds_left_rounded_down(void **s)
{
	(void)s;
	assert_int_equal(proxy_expiry_left(-1, 0, 5000), -1);
	assert_int_equal(proxy_expiry_left(30, 1000, 1000), 29); /* some time always passed */
	assert_int_equal(proxy_expiry_left(30, 1000, 1001), 29);
	assert_int_equal(proxy_expiry_left(1, 1000, 1000), 0); /* 1 s as received: expired */
	assert_int_equal(proxy_expiry_left(30, 1000, 29000), 2);
	assert_int_equal(proxy_expiry_left(30, 1000, 30000), 1);
	assert_int_equal(proxy_expiry_left(30, 1000, 30001), 0); /* 999 ms: expired */
	assert_int_equal(proxy_expiry_left(30, 1000, 31000), 0);
	assert_int_equal(proxy_expiry_left(0, 1000, 1000), 0);
	assert_int_equal(proxy_expiry_left(2, 1000, 500), 1); /* clock never goes back */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(request_topics_give_thing_id_and_format),
	    TEST(response_topics_are_told_apart),
	    TEST(other_shapes_and_bad_names_are_not_ours),
	    TEST(local_prefix_mirrors_the_topics),
	    TEST(good_answer_keeps_only_what_aws_knows),
	    TEST(bad_answers_name_the_field),
	    TEST(description_is_counted_in_characters),
	    TEST(documents_for_the_machine),
	    TEST(one_update_in_flight_the_next_waits),
	    TEST(no_verdict_within_the_timeout_sends_again),
	    TEST(terminal_state_reached_on_a_first_send_is_relayed),
	    TEST(conflict_and_throttle_back_off_then_retry),
	    TEST(other_rejections_end_the_update_not_the_execution),
	    TEST(lost_link_sends_the_update_again),
	    TEST(expiry_is_whole_seconds_left_rounded_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
