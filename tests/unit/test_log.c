/* Log lines: values from devices and endpoints cannot forge lines or drive a
 * terminal in text logs, and never lose a JSON line (issue 18 item 12). */
#include "test_util.h"

#include <unistd.h>

#include "log.h"
#include "sbuf.h"

static char *escaped(const char *s, size_t n, int json)
{
	struct sbuf b;
	sbuf_init(&b);
	log_escape(&b, s, n, json);
	return sbuf_steal(&b);
}

#define ESC(s, json) escaped(s, sizeof(s) - 1, json)

static void text_escapes_every_control_character(void **st)
{
	(void)st;
	char *s = ESC("key\n2026-01-01 error forged\r\x1b[2J\t\x7f\xc2\x9b|", 0);
	assert_string_equal(s, "key\\n2026-01-01 error forged\\r\\x1b[2J\\t\\x7f\\x9b|");
	free(s);
	s = ESC("caf\xc3\xa9 \xe2\x82\xac ok", 0); /* printable UTF-8 stays */
	assert_string_equal(s, "caf\xc3\xa9 \xe2\x82\xac ok");
	free(s);
}

static void invalid_bytes_are_shown_as_values(void **st)
{
	(void)st;
	char *s = ESC("a\xff"
	              "b\xc0\xaf"
	              "c\xed\xa0\x80"
	              "d",
	              1); /* stray, overlong, surrogate */
	assert_string_equal(s, "a\\xffb\\xc0\\xafc\\xed\\xa0\\x80d");
	free(s);
}

static void a_character_cut_at_the_end_is_dropped(void **st)
{
	(void)st;
	char *s = ESC("thing-\xe2\x82", 1);
	assert_string_equal(s, "thing-");
	free(s);
	s = ESC("thing-\xf0\x9f\x98", 0);
	assert_string_equal(s, "thing-");
	free(s);
}

static void bounded_copies_stop_on_a_character_boundary(void **st)
{
	(void)st;
	assert_int_equal(log_utf8_boundary("ab\xc3\xa9", 4), 4);
	assert_int_equal(log_utf8_boundary("ab\xc3\xa9", 3), 2);
	assert_int_equal(log_utf8_boundary("a\xf0\x9f\x98", 4), 1);
	assert_int_equal(log_utf8_boundary("a\xf0\x9f\x98\x80", 5), 5);
	assert_int_equal(log_utf8_boundary("abc", 3), 3);
	assert_int_equal(log_utf8_boundary("\x80\x80\x80\x80", 4), 4); /* not UTF-8: left */
	assert_int_equal(log_utf8_boundary("", 0), 0);
}

/* Run log_msg with stderr on a temporary file; return what it wrote. */
static char *logged(const char *format, const char *value)
{
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	dup2(fileno(tmp), 2);
	log_configure("info", format);
	log_info("request from %s done", value);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	struct sbuf b;
	sbuf_init(&b);
	char buf[512];
	size_t n;
	rewind(tmp);
	while ((n = fread(buf, 1, sizeof(buf), tmp)) > 0)
		sbuf_append(&b, buf, n);
	fclose(tmp);
	log_configure(NULL, "text");
	return sbuf_steal(&b);
}

static void a_text_line_stays_one_line(void **st)
{
	(void)st;
	char *s = logged("text", "pump\n2026-12-07T00:00:00.000Z error forged\x1b[31m");
	assert_non_null(
	    strstr(s, "request from pump\\n2026-12-07T00:00:00.000Z error forged\\x1b[31m done\n"));
	assert_ptr_equal(strchr(s, '\n'), s + strlen(s) - 1);
	free(s);
}

static void a_json_line_is_never_lost(void **st)
{
	(void)st;
	/* a name cut mid-character by a bounded buffer, then more text */
	char *s = logged("json", "pump-\xe2\x82\xac\xe2\x82");
	assert_null(strstr(s, "unencodable"));
	assert_non_null(
	    strstr(s, "\"msg\":\"request from pump-\xe2\x82\xac\\\\xe2\\\\x82 done\"}\n"));
	free(s);
	s = logged("json", "bad\xff byte\n");
	assert_non_null(strstr(s, "\"msg\":\"request from bad\\\\xff byte\\n done\"}\n"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(text_escapes_every_control_character),
	    TEST(invalid_bytes_are_shown_as_values),
	    TEST(a_character_cut_at_the_end_is_dropped),
	    TEST(bounded_copies_stop_on_a_character_boundary),
	    TEST(a_text_line_stays_one_line),
	    TEST(a_json_line_is_never_lost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
