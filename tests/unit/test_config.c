/* Configuration (docs/configuration.md): defaults, table validation with FILE:LINE,
 * unknown keys, cross-field checks, derived endpoint. */
#include "test_util.h"

#include <unistd.h>

#include "config.h"
#include "follow.h"

static char path[64];

static struct config *load_text(const char *text, char *err)
{
	snprintf(path, sizeof(path), "/tmp/cmdgate-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	err[0] = '\0';
	struct config *c = config_load(path, err);
	unlink(path);
	return c;
}

/* The error must start with "FILE:LINE: " and contain want. */
static void refused(const char *text, int line, const char *want)
{
	char err[ERR_LEN];
	struct config *c = load_text(text, err);
	if (c)
		fail_msg("accepted: %s", text);
	char prefix[100];
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
		fail_msg("error '%s' lacks '%s' or '%s'", err, prefix, want);
}

#define MIN "aws: { region = \"eu-west-1\"; account = \"123456789012\"; };\n"

static void minimal_file_gets_every_default(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c = load_text(MIN, err);
	assert_non_null(c);
	assert_string_equal(c->mqtt.uri, "tcp://127.0.0.1:1883");
	assert_string_equal(c->mqtt.client_id, "cmdgate");
	assert_int_equal(c->mqtt.version, 5);
	assert_int_equal(c->mqtt.keepalive, 30);
	assert_int_equal(c->mqtt.qos, 1);
	assert_string_equal(c->mqtt.status_topic, "cmdgate/{client_id}/status");
	assert_int_equal(c->aws.connect_timeout_ms, 3000);
	assert_int_equal(c->aws.request_timeout_ms, 10000);
	assert_int_equal(c->aws.max_attempts, 3);
	assert_true(c->aws.max_rate == 0.0);
	assert_string_equal(c->aws.credentials.source, "chain");
	assert_int_equal(c->gateway.max_inflight, 64);
	assert_int_equal(c->gateway.queue_size, 4096);
	assert_int_equal(c->gateway.max_payload, 16384);
	assert_int_equal(c->gateway.deadline_ms, 30000);
	assert_int_equal(c->gateway.drain_ms, 10000);
	assert_int_equal(c->gateway.spool_max, 100000);
	assert_string_equal(c->log.level, "info");
	assert_string_equal(c->log.format, "text");
	assert_int_equal(c->stats.interval, 60);
	assert_int_equal(c->n_routes, 1);
	assert_string_equal(c->routes[0].filter, "commands/+/+/start");
	assert_string_equal(c->routes[0].reply_topic, "commands/{thing}/{command}/start/{status}");
	assert_string_equal(c->endpoint_url, "https://data.jobs.iot.eu-west-1.amazonaws.com");
	config_free(c);
}

/* SPEC 6 and 8: the follow keys and their defaults. */
static void follow_keys_have_their_defaults(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c = load_text(MIN, err);
	assert_non_null(c);
	assert_string_equal(c->aws.control_endpoint, "");
	assert_string_equal(c->control_url, "https://iot.eu-west-1.amazonaws.com");
	assert_true(c->aws.follow_max_rate == 10.0);
	assert_int_equal(c->gateway.follow_max_s, 3600);
	assert_int_equal(c->routes[0].follow, 0);
	assert_string_equal(c->routes[0].execution_topic,
	                    "commands/{thing}/{command}/executions/{execution}");
	config_free(c);
	c = load_text("aws: { region = \"eu-west-1\"; account = \"1\"; follow_max_rate = 2.5;\n"
	              " control_endpoint = \"http://127.0.0.1:8080/\"; };\n"
	              "gateway: { follow_max_s = 60; };\n"
	              "routes = ( { follow = true; execution_topic = "
	              "\"done/{thing}/{execution}\"; } );\n",
	              err);
	assert_non_null(c);
	assert_string_equal(c->control_url, "http://127.0.0.1:8080");
	assert_true(c->aws.follow_max_rate == 2.5);
	assert_int_equal(c->gateway.follow_max_s, 60);
	assert_int_equal(c->routes[0].follow, 1);
	assert_string_equal(c->routes[0].execution_topic, "done/{thing}/{execution}");
	config_free(c);
	char *e = follow_default_endpoint("cn-north-1");
	assert_string_equal(e, "https://iot.cn-north-1.amazonaws.com.cn");
	free(e);
}

static void follow_keys_are_checked(void **s)
{
	(void)s;
	refused(MIN "gateway: {\n follow_max_s = 0; };\n", 3, "gateway.follow_max_s");
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n follow_max_rate = -1.0; };\n", 2,
	        "out of range");
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n control_endpoint = "
	        "\"iot.example\"; };\n",
	        2, "aws.control_endpoint");
	/* issue 18 item 10: the URL parser's host, never a user name */
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n endpoint = "
	        "\"https://data.jobs.iot.eu-west-1.amazonaws.com@192.0.2.1/\"; };\n",
	        2, "no user name");
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n control_endpoint = "
	        "\"https://\"; };\n",
	        2, "aws.control_endpoint");
	refused(MIN "routes = ( {\n follow = 1; } );\n", 3, "true or false");
	refused(MIN "routes = ( {\n follow = true;\n execution_topic = \"x/{thing}/+\"; } );\n", 4,
	        "without wildcards");
	refused(MIN "routes = ( {\n execution_topic = \"x/{thing}/{status}\"; } );\n", 3,
	        "unknown placeholder {status}");
	refused(MIN "routes = ( {\n follow = true;\n execution_topic = \"x/{nope}\"; } );\n", 4,
	        "unknown placeholder {nope}");
}

static void execution_placeholder_only_in_execution_topic(void **s)
{
	(void)s;
	refused(MIN "routes = ( {\n reply_topic = \"r/{thing}/{execution}\"; } );\n", 3,
	        "unknown placeholder {execution}");
	refused(MIN "routes = ( {\n target_arn = \"arn:aws:iot:x:1:thing/{execution}\"; } );\n", 3,
	        "unknown placeholder {execution}");
	refused(MIN "routes = ( {\n request_topic = \"c/{thing}/{command}/{execution}\"; } );\n", 3,
	        "{execution}");
}

static void looping_execution_topic_is_refused(void **s)
{
	(void)s;
	refused(MIN "routes = ( {\n request_topic = \"cmd/{thing}/{command}\";\n follow = true;\n"
	            " execution_topic = \"cmd/{thing}/{execution}\"; } );\n",
	        5, "loop");
	/* against another route's request topic too */
	refused(MIN "routes = ( { request_topic = \"a/{thing}/{command}\"; follow = true;\n"
	            " execution_topic = \"b/{thing}/{execution}\"; },\n"
	            " { request_topic = \"b/{thing}/{command}\"; } );\n",
	        3, "loop");
	/* the unused default does not refuse a route that does not follow */
	char err[ERR_LEN];
	struct config *c =
	    load_text(MIN "routes = ( { request_topic = \"commands/{thing}/{command}/{a}/{b}\";"
	                  " reply_topic = \"r/{thing}/{status}\"; } );\n",
	              err);
	assert_non_null(c);
	config_free(c);
	refused(MIN "routes = ( { request_topic = \"commands/{thing}/{command}/{a}/{b}\";\n"
	            " reply_topic = \"r/{thing}/{status}\"; follow = true; } );\n",
	        2, "execution_topic");
}

static void region_decides_default_endpoint(void **s)
{
	(void)s;
	char *e = config_default_endpoint("cn-north-1");
	assert_string_equal(e, "https://data.jobs.iot.cn-north-1.amazonaws.com.cn");
	free(e);
	char err[ERR_LEN];
	struct config *c = load_text("aws: { region = \"us-east-1\"; account = \"1\"; endpoint = "
	                             "\"https://abc-ats.jobs.iot.us-east-1.amazonaws.com/\"; };",
	                             err);
	assert_non_null(c);
	assert_string_equal(c->endpoint_url, "https://abc-ats.jobs.iot.us-east-1.amazonaws.com");
	config_free(c);
}

static void wrong_type_reports_file_and_line(void **s)
{
	(void)s;
	refused(MIN "gateway: {\n  max_inflight = \"many\";\n};\n", 3, "gateway.max_inflight");
	refused(MIN "mqtt: { qos = 1.5; };\n", 2, "mqtt.qos");
	refused(MIN "mqtt: { uri = 5; };\n", 2, "must be a string");
}

static void out_of_range_is_refused(void **s)
{
	(void)s;
	refused(MIN "mqtt: { qos = 3; };\n", 2, "out of range");
	refused(MIN "mqtt: { version = 3; };\n", 2, "mqtt.version");
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n max_attempts = 0; };\n", 2,
	        "out of range");
}

static void unknown_keys_are_refused(void **s)
{
	(void)s;
	refused(MIN "mqtt: {\n uri = \"tcp://h:1\";\n  urii = \"x\"; };\n", 4, "mqtt.urii");
	refused(MIN "colour = \"blue\";\n", 2, "'colour'");
	refused(MIN "routes = ( { request_topic = \"a/{thing}/{command}\"; topic = \"x\"; } );\n",
	        2, "topic");
}

static void syntax_errors_have_a_line(void **s)
{
	(void)s;
	refused(MIN "mqtt: { uri = ; };\n", 2, "syntax error");
}

static void region_is_required(void **s)
{
	(void)s;
	refused("mqtt: { qos = 1; };\n", 0, "aws.region is required");
}

static void account_is_required_when_used(void **s)
{
	(void)s;
	refused("aws: { region = \"eu-west-1\"; };\n", 0, "aws.account is required");
	char err[ERR_LEN];
	struct config *c = load_text(
	    "aws: { region = \"eu-west-1\"; };\n"
	    "routes = ( { target_arn = \"arn:aws:iot:{region}:42:thing/{thing}\";\n"
	    "             command_arn = \"arn:aws:iot:{region}:42:command/{command}\"; } );\n",
	    err);
	assert_non_null(c);
	config_free(c);
}

static void looping_reply_topic_is_refused(void **s)
{
	(void)s;
	refused(MIN "routes = ( {\n request_topic = \"cmd/{thing}/{command}\";\n"
	            " reply_topic = \"cmd/{thing}/{status}\"; } );\n",
	        4, "loop");
}

static void routes_fix_or_capture_names(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c =
	    load_text(MIN "routes = ( { request_topic = \"valves/{thing}/open\";\n"
	                  "  reply_topic = \"valves/{thing}/open/{status}\";\n"
	                  "  command = \"open-valve\"; commands = [ \"open-valve\" ];\n"
	                  "  parameter_types = { speed = \"I\"; blob = \"BIN\"; };\n"
	                  "  execution_timeout = 60; } );\n",
	              err);
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(c->routes[0].command, "open-valve");
	assert_int_equal(c->routes[0].n_commands, 1);
	assert_int_equal(c->routes[0].n_ptypes, 2);
	assert_int_equal(c->routes[0].execution_timeout, 60);
	config_free(c);
	refused(MIN "routes = ( { request_topic = \"v/{thing}/open\"; } );\n", 2,
	        "needs {command}");
	refused(MIN "routes = ( { request_topic = \"v/{thing}/{command}\"; command = \"x\"; } );\n",
	        2, "choose one");
	refused(MIN "routes = ( { request_topic = \"v/{thing}/{command}\";\n"
	            " parameter_types = { speed = \"INT\"; }; } );\n",
	        3, "speed");
	refused(MIN "routes = ( { request_topic = \"v/{thing}/{command}\";\n"
	            " reply_topic = \"r/{nope}\"; } );\n",
	        3, "{nope}");
	refused(MIN "routes = ( { request_topic = \"v/x{thing}/{command}\"; } );\n", 2,
	        "whole level");
	refused(MIN "routes = ( { request_topic = \"v/{thing}/{command}\"; },\n"
	            "           { request_topic = \"v/{command}/{thing}\"; } );\n",
	        3, "same filter");
}

static void enumerations_are_checked(void **s)
{
	(void)s;
	refused(MIN "log: { level = \"loud\"; };\n", 2, "log.level");
	refused(MIN "log: { format = \"xml\"; };\n", 2, "log.format");
	refused(MIN "mqtt: { uri = \"http://h:1\"; };\n", 2, "mqtt.uri");
	refused(
	    "aws: { region = \"eu-west-1\"; account = \"1\";\n credentials: { source = \"magic\"; "
	    "}; };\n",
	    2, "magic");
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n credentials: { source = "
	        "\"static\"; }; };\n",
	        2, "secret_access_key_file");
	refused("aws: { region = \"eu-west-1\"; account = \"1\";\n endpoint = \"ftp://x\"; };\n", 2,
	        "aws.endpoint");
}

static void client_topics_take_client_id_only(void **s)
{
	(void)s;
	refused(MIN "mqtt: { status_topic = \"gw/{thing}/status\"; };\n", 2,
	        "mqtt.status_topic: unknown placeholder {thing}");
	refused(MIN "stats: { topic = \"gw/+/stats\"; };\n", 2,
	        "stats.topic: it has an MQTT wildcard");
	char err[ERR_LEN];
	struct config *c = load_text(MIN "stats: { topic = \"gw/{client_id}/stats\"; };\n", err);
	assert_non_null(c);
	config_free(c);
}

/* Fair share, the follow cap and where a Response Topic may point (SPEC 4, 5). */
static void rogue_device_keys_have_their_defaults(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c = load_text(MIN, err);
	assert_non_null(c);
	assert_int_equal(c->gateway.per_thing_queue, 64);
	assert_int_equal(c->gateway.follow_max, 10000);
	assert_int_equal(c->routes[0].n_response_topics, 1);
	assert_string_equal(c->routes[0].response_topics[0], "commands/{thing}/#");
	config_free(c);
	c = load_text(MIN
	              "gateway: { per_thing_queue = 3; follow_max = 7; };\n"
	              "routes = ( { request_topic = \"site/{site}/{thing}/do/{command}\"; },\n"
	              " { request_topic = \"valve/{command}\"; thing = \"v-1\"; },\n"
	              " { request_topic = \"x/{thing}/{command}\";\n"
	              "   response_topics = [ \"answers/{thing}/#\", \"r/{client_id}/+\" ]; } );\n",
	              err);
	assert_non_null(c);
	assert_int_equal(c->gateway.per_thing_queue, 3);
	assert_int_equal(c->gateway.follow_max, 7);
	assert_int_equal(c->routes[0].n_response_topics, 1);
	assert_string_equal(c->routes[0].response_topics[0], "site/{site}/{thing}/#");
	assert_int_equal(c->routes[1].n_response_topics, 0); /* no {thing}: none honoured */
	assert_int_equal(c->routes[2].n_response_topics, 2);
	assert_string_equal(c->routes[2].response_topics[1], "r/{client_id}/+");
	config_free(c);
}

static void rogue_device_keys_are_checked(void **s)
{
	(void)s;
	refused(MIN "gateway: {\n per_thing_queue = 0; };\n", 3, "gateway.per_thing_queue");
	refused(MIN "gateway: {\n follow_max = 0; };\n", 3, "gateway.follow_max");
	refused(MIN "routes = ( {\n response_topics = \"a/#\"; } );\n", 3, "response_topics");
	refused(MIN "routes = ( {\n response_topics = [ 1 ]; } );\n", 3, "response_topics");
	refused(MIN "routes = ( {\n response_topics = [ \"r/{nope}/#\" ]; } );\n", 3,
	        "unknown placeholder {nope}");
}

static void restart_needed_names_fixed_keys(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *a = load_text(MIN, err);
	struct config *b = load_text(MIN "mqtt: { uri = \"tcp://127.0.0.1:2\"; };\n"
	                                 "gateway: { max_inflight = 3; };\n",
	                             err);
	struct sbuf d;
	sbuf_init(&d);
	config_restart_needed(a, b, &d);
	assert_string_equal(d.data, "mqtt.uri");
	sbuf_clean_up(&d);
	config_free(a);
	config_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(minimal_file_gets_every_default),
	    TEST(region_decides_default_endpoint),
	    TEST(wrong_type_reports_file_and_line),
	    TEST(out_of_range_is_refused),
	    TEST(unknown_keys_are_refused),
	    TEST(syntax_errors_have_a_line),
	    TEST(region_is_required),
	    TEST(account_is_required_when_used),
	    TEST(looping_reply_topic_is_refused),
	    TEST(follow_keys_have_their_defaults),
	    TEST(follow_keys_are_checked),
	    TEST(execution_placeholder_only_in_execution_topic),
	    TEST(looping_execution_topic_is_refused),
	    TEST(routes_fix_or_capture_names),
	    TEST(enumerations_are_checked),
	    TEST(client_topics_take_client_id_only),
	    TEST(restart_needed_names_fixed_keys),
	    TEST(rogue_device_keys_have_their_defaults),
	    TEST(rogue_device_keys_are_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
