/* jsonw writes exactly what jansson's compact dump writes. */
#include "test_util.h"

#include "jsonw.h"

static void same_as_jansson(const char *doc)
{
	json_error_t je;
	json_t *v = json_loads(doc, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad test input %s: %s", doc, je.text);
	char *want = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY);
	struct sbuf b;
	sbuf_init(&b);
	jsonw_value(&b, v);
	if (strcmp(b.data, want) != 0)
		fail_msg("%s\n jsonw   %s\n jansson %s", doc, b.data, want);
	sbuf_clean_up(&b);
	free(want);
	json_decref(v);
}

static void values_match_jansson(void **s)
{
	(void)s;
	const char *docs[] = {
	    "{}",
	    "[]",
	    "null",
	    "true",
	    "false",
	    "0",
	    "-9223372036854775808",
	    "9223372036854775807",
	    "0.1",
	    "5.0",
	    "-2.5e-300",
	    "1e300",
	    "123456789.125",
	    "1.7976931348623157e308",
	    "4.9e-324",
	    "\"\"",
	    "\"plain\"",
	    "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001 \\u001f \\u007f\"",
	    "\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"",
	    "{\"a\":{\"S\":\"x\"},\"b\":[1,2.5,true,null],\"c\":{\"BIN\":\"AP8=\"}}",
	    "{\"k\\\"ey\":1,\"\":2}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		same_as_jansson(docs[i]);
}

static void key_and_string_helpers(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	sbuf_putc(&b, '{');
	jsonw_key(&b, "a", 1);
	jsonw_string(&b, "x\ny", 3);
	jsonw_key(&b, "b", 0);
	jsonw_string(&b, "", 0);
	sbuf_putc(&b, '}');
	assert_string_equal(b.data, "{\"a\":\"x\\ny\",\"b\":\"\"}");
	sbuf_clean_up(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(values_match_jansson),
	    TEST(key_and_string_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
