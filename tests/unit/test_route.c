/* Routes: filters from templates, matching and captures, expansion, the
 * capture rules of docs/protocol.md and the reply-loop check. */
#include "test_util.h"

#include "route.h"

static struct route mk(const char *req)
{
	struct route r = {0};
	r.request_topic = strdup(req);
	return r;
}

static void placeholder_becomes_plus_in_filter(void **s)
{
	(void)s;
	struct route r = mk("commands/{thing}/{command}/start");
	assert_int_equal(route_compile(&r, NULL), CG_OK);
	assert_string_equal(r.filter, "commands/+/+/start");
	assert_int_equal(r.n_ph, 2);
	assert_string_equal(r.ph_names[0], "thing");
	route_clean_up(&r);
}

static void placeholder_must_fill_whole_level(void **s)
{
	(void)s;
	const char *bad[] = {
	    "commands/x{thing}/start", "commands/{thing}x", "a/+/b", "a/#", "a/{t}/{t}", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct route r = mk(bad[i]);
		char err[ERR_LEN] = "";
		assert_int_equal(route_compile(&r, err), CG_CONFIG);
		assert_true(strlen(err) > 0);
		route_clean_up(&r);
	}
}

static void match_captures_levels(void **s)
{
	(void)s;
	struct route r = mk("commands/{thing}/{command}/start");
	route_compile(&r, NULL);
	struct route_vars v = {0};
	char *st = NULL;
	assert_true(route_match(&r, "commands/pump-1/open-valve/start", &st, &v));
	assert_string_equal(route_vars_get(&v, "thing"), "pump-1");
	assert_string_equal(route_vars_get(&v, "command"), "open-valve");
	free(st);
	const char *miss[] = {"commands/pump-1/open-valve", "commands/pump-1/open-valve/start/x",
	                      "other/pump-1/open-valve/start", "commands/pump-1/open-valve/stop"};
	for (size_t i = 0; i < 4; i++) {
		st = NULL;
		assert_false(route_match(&r, miss[i], &st, &v));
		assert_null(st);
	}
	/* '+' matches an empty level; the capture rule then rejects it */
	assert_true(route_match(&r, "commands//open-valve/start", &st, &v));
	assert_string_equal(route_vars_get(&v, "thing"), "");
	assert_int_equal(route_check_capture("thing", "", NULL), CG_INVALID);
	free(st);
	route_clean_up(&r);
}

static void capture_rules(void **s)
{
	(void)s;
	char t128[130], t129[131], c64[66], c65[67];
	memset(t128, 'a', 128);
	t128[128] = 0;
	memset(t129, 'a', 129);
	t129[129] = 0;
	memset(c64, 'b', 64);
	c64[64] = 0;
	memset(c65, 'b', 65);
	c65[65] = 0;
	assert_int_equal(route_check_capture("thing", "Pump_1:a-b", NULL), CG_OK);
	assert_int_equal(route_check_capture("thing", t128, NULL), CG_OK);
	assert_int_equal(route_check_capture("thing", t129, NULL), CG_INVALID);
	assert_int_equal(route_check_capture("thing", "pump.1", NULL), CG_INVALID);
	assert_int_equal(route_check_capture("thing", "pump 1", NULL), CG_INVALID);
	assert_int_equal(route_check_capture("command", c64, NULL), CG_OK);
	assert_int_equal(route_check_capture("command", c65, NULL), CG_INVALID);
	assert_int_equal(route_check_capture("command", "a:b", NULL), CG_INVALID);
	assert_int_equal(route_check_capture("site", "hall-1.b:c_d", NULL), CG_OK);
	assert_int_equal(route_check_capture("site", "hall/1", NULL), CG_INVALID);
	assert_int_equal(route_check_capture("site", "h\xc3\xa4ll", NULL), CG_INVALID);
}

static void expand_fills_placeholders(void **s)
{
	(void)s;
	struct route_vars v = {0};
	route_vars_set(&v, "region", "eu-west-1");
	route_vars_set(&v, "account", "123456789012");
	route_vars_set(&v, "thing", "t1");
	struct sbuf b;
	sbuf_init(&b);
	assert_int_equal(
	    route_template_expand("arn:aws:iot:{region}:{account}:thing/{thing}", &v, &b, NULL),
	    CG_OK);
	assert_string_equal(b.data, "arn:aws:iot:eu-west-1:123456789012:thing/t1");
	sbuf_reset(&b);
	char err[ERR_LEN];
	assert_int_equal(route_template_expand("x/{nope}", &v, &b, err), CG_CONFIG);
	assert_non_null(strstr(err, "{nope}"));
	sbuf_clean_up(&b);
}

static void reply_loop_detection(void **s)
{
	(void)s;
	/* the default pair does not loop: one more level */
	assert_false(route_reply_could_loop("commands/{thing}/{command}/start/{status}",
	                                    "commands/{thing}/{command}/start"));
	assert_true(route_reply_could_loop("commands/{thing}/{command}/start",
	                                   "commands/{thing}/{command}/start"));
	assert_true(route_reply_could_loop("commands/{thing}/{status}/start",
	                                   "commands/{thing}/{command}/start"));
	assert_true(route_reply_could_loop("commands/x/accepted", "commands/{a}/{status2}"));
	assert_false(route_reply_could_loop("replies/{thing}", "commands/{thing}"));
	/* {status} is only ever accepted/rejected */
	assert_false(route_reply_could_loop("commands/{status}", "commands/start"));
	assert_true(route_reply_could_loop("commands/{status}", "commands/rejected"));
}

static void allow_list_and_types(void **s)
{
	(void)s;
	struct route r = {0};
	char *cmds[] = {"open-valve"};
	r.commands = cmds;
	r.n_commands = 1;
	assert_true(route_command_allowed(&r, "open-valve"));
	assert_false(route_command_allowed(&r, "close-valve"));
	r.n_commands = 0;
	assert_true(route_command_allowed(&r, "anything"));
	assert_int_equal(route_param_type_parse("BIN"), PT_BIN);
	assert_int_equal(route_param_type_parse("bin"), PT_NONE);
	assert_string_equal(route_param_type_name(PT_UL), "UL");
}

static void filters_match_as_mqtt_does(void **s)
{
	(void)s;
	assert_true(route_filter_matches("commands/+/#", "commands/p/x/y"));
	assert_true(route_filter_matches("commands/p/#", "commands/p"));
	assert_true(route_filter_matches("#", "a/b"));
	assert_true(route_filter_matches("a/+/c", "a//c"));
	assert_false(route_filter_matches("a/+/c", "a/b/c/d"));
	assert_false(route_filter_matches("a/+", "a"));
	assert_false(route_filter_matches("commands/p/#", "commands/pp/x"));
	assert_false(route_filter_matches("#", "$SYS/x"));
	assert_false(route_filter_matches("a/b", "a/b/c"));
}

/* SPEC 4: a Response Topic is honoured only inside the route's
 * response_topics, filled with the request's values. */
static void response_topic_is_confined_to_the_things_subtree(void **s)
{
	(void)s;
	struct route r = mk("commands/{thing}/{command}/start");
	assert_int_equal(route_compile(&r, NULL), CG_OK);
	char *d = route_default_response_topic(&r);
	assert_string_equal(d, "commands/{thing}/#");
	r.response_topics = &d;
	r.n_response_topics = 1;
	struct route_vars v = {0};
	route_vars_set(&v, "thing", "dev-a");
	assert_true(route_response_allowed(&r, &v, "commands/dev-a/replies"));
	assert_true(route_response_allowed(&r, &v, "commands/dev-a"));
	assert_false(route_response_allowed(&r, &v, "commands/victim-9/open/start/accepted"));
	assert_false(route_response_allowed(&r, &v, "commands/dev-a/+"));
	assert_false(route_response_allowed(&r, &v, "commands/dev-a/#"));
	assert_false(route_response_allowed(&r, &v, "cmdgate/gw/status"));
	assert_false(route_response_allowed(&r, &v, ""));
	assert_false(route_response_allowed(&r, &v, NULL));
	r.response_topics = NULL;
	r.n_response_topics = 0;
	assert_false(route_response_allowed(&r, &v, "commands/dev-a/replies")); /* none set */
	free(d);
	route_clean_up(&r);
	r = mk("valve/{command}"); /* a route without {thing} has no default */
	assert_int_equal(route_compile(&r, NULL), CG_OK);
	assert_null(route_default_response_topic(&r));
	route_clean_up(&r);
	r = mk("site/{site}/{thing}/do/{command}");
	assert_int_equal(route_compile(&r, NULL), CG_OK);
	d = route_default_response_topic(&r);
	assert_string_equal(d, "site/{site}/{thing}/#");
	free(d);
	route_clean_up(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(placeholder_becomes_plus_in_filter),
	    TEST(placeholder_must_fill_whole_level),
	    TEST(match_captures_levels),
	    TEST(capture_rules),
	    TEST(expand_fills_placeholders),
	    TEST(reply_loop_detection),
	    TEST(allow_list_and_types),
	    TEST(filters_match_as_mqtt_does),
	    TEST(response_topic_is_confined_to_the_things_subtree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
