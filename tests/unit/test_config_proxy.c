/* The proxy section (SPEC 9 and 6): defaults, endpoint forms, identity,
 * thing names and duplicates (also from things_file, with its own
 * FILE:LINE), routes that could swallow the proxy's local topics, and
 * what a reload may change. */
#include "test_util.h"

#include <unistd.h>

#include "config.h"

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

static void refused(const char *text, int line, const char *want)
{
	char err[ERR_LEN];
	struct config *c = load_text(text, err);
	if (c)
		fail_msg("accepted: %s", text);
	char prefix[100];
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
		fail_msg("error '%s' lacks '%s' or '%s'", err, prefix, want);
}

#define MIN "aws: { region = \"eu-west-1\"; account = \"123456789012\"; };\n"
#define ID  "cert_file = \"/c.pem\"; key_file = \"/k.pem\";\n"

static void no_section_no_proxy(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c = load_text(MIN, err);
	assert_non_null(c);
	assert_null(c->proxy);
	config_free(c);
}

static void defaults_and_things(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c =
	    load_text(MIN "proxy: { endpoint = \"abc-ats.iot.eu-west-1.amazonaws.com\";\n" ID
	                  "things = [ \"press-1\", \"robot:2\" ]; };\n",
	              err);
	if (!c)
		fail_msg("%s", err);
	struct proxy_config *p = c->proxy;
	assert_string_equal(p->uri, "ssl://abc-ats.iot.eu-west-1.amazonaws.com:8883");
	assert_string_equal(p->local_prefix, "$aws/commands");
	assert_int_equal(p->version, 5);
	assert_int_equal(p->session_expiry, 3600);
	assert_int_equal(p->keepalive, 60);
	assert_true(p->connect_rate == 20.0);
	assert_int_equal(p->update_timeout_ms, 10000);
	assert_int_equal(p->n_things, 2);
	assert_string_equal(p->things[1], "robot:2");
	char cert[256], key[256];
	config_proxy_identity(p, "press-1", cert, key, sizeof(cert));
	assert_string_equal(cert, "/c.pem");
	config_free(c);
}

static void endpoint_with_a_port_and_identity_dir(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *c =
	    load_text(MIN "proxy: { endpoint = \"ssl://127.0.0.1:18883\";\n"
	                  "identity_dir = \"/etc/cmdgate/things\"; version = 4; };\n",
	              err);
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(c->proxy->uri, "ssl://127.0.0.1:18883");
	char cert[256], key[256];
	config_proxy_identity(c->proxy, "m1", cert, key, sizeof(cert));
	assert_string_equal(cert, "/etc/cmdgate/things/m1/certificate.pem.crt");
	assert_string_equal(key, "/etc/cmdgate/things/m1/private.pem.key");
	config_free(c);
}

static void bad_values_are_refused_at_their_line(void **s)
{
	(void)s;
	refused(MIN "proxy: {\n" ID "endpoint = \"h\";\nversion = 3; };\n", 5, "proxy.version");
	refused(MIN "proxy: {\n" ID "endpoint = \"h\";\nkeepalive = \"x\"; };\n", 5, "integer");
	refused(MIN "proxy: {\n" ID "endpoint = \"h\";\nconnect_rate = 0.0; };\n", 5,
	        "connect_rate");
	refused(MIN "proxy: {\n" ID "endpoint = \"h\";\nupdate_timeout_ms = 1; };\n", 5,
	        "update_timeout_ms");
	refused(MIN "proxy: {\n" ID "endpoint = \"h\";\nbogus = 1; };\n", 5, "proxy.bogus");
	refused(MIN "proxy: {\n" ID "endpoint = \"https://h\"; };\n", 4, "proxy.endpoint");
	refused(MIN "proxy: {\n" ID "endpoint = \"ssl://h:0\"; };\n", 4, "port");
	refused(MIN "proxy: {\n" ID "\n};\n", 2, "proxy.endpoint is required");
	refused(MIN "proxy: { endpoint = \"h\";\ncert_file = \"/c\"; };\n", 3, "go together");
	refused(MIN "proxy: { endpoint = \"h\";\n" ID "identity_dir = \"/d\"; };\n", 4, "not both");
	refused(MIN "proxy: { endpoint = \"h\"; };\n", 2, "identity");
	refused(MIN "proxy: { endpoint = \"h\";\n" ID "local_prefix = \"a/+\"; };\n", 4,
	        "local_prefix");
	refused(MIN "proxy: { endpoint = \"h\";\n" ID "things = [\n\"ok\",\n\"no/slash\" ]; };\n",
	        6, "thing name");
	refused(MIN "proxy: { endpoint = \"h\";\n" ID "things = [\n\"m1\",\n\"m1\" ]; };\n", 6,
	        "listed twice");
	refused(MIN "proxy: { endpoint = \"h\";\n" ID "things = [ 1 ]; };\n", 4, "strings");
}

static void things_file_errors_name_its_line(void **s)
{
	(void)s;
	char tf[64] = "/tmp/cmdgate-things-XXXXXX";
	int fd = mkstemp(tf);
	const char *body = "# machines\nm2\n\n  m3  \nm1\n";
	assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	close(fd);
	char text[512], err[ERR_LEN];
	snprintf(text, sizeof(text),
	         MIN "proxy: { endpoint = \"h\";\n" ID
	             "things = [ \"m1\" ]; things_file = \"%s\"; };\n",
	         tf);
	struct config *c = load_text(text, err);
	assert_null(c);
	char want[128];
	snprintf(want, sizeof(want), "%s:5: thing \"m1\" is listed twice", tf);
	assert_string_equal(err, want);
	snprintf(text, sizeof(text),
	         MIN "proxy: { endpoint = \"h\";\n" ID
	             "things = [ \"m0\" ]; things_file = \"%s\"; };\n",
	         tf);
	c = load_text(text, err);
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->proxy->n_things, 4);
	assert_string_equal(c->proxy->things[2], "m3");
	config_free(c);
	unlink(tf);
	c = load_text(text, err);
	assert_null(c);
	assert_non_null(strstr(err, "cannot be read"));
}

static void a_route_that_could_take_the_proxy_topics_is_refused(void **s)
{
	(void)s;
	refused(MIN "routes = ( {\n request_topic = "
	            "\"$aws/commands/things/{thing}/executions/{command}/response/json\"; } );\n"
	            "proxy: { endpoint = \"h\";\n" ID "};\n",
	        2, "could match the proxy's local topic");
	refused(MIN "routes = ( {\n request_topic = "
	            "\"lan/things/{thing}/executions/{command}/request\"; } );\n"
	            "proxy: { endpoint = \"h\";\n" ID "local_prefix = \"lan\"; };\n",
	        2, "could match");
	char err[ERR_LEN];
	struct config *c = load_text(MIN "proxy: { endpoint = \"h\";\n" ID "};\n", err);
	if (!c)
		fail_msg("%s", err);
	config_free(c);
}

static void reload_changes_things_only(void **s)
{
	(void)s;
	char err[ERR_LEN];
	struct config *a =
	    load_text(MIN "proxy: { endpoint = \"h\";\n" ID "things = [\"m1\"]; };\n", err);
	struct config *b =
	    load_text(MIN "proxy: { endpoint = \"h\";\n" ID "things = [\"m1\", \"m2\"]; };\n", err);
	struct config *c =
	    load_text(MIN "proxy: { endpoint = \"h2\";\n" ID "keepalive = 30; };\n", err);
	struct config *none = load_text(MIN, err);
	struct sbuf out;
	sbuf_init(&out);
	config_proxy_restart_needed(a->proxy, b->proxy, &out);
	assert_string_equal(out.data, "");
	assert_true(config_proxy_has_thing(b->proxy, "m2"));
	assert_false(config_proxy_has_thing(a->proxy, "m2"));
	config_proxy_restart_needed(a->proxy, c->proxy, &out);
	assert_string_equal(out.data, "proxy.endpoint, proxy.keepalive");
	sbuf_reset(&out);
	config_proxy_restart_needed(a->proxy, none->proxy, &out); /* the engine stops the proxy */
	assert_string_equal(out.data, "");
	/* links added by a reload are made as at start: the link part keeps
	 * the start values, without the reloadable keys */
	struct proxy_config *lp = config_proxy_link_part(a->proxy);
	assert_string_equal(lp->uri, a->proxy->uri);
	assert_string_equal(lp->cert_file, "/c.pem");
	assert_int_equal(lp->n_things, 0);
	config_proxy_restart_needed(lp, c->proxy, &out);
	assert_string_equal(out.data, "proxy.endpoint, proxy.keepalive");
	config_proxy_free(lp);
	sbuf_clean_up(&out);
	config_free(a);
	config_free(b);
	config_free(c);
	config_free(none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(no_section_no_proxy),
	    TEST(defaults_and_things),
	    TEST(endpoint_with_a_port_and_identity_dir),
	    TEST(bad_values_are_refused_at_their_line),
	    TEST(things_file_errors_name_its_line),
	    TEST(a_route_that_could_take_the_proxy_topics_is_refused),
	    TEST(reload_changes_things_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
