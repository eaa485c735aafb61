/* Credential sources over a mocked fetch: what each source asks for (method,
 * URL, headers, client TLS), how it reads the answer, the chain's order, and
 * the secret-file rule, including systemd's $CREDENTIALS_DIRECTORY. This file
 * defines cred_fetch(), so no request leaves the process. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "credentials/fetch.h"
#include "credentials/source.h"
#include "secretfile.h"

/* ---- the mock ------------------------------------------------------------ */

#define MAX_CALLS 8

struct seen {
	char method[8], url[256], headers[512], cert[64], key[64], ca[64];
};

struct answer {
	enum cg_err rc;
	long status;
	const char *body;
};

static struct seen seen[MAX_CALLS];
static struct answer answers[MAX_CALLS];
static size_t n_seen, n_answers;

enum cg_err cred_fetch(const struct cred_fetch *req, long *status, struct sbuf *body, char *err)
{
	assert_true(n_seen < MAX_CALLS);
	struct seen *s = &seen[n_seen];
	snprintf(s->method, sizeof(s->method), "%s", req->method);
	snprintf(s->url, sizeof(s->url), "%s", req->url);
	s->headers[0] = '\0';
	for (size_t i = 0; i < CRED_FETCH_HEADERS && req->headers[i]; i++) {
		strncat(s->headers, req->headers[i], sizeof(s->headers) - strlen(s->headers) - 2);
		strcat(s->headers, "|");
	}
	snprintf(s->cert, sizeof(s->cert), "%s", req->cert_file ? req->cert_file : "");
	snprintf(s->key, sizeof(s->key), "%s", req->key_file ? req->key_file : "");
	snprintf(s->ca, sizeof(s->ca), "%s", req->ca_file ? req->ca_file : "");
	struct answer a =
	    n_seen < n_answers ? answers[n_seen] : (struct answer){CG_TRANSPORT, 0, NULL};
	n_seen++;
	*status = a.status;
	if (a.rc != CG_OK)
		return cg_fail(err, a.rc, "mock: %s %s refused", req->method, req->url);
	sbuf_puts(body, a.body ? a.body : "");
	return CG_OK;
}

static void answer(long status, const char *body)
{
	answers[n_answers++] = (struct answer){CG_OK, status, body};
}

static const char *const ENV[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "CREDENTIALS_DIRECTORY",
};

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	n_seen = n_answers = 0;
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < sizeof(ENV) / sizeof(ENV[0]); i++)
		unsetenv(ENV[i]);
	setenv("HOME", "/nonexistent", 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cmdgate-test-creds-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Write text to tmpdir/name with mode; returns the path (static buffer). */
static const char *file(const char *name, const char *text, mode_t mode)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static struct cred_config config(const char *source)
{
	static char empty[] = "";
	struct cred_config c = {
	    empty, empty, empty, empty, {empty, empty, empty, empty, empty, empty}};
	c.source = (char *)source;
	return c;
}

#define CONTAINER_JSON                                                                             \
	"{\"AccessKeyId\":\"ASIACONT\",\"SecretAccessKey\":\"sk-cont\",\"Token\":\"tk-cont\","     \
	"\"Expiration\":\"2026-11-26T10:45:16Z\"}"
#define IOT_JSON                                                                                   \
	"{\"credentials\":{\"accessKeyId\":\"ASIAIOT\",\"secretAccessKey\":\"sk-iot\","            \
	"\"sessionToken\":\"tk-iot\",\"expiration\":\"2026-11-26T10:45:16Z\"}}"

static enum cg_err load(const char *source, const struct cred_config *cfg, struct credentials *c,
                        char *err)
{
	const struct cred_source *s = cred_source_find(source);
	assert_non_null(s);
	memset(c, 0, sizeof(*c));
	return cred_source_load(s, cfg, c, err);
}

/* ---- container ----------------------------------------------------------- */

static void container_relative_uri_asks_the_ecs_agent_with_the_token_file(void **state)
{
	(void)state;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file("token", "tok-123\n", 0644), 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-a-file-is-given", 1);
	answer(200, CONTAINER_JSON);
	struct cred_config cfg = config("container");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("container", &cfg, &c, err), CG_OK);
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen[0].method, "GET");
	assert_string_equal(seen[0].url, "http://169.254.170.2/v2/credentials/abc");
	assert_string_equal(seen[0].headers, "Authorization: tok-123|Accept: application/json|");
	assert_string_equal(c.access_key_id, "ASIACONT");
	assert_string_equal(c.secret_access_key, "sk-cont");
	assert_string_equal(c.session_token, "tk-cont");
	assert_int_equal((long)c.expiration, 1795689916L);
	assert_string_equal(c.source, "container");
	credentials_clean_up(&c);
}

static void container_full_uri_over_plain_http_to_a_remote_host_is_refused(void **state)
{
	(void)state;
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://198.51.100.7/creds", 1);
	struct cred_config cfg = config("container");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("container", &cfg, &c, err), CG_CREDENTIALS);
	assert_int_equal(n_seen, 0); /* nothing was sent there */
	assert_non_null(strstr(err, "not https"));
	assert_null(c.access_key_id);
}

static void container_token_with_a_line_break_is_refused(void **state)
{
	(void)state;
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok\r\nX-Injected: 1", 1);
	struct cred_config cfg = config("container");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("container", &cfg, &c, err), CG_CREDENTIALS);
	assert_int_equal(n_seen, 0);
	assert_non_null(strstr(err, "line break"));
}

static void container_http_error_names_the_status(void **state)
{
	(void)state;
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://creds.example/v1", 1);
	answer(500, "oops");
	struct cred_config cfg = config("container");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("container", &cfg, &c, err), CG_CREDENTIALS);
	assert_string_equal(seen[0].headers, "Accept: application/json|");
	assert_non_null(strstr(err, "HTTP 500"));
	assert_null(c.secret_access_key);
}

/* ---- imds ---------------------------------------------------------------- */

static void imds_takes_a_session_token_then_the_role_then_its_credentials(void **state)
{
	(void)state;
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8111/", 1);
	answer(200, "SESSION-TOKEN\n");
	answer(200, "gateway-role\n");
	answer(200, CONTAINER_JSON);
	struct cred_config cfg = config("imds");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("imds", &cfg, &c, err), CG_OK);
	assert_int_equal(n_seen, 3);
	assert_string_equal(seen[0].method, "PUT");
	assert_string_equal(seen[0].url, "http://127.0.0.1:8111/latest/api/token");
	assert_string_equal(seen[0].headers, "X-aws-ec2-metadata-token-ttl-seconds: 21600|");
	assert_string_equal(seen[1].method, "GET");
	assert_string_equal(seen[1].url,
	                    "http://127.0.0.1:8111/latest/meta-data/iam/security-credentials/");
	assert_string_equal(seen[1].headers, "X-aws-ec2-metadata-token: SESSION-TOKEN|");
	assert_string_equal(
	    seen[2].url,
	    "http://127.0.0.1:8111/latest/meta-data/iam/security-credentials/gateway-role");
	assert_string_equal(seen[2].headers, "X-aws-ec2-metadata-token: SESSION-TOKEN|");
	assert_string_equal(c.access_key_id, "ASIACONT");
	assert_string_equal(c.source, "imds");
	credentials_clean_up(&c);
}

static void imds_default_address_and_no_fallback_to_imdsv1(void **state)
{
	(void)state;
	answer(403, ""); /* token refused: IMDSv1 is never tried */
	struct cred_config cfg = config("imds");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("imds", &cfg, &c, err), CG_CREDENTIALS);
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen[0].url, "http://169.254.169.254/latest/api/token");
	assert_non_null(strstr(err, "HTTP 403"));
}

static void imds_disabled_asks_nothing(void **state)
{
	(void)state;
	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	struct cred_config cfg = config("imds");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("imds", &cfg, &c, err), CG_CREDENTIALS);
	assert_int_equal(n_seen, 0);
	assert_non_null(strstr(err, "disabled"));
}

static void imds_without_a_role_says_so(void **state)
{
	(void)state;
	answer(200, "T");
	answer(200, "");
	struct cred_config cfg = config("imds");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("imds", &cfg, &c, err), CG_CREDENTIALS);
	assert_int_equal(n_seen, 2);
	assert_non_null(strstr(err, "no instance role"));
}

/* ---- iot ----------------------------------------------------------------- */

static struct cred_config iot_config(const char *endpoint)
{
	struct cred_config cfg = config("iot");
	cfg.iot.endpoint = (char *)endpoint;
	cfg.iot.role_alias = "cmdgate-gateway";
	cfg.iot.thing_name = "line3-gateway";
	cfg.iot.cert_file = "/etc/c.pem";
	cfg.iot.key_file = "/etc/k.pem";
	cfg.iot.ca_file = "/etc/ca.pem";
	return cfg;
}

static void iot_trades_the_certificate_for_role_credentials(void **state)
{
	(void)state;
	answer(200, IOT_JSON);
	struct cred_config cfg = iot_config("c2abc.credentials.iot.eu-west-1.amazonaws.com");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("iot", &cfg, &c, err), CG_OK);
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen[0].method, "GET");
	assert_string_equal(seen[0].url, "https://c2abc.credentials.iot.eu-west-1.amazonaws.com"
	                                 "/role-aliases/cmdgate-gateway/credentials");
	assert_string_equal(seen[0].headers, "x-amzn-iot-thingname: line3-gateway|");
	assert_string_equal(seen[0].cert, "/etc/c.pem");
	assert_string_equal(seen[0].key, "/etc/k.pem");
	assert_string_equal(seen[0].ca, "/etc/ca.pem");
	assert_string_equal(c.access_key_id, "ASIAIOT");
	assert_string_equal(c.session_token, "tk-iot");
	assert_string_equal(c.source, "iot");
	credentials_clean_up(&c);
}

static void iot_endpoint_may_be_a_url_with_a_port(void **state)
{
	(void)state;
	answer(200, IOT_JSON);
	struct cred_config cfg = iot_config("https://127.0.0.1:8443/");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("iot", &cfg, &c, err), CG_OK);
	assert_string_equal(seen[0].url,
	                    "https://127.0.0.1:8443/role-aliases/cmdgate-gateway/credentials");
	credentials_clean_up(&c);
}

static void iot_403_and_404_are_explained(void **state)
{
	(void)state;
	answer(403, "{\"message\":\"Access Denied\"}");
	answer(404, "{\"message\":\"Role alias does not exist\"}");
	struct cred_config cfg = iot_config("creds.example");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("iot", &cfg, &c, err), CG_CREDENTIALS);
	assert_non_null(strstr(err, "HTTP 403 (certificate, thing name or role alias policy"));
	assert_int_equal(load("iot", &cfg, &c, err), CG_CREDENTIALS);
	assert_non_null(strstr(err, "HTTP 404 (unknown role alias)"));
	assert_null(c.access_key_id);
}

/* ---- chain --------------------------------------------------------------- */

static void chain_takes_env_first_and_asks_no_one(void **state)
{
	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "sk-env", 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds", 1);
	struct cred_config cfg = config("chain");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("chain", &cfg, &c, err), CG_OK);
	assert_int_equal(n_seen, 0);
	assert_string_equal(c.access_key_id, "AKIAENV");
	assert_null(c.session_token);
	assert_string_equal(c.source, "env");
	credentials_clean_up(&c);
}

static void chain_prefers_the_profile_to_the_network(void **state)
{
	(void)state;
	setenv("AWS_SHARED_CREDENTIALS_FILE",
	       file("credentials",
	            "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = sk-def\n"
	            "[line3]\naws_access_key_id = AKIAL3\naws_secret_access_key = sk-l3\n",
	            0600),
	       1);
	setenv("AWS_PROFILE", "line3", 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds", 1);
	struct cred_config cfg = config("chain");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("chain", &cfg, &c, err), CG_OK);
	assert_int_equal(n_seen, 0);
	assert_string_equal(c.access_key_id, "AKIAL3");
	assert_string_equal(c.source, "profile");
	credentials_clean_up(&c);
}

static void chain_falls_through_to_container_then_imds(void **state)
{
	(void)state;
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
	answer(503, "busy");         /* container fails */
	answer(200, "T");            /* imds token */
	answer(200, "r\n");          /* imds role */
	answer(200, CONTAINER_JSON); /* imds credentials */
	struct cred_config cfg = config("chain");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("chain", &cfg, &c, err), CG_OK);
	assert_int_equal(n_seen, 4);
	assert_string_equal(seen[0].url, "http://127.0.0.1:9/creds");
	assert_string_equal(seen[1].method, "PUT");
	assert_string_equal(c.source, "imds");
	credentials_clean_up(&c);
}

static void chain_that_finds_nothing_gives_every_reason(void **state)
{
	(void)state;
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	struct cred_config cfg = config("chain");
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("chain", &cfg, &c, err), CG_CREDENTIALS);
	assert_int_equal(n_seen, 0);
	assert_non_null(strstr(err, "chain: env:"));
	assert_non_null(strstr(err, "/nonexistent/credentials"));
	assert_non_null(strstr(err, "container:"));
	assert_non_null(strstr(err, "imds: disabled"));
	assert_null(c.access_key_id);
	assert_null(c.source);
}

static void every_configured_source_name_is_known(void **state)
{
	(void)state;
	const char *names[] = {"chain", "static", "env", "profile", "iot", "container", "imds"};
	for (size_t i = 0; i < 7; i++) {
		const struct cred_source *s = cred_source_find(names[i]);
		assert_non_null(s);
		assert_string_equal(s->name, names[i]);
	}
	assert_null(cred_source_find("ec2"));
}

/* ---- static and the secret-file rule ------------------------------------- */

static void static_reads_the_first_line_of_a_private_secret_file(void **state)
{
	(void)state;
	struct cred_config cfg = config("static");
	cfg.access_key_id = "AKIASTATIC";
	cfg.secret_access_key_file = (char *)file("secret", "s3cr3t/key+= \nsecond line\n", 0600);
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("static", &cfg, &c, err), CG_OK);
	assert_string_equal(c.access_key_id, "AKIASTATIC");
	assert_string_equal(c.secret_access_key, "s3cr3t/key+=");
	assert_string_equal(c.source, "static");
	credentials_clean_up(&c);
}

static void static_refuses_a_secret_others_may_read(void **state)
{
	(void)state;
	struct cred_config cfg = config("static");
	cfg.access_key_id = "AKIASTATIC";
	const mode_t modes[] = {0640, 0604, 0440};
	for (size_t i = 0; i < 3; i++) {
		cfg.secret_access_key_file = (char *)file("secret", "sk\n", modes[i]);
		struct credentials c;
		char err[ERR_LEN] = "";
		assert_int_not_equal(load("static", &cfg, &c, err), CG_OK);
		assert_non_null(strstr(err, "chmod 600"));
		assert_null(c.secret_access_key);
	}
}

static void systemd_credentials_directory_is_trusted_at_mode_0440(void **state)
{
	(void)state;
	char dir[128], outside[128];
	snprintf(dir, sizeof(dir), "%s/creds", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	const char *in = file("creds/aws-secret", "sk-systemd\n", 0440);
	struct cred_config cfg = config("static");
	cfg.access_key_id = "AKIASTATIC";
	cfg.secret_access_key_file = (char *)in;
	struct credentials c;
	char err[ERR_LEN] = "";
	assert_int_equal(load("static", &cfg, &c, err), CG_OK);
	assert_string_equal(c.secret_access_key, "sk-systemd");
	credentials_clean_up(&c);

	/* the same file outside the directory is refused */
	snprintf(outside, sizeof(outside), "%s", file("aws-secret", "sk-elsewhere\n", 0440));
	cfg.secret_access_key_file = outside;
	assert_int_not_equal(load("static", &cfg, &c, err), CG_OK);
	assert_non_null(strstr(err, "chmod 600"));

	/* and so is a link inside the directory that points out of it */
	char link[160];
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(outside, link), 0);
	cfg.secret_access_key_file = link;
	assert_int_not_equal(load("static", &cfg, &c, err), CG_OK);
	assert_non_null(strstr(err, "chmod 600"));
	/* nor is a sibling directory whose name merely starts the same */
	char sibling[160];
	snprintf(sibling, sizeof(sibling), "%s/creds-other", tmpdir);
	assert_int_equal(mkdir(sibling, 0700), 0);
	cfg.secret_access_key_file = (char *)file("creds-other/aws-secret", "sk\n", 0440);
	assert_int_not_equal(load("static", &cfg, &c, err), CG_OK);
	assert_non_null(strstr(err, "chmod 600"));
}

static void secretfile_read_refuses_a_secret_longer_than_the_buffer(void **state)
{
	(void)state;
	char buf[8];
	char err[ERR_LEN] = "";
	assert_int_equal(secretfile_read(file("pw", "1234567\n", 0600), buf, sizeof(buf), err),
	                 CG_OK);
	assert_string_equal(buf, "1234567");
	assert_int_equal(secretfile_read(file("pw", "12345678\n", 0600), buf, sizeof(buf), err),
	                 CG_CONFIG);
	assert_string_equal(buf, "");
	assert_int_equal(secretfile_read("/nonexistent/pw", buf, sizeof(buf), err), CG_IO);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(container_relative_uri_asks_the_ecs_agent_with_the_token_file),
	    T(container_full_uri_over_plain_http_to_a_remote_host_is_refused),
	    T(container_token_with_a_line_break_is_refused),
	    T(container_http_error_names_the_status),
	    T(imds_takes_a_session_token_then_the_role_then_its_credentials),
	    T(imds_default_address_and_no_fallback_to_imdsv1),
	    T(imds_disabled_asks_nothing),
	    T(imds_without_a_role_says_so),
	    T(iot_trades_the_certificate_for_role_credentials),
	    T(iot_endpoint_may_be_a_url_with_a_port),
	    T(iot_403_and_404_are_explained),
	    T(chain_takes_env_first_and_asks_no_one),
	    T(chain_prefers_the_profile_to_the_network),
	    T(chain_falls_through_to_container_then_imds),
	    T(chain_that_finds_nothing_gives_every_reason),
	    T(every_configured_source_name_is_known),
	    T(static_reads_the_first_line_of_a_private_secret_file),
	    T(static_refuses_a_secret_others_may_read),
	    T(systemd_credentials_directory_is_trusted_at_mode_0440),
	    T(secretfile_read_refuses_a_secret_longer_than_the_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
