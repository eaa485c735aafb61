/* Translation of request payloads: every row of docs/protocol.md
 * (the AWS call, request payload). */
#include "test_util.h"

#include "translate.h"

/* bad() for literals: the length includes any embedded NUL. */
#define BAD(p, want) bad(p, sizeof(p) - 1, want)
#define RANDOM_TOKEN "5f0c8a4e-1b2d-4c3e-9f00-0123456789ab"

static struct route route;
static struct route_vars vars;

static int setup(void **s)
{
	(void)s;
	memset(&route, 0, sizeof(route));
	route.target_arn = "arn:aws:iot:{region}:{account}:thing/{thing}";
	route.command_arn = "arn:aws:iot:{region}:{account}:command/{command}";
	memset(&vars, 0, sizeof(vars));
	route_vars_set(&vars, "region", "eu-west-1");
	route_vars_set(&vars, "account", "123456789012");
	route_vars_set(&vars, "thing", "pump-1");
	route_vars_set(&vars, "command", "open-valve");
	return 0;
}

static void fixed_token(char out[CLIENT_TOKEN_MAX + 1], void *ctx)
{
	(void)ctx;
	memcpy(out, RANDOM_TOKEN, 37);
}

/* Translate text; returns the result code and leaves body/err for checks. */
static enum cg_err run(const char *payload, size_t len, struct translated *t, char *err)
{
	translate_result_init(t);
	err[0] = '\0';
	return translate_request(&route, &vars, view_of(payload, len), fixed_token, NULL, t, err);
}

static void ok_body(const char *payload, const char *want_body)
{
	struct translated t;
	char err[ERR_LEN];
	enum cg_err rc = run(payload, strlen(payload), &t, err);
	if (rc != CG_OK)
		fail_msg("%s: unexpected error %s", payload, err);
	if (strcmp(t.body.data, want_body) != 0)
		fail_msg("%s\n got  %s\n want %s", payload, t.body.data, want_body);
	translate_result_clean_up(&t);
}

/* The error text must contain want (a member or parameter name). */
static void bad(const char *payload, size_t len, const char *want)
{
	struct translated t;
	char err[ERR_LEN];
	enum cg_err rc = run(payload, len, &t, err);
	if (rc != CG_INVALID)
		fail_msg("%.*s: accepted as %s", (int)len, payload, t.body.data);
	if (!strstr(err, want))
		fail_msg("%.*s: error '%s' does not name '%s'", (int)len, payload, err, want);
	assert_string_equal(t.client_token, "");
	translate_result_clean_up(&t);
}

#define HEAD                                                                                       \
	"{\"targetArn\":\"arn:aws:iot:eu-west-1:123456789012:thing/pump-1\",\"commandArn\":\"arn:" \
	"aws:iot:eu-west-1:123456789012:command/open-valve\""
#define RTOK ",\"clientToken\":\"" RANDOM_TOKEN "\"}"
#define P(x) HEAD ",\"parameters\":" x RTOK

static void empty_payload_is_empty_object(void **s)
{
	(void)s;
	ok_body("", HEAD RTOK);
	ok_body("{}", HEAD RTOK);
	ok_body(" { } ", HEAD RTOK);
}

static void members_appear_in_model_order(void **s)
{
	(void)s;
	ok_body("{\"clientToken\":\"abc\",\"timeout\":30,\"parameters\":{\"a\":\"x\"}}",
	        HEAD ",\"parameters\":{\"a\":{\"S\":\"x\"}},\"executionTimeoutSeconds\":30,"
	             "\"clientToken\":"
	             "\"a87f81b1075811d1ccd3a1bd191ec851a137dfd2ef7c3f27230e38fca7986023\"}");
}

static void unknown_member_is_named(void **s)
{
	(void)s;
	BAD("{\"id\":\"a\",\"targetArn\":\"x\"}", "targetArn");
	BAD("{\"speed\":5}", "'speed'");
}

static void payload_must_be_utf8_json_object(void **s)
{
	(void)s;
	BAD("not json", "JSON");
	BAD("[1,2]", "object");
	BAD("\"str\"", "object");
	BAD("{\"id\":\"\xff\xfe\"}", "JSON");
	BAD("{\"id\":\"a\"}\0", "JSON");
	BAD("{\"id\":\"a\",\"id\":\"b\"}", "JSON"); /* duplicate keys */
	BAD("{\"id\":\"a\\u0000b\"}", "JSON");      /* NUL inside a string */
	BAD("{\"id\":\"a\"} trailing", "JSON");
}

static void id_rules(void **s)
{
	(void)s;
	struct translated t;
	char err[ERR_LEN];
	assert_int_equal(run("{\"id\":\"r-42\"}", 13, &t, err), CG_OK);
	assert_int_equal(t.token_kind, TOKEN_DERIVED);
	assert_string_equal(t.client_token,
	                    "29fcc73786ce102dd6f95126366aa6896894244853f609a5102158c373ba5d82");
	assert_true(json_is_string(t.id));
	translate_result_clean_up(&t);
	assert_int_equal(run("{\"id\":-7}", 9, &t, err), CG_OK);
	assert_string_equal(t.client_token,
	                    "da31c2622687d5752870b95f58bfcda2afa8a134e47920d23b29fa87826f2610");
	assert_true(json_is_integer(t.id));
	translate_result_clean_up(&t);
	BAD("{\"id\":\"\"}", "'id'");
	BAD("{\"id\":1.5}", "'id'");
	BAD("{\"id\":true}", "'id'");
	BAD("{\"id\":null}", "'id'");
	/* 64 characters are fine even when they are multi-byte; 65 are not */
	struct sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, "{\"id\":\"");
	for (int i = 0; i < 64; i++)
		sbuf_puts(&b, "\xc3\xa9");
	sbuf_puts(&b, "\"}");
	assert_int_equal(run(b.data, b.len, &t, err), CG_OK);
	translate_result_clean_up(&t);
	sbuf_reset(&b);
	sbuf_puts(&b, "{\"id\":\"");
	for (int i = 0; i < 65; i++)
		sbuf_putc(&b, 'x');
	sbuf_puts(&b, "\"}");
	bad(b.data, b.len, "'id'");
	sbuf_clean_up(&b);
}

static void id_is_kept_when_the_rest_is_invalid(void **s)
{
	(void)s;
	struct translated t;
	char err[ERR_LEN];
	assert_int_equal(run("{\"id\":9,\"nope\":1}", 17, &t, err), CG_INVALID);
	assert_true(json_is_integer(t.id));
	assert_int_equal(json_integer_value(t.id), 9);
	translate_result_clean_up(&t);
}

static void client_token_rules(void **s)
{
	(void)s;
	struct translated t;
	char err[ERR_LEN];
	/* explicit wins over id, bound to its thing and command: sha256 of
	 * "token\n" thing "\n" command "\n" clientToken */
	assert_int_equal(run("{\"id\":\"r-42\",\"clientToken\":\"~tok!\"}", 35, &t, err), CG_OK);
	assert_string_equal(t.client_token,
	                    "0dcc0c5c7135bf62a42ae0868b56003e791327bd691864fd7394265697a1f4f6");
	assert_int_equal(t.token_kind, TOKEN_EXPLICIT);
	translate_result_clean_up(&t);
	/* neither: the random token */
	assert_int_equal(run("{}", 2, &t, err), CG_OK);
	assert_string_equal(t.client_token, RANDOM_TOKEN);
	assert_int_equal(t.token_kind, TOKEN_RANDOM);
	translate_result_clean_up(&t);
	BAD("{\"clientToken\":\"\"}", "clientToken");
	BAD("{\"clientToken\":\"a b\"}", "clientToken");
	BAD("{\"clientToken\":\"\xc3\xa9\"}", "clientToken");
	BAD("{\"clientToken\":7}", "clientToken");
	char tok[100];
	memset(tok, 'k', 64);
	tok[64] = 0;
	char p[200];
	snprintf(p, sizeof(p), "{\"clientToken\":\"%s\"}", tok);
	assert_int_equal(run(p, strlen(p), &t, err), CG_OK);
	translate_result_clean_up(&t);
	snprintf(p, sizeof(p), "{\"clientToken\":\"%sk\"}", tok);
	bad(p, strlen(p), "clientToken");
}

/* A device that sends, from its own topic, the token another thing derives
 * for an id gets a token of its own: it cannot poison the other's request. */
static void explicit_token_cannot_collide_with_another_things_token(void **s)
{
	(void)s;
	char victims[65], p[200], err[ERR_LEN];
	translate_token_derive("victim-9", "open-valve", "r-42", victims);
	struct translated t;
	snprintf(p, sizeof(p), "{\"clientToken\":\"%s\"}", victims);
	assert_int_equal(run(p, strlen(p), &t, err), CG_OK);
	assert_string_not_equal(t.client_token, victims);
	char mine[65];
	snprintf(mine, sizeof(mine), "%s", t.client_token);
	translate_result_clean_up(&t);
	/* the same explicit token from another thing is another token */
	route_vars_set(&vars, "thing", "victim-9");
	assert_int_equal(run(p, strlen(p), &t, err), CG_OK);
	assert_string_not_equal(t.client_token, victims);
	assert_string_not_equal(t.client_token, mine);
	translate_result_clean_up(&t);
}

static void timeout_rules(void **s)
{
	(void)s;
	ok_body("{\"timeout\":1}", HEAD ",\"executionTimeoutSeconds\":1" RTOK);
	BAD("{\"timeout\":0}", "timeout");
	BAD("{\"timeout\":-5}", "timeout");
	BAD("{\"timeout\":2.5}", "timeout");
	BAD("{\"timeout\":\"10\"}", "timeout");
	route.execution_timeout = 60;
	ok_body("{}", HEAD ",\"executionTimeoutSeconds\":60" RTOK);
	ok_body("{\"timeout\":5}", HEAD ",\"executionTimeoutSeconds\":5" RTOK);
}

static void bare_values_are_typed(void **s)
{
	(void)s;
	ok_body("{\"parameters\":{\"s\":\"x\",\"b\":false,\"l\":-3,\"d\":2.5}}",
	        P("{\"s\":{\"S\":\"x\"},\"b\":{\"B\":false},\"l\":{\"L\":-3},\"d\":{\"D\":2.5}}"));
	ok_body("{\"parameters\":{}}", HEAD RTOK);
}

static void typed_values_pass_through(void **s)
{
	(void)s;
	ok_body(
	    "{\"parameters\":{\"a\":{\"I\":5},\"b\":{\"BIN\":\"AP8=\"},\"c\":{\"UL\":"
	    "\"18446744073709551615\"},\"d\":{\"D\":1},\"e\":{\"S\":\"v\"},\"f\":{\"B\":true},"
	    "\"g\":{\"L\":9223372036854775807}}}",
	    P("{\"a\":{\"I\":5},\"b\":{\"BIN\":\"AP8=\"},\"c\":{\"UL\":\"18446744073709551615\"},"
	      "\"d\":{\"D\":1},\"e\":{\"S\":\"v\"},\"f\":{\"B\":true},\"g\":{\"L\":"
	      "9223372036854775807}}"));
}

static void integer_limits(void **s)
{
	(void)s;
	ok_body("{\"parameters\":{\"a\":{\"I\":2147483647},\"b\":{\"I\":-2147483648}}}",
	        P("{\"a\":{\"I\":2147483647},\"b\":{\"I\":-2147483648}}"));
	BAD("{\"parameters\":{\"big\":{\"I\":2147483648}}}", "'big'");
	BAD("{\"parameters\":{\"small\":{\"I\":-2147483649}}}", "'small'");
	ok_body("{\"parameters\":{\"m\":-9223372036854775808}}",
	        P("{\"m\":{\"L\":-9223372036854775808}}"));
	const char *p = "{\"parameters\":{\"huge\":9223372036854775808}}";
	bad(p, strlen(p), "'huge'");
	p = "{\"parameters\":{\"huge2\":{\"L\":-9223372036854775809}}}";
	bad(p, strlen(p), "'huge2'");
	p = "{\"parameters\":{\"f\":1e400}}";
	bad(p, strlen(p), "'f'");
	BAD("{\"parameters\":{\"i\":{\"I\":1.0}}}", "'i'");
	BAD("{\"parameters\":{\"i\":{\"L\":\"5\"}}}", "'i'");
}

static void unsigned_long_limits(void **s)
{
	(void)s;
	const char *p = "{\"parameters\":{\"u\":{\"UL\":\"18446744073709551616\"}}}";
	bad(p, strlen(p), "'u'");
	p = "{\"parameters\":{\"u\":{\"UL\":\"000000000000000000001\"}}}"; /* 21 digits */
	bad(p, strlen(p), "'u'");
	BAD("{\"parameters\":{\"u\":{\"UL\":\"\"}}}", "'u'");
	BAD("{\"parameters\":{\"u\":{\"UL\":\"-1\"}}}", "'u'");
	BAD("{\"parameters\":{\"u\":{\"UL\":\"1e3\"}}}", "'u'");
	BAD("{\"parameters\":{\"u\":{\"UL\":5}}}", "'u'"); /* typed UL wants a string... */
	ok_body("{\"parameters\":{\"u\":{\"UL\":\"0\"}}}", P("{\"u\":{\"UL\":\"0\"}}"));
}

static void base64_edge_cases(void **s)
{
	(void)s;
	ok_body("{\"parameters\":{\"b\":{\"BIN\":\"AA==\"}}}", P("{\"b\":{\"BIN\":\"AA==\"}}"));
	ok_body("{\"parameters\":{\"b\":{\"BIN\":\"+/+/\"}}}", P("{\"b\":{\"BIN\":\"+/+/\"}}"));
	const char *badv[] = {
	    "", "AP8", "A===", "AB==", "-_8=", "AP 8", "AP8=\\n", "====", "AP8=AP8="};
	for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
		char p[200];
		snprintf(p, sizeof(p), "{\"parameters\":{\"blob\":{\"BIN\":\"%s\"}}}", badv[i]);
		bad(p, strlen(p), "'blob'");
	}
}

static void route_parameter_types_convert_bare_values(void **s)
{
	(void)s;
	struct param_type_entry pt[] = {{"speed", PT_I}, {"blob", PT_BIN}, {"count", PT_UL},
	                                {"ratio", PT_D}, {"name", PT_S},   {"on", PT_B}};
	route.ptypes = pt;
	route.n_ptypes = 6;
	ok_body("{\"parameters\":{\"speed\":5,\"blob\":\"AP8=\",\"count\":7,\"ratio\":3,\"name\":"
	        "\"n\",\"on\":true}}",
	        P("{\"speed\":{\"I\":5},\"blob\":{\"BIN\":\"AP8=\"},\"count\":{\"UL\":\"7\"},"
	          "\"ratio\":{\"D\":3},\"name\":{\"S\":\"n\"},\"on\":{\"B\":true}}"));
	ok_body("{\"parameters\":{\"count\":\"18446744073709551615\"}}",
	        P("{\"count\":{\"UL\":\"18446744073709551615\"}}"));
	BAD("{\"parameters\":{\"speed\":4294967296}}", "'speed'");
	BAD("{\"parameters\":{\"blob\":\"not base64!\"}}", "'blob'");
	BAD("{\"parameters\":{\"count\":-1}}", "'count'");
	BAD("{\"parameters\":{\"name\":5}}", "'name'");
	BAD("{\"parameters\":{\"on\":\"yes\"}}", "'on'");
	/* an explicit typed value keeps its own type */
	ok_body("{\"parameters\":{\"speed\":{\"L\":5}}}", P("{\"speed\":{\"L\":5}}"));
	route.ptypes = NULL;
	route.n_ptypes = 0;
}

static void invalid_values_name_the_parameter(void **s)
{
	(void)s;
	BAD("{\"parameters\":{\"n\":null}}", "'n'");
	BAD("{\"parameters\":{\"arr\":[1]}}", "'arr'");
	BAD("{\"parameters\":{\"o\":{\"x\":1}}}", "'o'");
	BAD("{\"parameters\":{\"o2\":{\"S\":\"a\",\"B\":true}}}", "'o2'");
	BAD("{\"parameters\":{\"e\":\"\"}}", "'e'");
	BAD("{\"parameters\":{\"e2\":{\"S\":\"\"}}}", "'e2'");
	BAD("{\"parameters\":[1]}", "parameters");
	BAD("{\"parameters\":{\"a b\":1}}", "a b");
	char name[200];
	memset(name, 'n', 193);
	name[193] = 0;
	char p[300];
	snprintf(p, sizeof(p), "{\"parameters\":{\"%s\":1}}", name);
	bad(p, strlen(p), "nnnn");
	name[192] = 0;
	snprintf(p, sizeof(p), "{\"parameters\":{\"%s\":1}}", name);
	struct translated t;
	char err[ERR_LEN];
	assert_int_equal(run(p, strlen(p), &t, err), CG_OK);
	translate_result_clean_up(&t);
	ok_body("{\"parameters\":{\".$a-_Z9\":1}}", P("{\".$a-_Z9\":{\"L\":1}}"));
}

static void strings_keep_utf8_and_escapes(void **s)
{
	(void)s;
	ok_body("{\"parameters\":{\"s\":\"caf\\u00e9 \\\"q\\\"\\n\xe2\x82\xac\"}}",
	        P("{\"s\":{\"S\":\"caf\xc3\xa9 \\\"q\\\"\\n\xe2\x82\xac\"}}"));
}

static void reals_round_trip(void **s)
{
	(void)s;
	struct translated t;
	char err[ERR_LEN];
	assert_int_equal(run("{\"parameters\":{\"d\":0.1}}", 24, &t, err), CG_OK);
	json_t *b = json_loads(t.body.data, 0, NULL);
	double d = json_real_value(
	    json_object_get(json_object_get(json_object_get(b, "parameters"), "d"), "D"));
	assert_true(d == 0.1);
	json_decref(b);
	translate_result_clean_up(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(empty_payload_is_empty_object, setup),
	    cmocka_unit_test_setup(members_appear_in_model_order, setup),
	    cmocka_unit_test_setup(unknown_member_is_named, setup),
	    cmocka_unit_test_setup(payload_must_be_utf8_json_object, setup),
	    cmocka_unit_test_setup(id_rules, setup),
	    cmocka_unit_test_setup(id_is_kept_when_the_rest_is_invalid, setup),
	    cmocka_unit_test_setup(client_token_rules, setup),
	    cmocka_unit_test_setup(explicit_token_cannot_collide_with_another_things_token, setup),
	    cmocka_unit_test_setup(timeout_rules, setup),
	    cmocka_unit_test_setup(bare_values_are_typed, setup),
	    cmocka_unit_test_setup(typed_values_pass_through, setup),
	    cmocka_unit_test_setup(integer_limits, setup),
	    cmocka_unit_test_setup(unsigned_long_limits, setup),
	    cmocka_unit_test_setup(base64_edge_cases, setup),
	    cmocka_unit_test_setup(route_parameter_types_convert_bare_values, setup),
	    cmocka_unit_test_setup(invalid_values_name_the_parameter, setup),
	    cmocka_unit_test_setup(strings_keep_utf8_and_escapes, setup),
	    cmocka_unit_test_setup(reals_round_trip, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
