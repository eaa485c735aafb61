/* Credential formats: the shared credentials file, container/IMDS JSON, the
 * AWS IoT credentials provider's JSON, timestamps, container URI rule and
 * the refresh schedule. */
#include "test_util.h"

#include "cred_parse.h"
#include "url.h"

static void profile_file_as_the_cli_writes_it(void **s)
{
	(void)s;
	const char *text = "# comment\n"
	                   "[default]\n"
	                   "aws_access_key_id = AKIDDEFAULT\n"
	                   "aws_secret_access_key=secret-default\n"
	                   "\n"
	                   "; another comment\n"
	                   "[ factory ]\n"
	                   "  aws_access_key_id   =   AKIDFACTORY  \n"
	                   "aws_secret_access_key = s3cr3t/+=\n"
	                   "aws_session_token = tok/+=\n"
	                   "region = eu-west-1\n";
	struct credentials c = {0};
	char err[ERR_LEN];
	assert_int_equal(cred_parse_profile(text, "factory", &c, err), CG_OK);
	assert_string_equal(c.access_key_id, "AKIDFACTORY");
	assert_string_equal(c.secret_access_key, "s3cr3t/+=");
	assert_string_equal(c.session_token, "tok/+=");
	credentials_clean_up(&c);
	assert_int_equal(cred_parse_profile(text, "default", &c, err), CG_OK);
	assert_string_equal(c.access_key_id, "AKIDDEFAULT");
	assert_null(c.session_token);
	credentials_clean_up(&c);
	assert_int_equal(cred_parse_profile(text, "missing", &c, err), CG_CREDENTIALS);
	assert_non_null(strstr(err, "[missing]"));
	assert_null(strstr(err, "secret-default"));
	assert_null(strstr(err, "s3cr3t"));
}

static void container_and_imds_json(void **s)
{
	(void)s;
	const char *ok =
	    "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIA1\",\"SecretAccessKey\":\"sk\","
	    "\"Token\":\"tk\",\"Expiration\":\"2026-11-26T10:45:16Z\"}";
	struct credentials c = {0};
	char err[ERR_LEN];
	assert_int_equal(cred_parse_container(ok, strlen(ok), &c, err), CG_OK);
	assert_string_equal(c.access_key_id, "ASIA1");
	assert_string_equal(c.session_token, "tk");
	assert_int_equal((long)c.expiration, 1795689916L);
	credentials_clean_up(&c);
	const char *bad[] = {"not json",
	                     "[]",
	                     "{\"AccessKeyId\":\"a\"}",
	                     "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\",\"Token\":\"c\","
	                     "\"Expiration\":\"tomorrow\"}",
	                     "{\"Code\":\"Failure\",\"AccessKeyId\":\"a\"}",
	                     "{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"b\",\"Token\":\"c\","
	                     "\"Expiration\":\"2026-11-26T10:45:16Z\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		assert_int_equal(cred_parse_container(bad[i], strlen(bad[i]), &c, err),
		                 CG_CREDENTIALS);
		assert_null(c.secret_access_key);
	}
}

static void iot_provider_json(void **s)
{
	(void)s;
	const char *ok = "{\"credentials\":{\"accessKeyId\":\"ASIAIOT\",\"secretAccessKey\":\"s\","
	                 "\"sessionToken\":\"t\",\"expiration\":\"2026-11-26T10:45:16.000Z\"}}";
	struct credentials c = {0};
	char err[ERR_LEN];
	assert_int_equal(cred_parse_iot(ok, strlen(ok), &c, err), CG_OK);
	assert_string_equal(c.access_key_id, "ASIAIOT");
	assert_int_equal((long)c.expiration, 1795689916L);
	credentials_clean_up(&c);
	const char *bad = "{\"accessKeyId\":\"ASIAIOT\"}";
	assert_int_equal(cred_parse_iot(bad, strlen(bad), &c, err), CG_CREDENTIALS);
	assert_non_null(strstr(err, "credentials"));
}

static void timestamps(void **s)
{
	(void)s;
	time_t t;
	assert_int_equal(cred_parse_time("2026-11-26T10:45:16Z", &t), 0);
	assert_int_equal((long)t, 1795689916L);
	assert_int_equal(cred_parse_time("2026-11-26T11:45:16+01:00", &t), 0);
	assert_int_equal((long)t, 1795689916L);
	assert_int_equal(cred_parse_time("2026-11-26T10:45:16.123456Z", &t), 0);
	assert_int_equal((long)t, 1795689916L);
	assert_int_equal(cred_parse_time("2026-11-26 10:45:16", &t), -1);
	assert_int_equal(cred_parse_time("2026-13-26T10:45:16Z", &t), -1);
	assert_int_equal(cred_parse_time("2026-11-26T10:45:16Zjunk", &t), -1);
	assert_int_equal(cred_parse_time("", &t), -1);
}

static void container_uri_rule(void **s)
{
	(void)s;
	const char *yes[] = {"https://creds.example/x",
	                     "http://127.0.0.1:8080/creds",
	                     "http://127.9.9.9/c",
	                     "http://localhost:1/c",
	                     "http://[::1]:9/c",
	                     "http://169.254.170.2/v2/credentials/abc",
	                     "http://169.254.170.23/v1/credentials"};
	const char *no[] = {"http://10.0.0.1/creds", "http://192.168.1.2/c", "http://example.com/c",
	                    "http://127.0.0.1.evil.example/c", "ftp://127.0.0.1/c", "https://",
	                    "http://[::2]/c", "http://1270.0.0.1/c",
	                    /* issue 18 item 10: userinfo is not the host */
	                    "http://localhost:80@192.0.2.7/c", "http://127.0.0.1@example.com/c",
	                    "http://169.254.170.2:80@example.com/", "not a url"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!cred_container_uri_allowed(yes[i]))
			fail_msg("refused %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (cred_container_uri_allowed(no[i]))
			fail_msg("allowed %s", no[i]);
}

/* Endpoints never proxied (issue 18 item 11), as libcurl's parser sees them. */
static void local_urls(void **s)
{
	(void)s;
	const char *yes[] = {"http://127.0.0.1:1/x",
	                     "http://[::1]/",
	                     "http://localhost/",
	                     "http://169.254.169.254/latest",
	                     "http://169.254.170.2/v2",
	                     "http://[fe80::1]/",
	                     "http://127.1/"};
	const char *no[] = {"http://10.0.0.1/",
	                    "https://iot.eu-west-1.amazonaws.com/",
	                    "http://localhost@192.0.2.1/",
	                    "http://[::2]/",
	                    "http://169.253.1.1/",
	                    ""};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!url_is_local(yes[i]))
			fail_msg("not local: %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (url_is_local(no[i]))
			fail_msg("local: %s", no[i]);
}

static void refresh_schedule(void **s)
{
	(void)s;
	/* an hour left: 5 minutes ahead, minus up to a minute of jitter */
	for (uint32_t r = 0; r < 1000; r += 37) {
		time_t at = cred_refresh_at(1000, 1000 + 3600, r);
		assert_in_range((long)at, 1000 + 3600 - 360, 1000 + 3600 - 300);
	}
	/* ten seconds left: at half of the remaining life or a little before */
	time_t at = cred_refresh_at(1000, 1010, 12345);
	assert_in_range((long)at, 1004, 1005);
	assert_int_equal((long)cred_refresh_at(1000, 0, 1), 0);      /* never expires */
	assert_int_equal((long)cred_refresh_at(1000, 900, 1), 1000); /* already expired */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(profile_file_as_the_cli_writes_it),
	    TEST(container_and_imds_json),
	    TEST(iot_provider_json),
	    TEST(timestamps),
	    TEST(container_uri_rule),
	    TEST(local_urls),
	    TEST(refresh_schedule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
