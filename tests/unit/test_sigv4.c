/*
 * SigV4 against the published AWS test suite: every case's canonical request,
 * string to sign and Authorization header, plus the iot-jobs-data scope with
 * a session token (checked against an independently computed signature).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define AKID   "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct sbuf b;
	sbuf_init(&b);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		sbuf_append(&b, tmp, n);
	fclose(f);
	return sbuf_steal(&b);
}

struct parsed {
	char method[16];
	char path[1024];
	char *query;
	struct sigv4_header h[16];
	size_t nh;
	char *body;
	char amz_date[17];
	char *token;
	char *buf;
};

static void parse_req_file(const char *text_in, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	p->buf = strdup(text_in);
	char *s = p->buf;
	char *eol = strchr(s, '\n');
	if (eol)
		*eol = '\0';
	char target[1024];
	assert_int_equal(sscanf(s, "%15s %1023s", p->method, target), 2);
	char *q = strchr(target, '?');
	if (q) {
		*q = '\0';
		p->query = strdup(q + 1);
	}
	snprintf(p->path, sizeof(p->path), "%s", target);
	s = eol ? eol + 1 : s + strlen(s);
	while (*s) {
		eol = strchr(s, '\n');
		if (eol)
			*eol = '\0';
		if (*s == '\0') {
			p->body = eol ? eol + 1 : s;
			break;
		}
		char *colon = strchr(s, ':');
		assert_non_null(colon);
		*colon = '\0';
		p->h[p->nh].name = s;
		p->h[p->nh].value = colon + 1;
		if (strcasecmp(s, "x-amz-date") == 0)
			snprintf(p->amz_date, sizeof(p->amz_date), "%s", colon + 1);
		p->nh++;
		if (!eol)
			break;
		s = eol + 1;
	}
	if (!p->body)
		p->body = "";
}

static void free_parsed(struct parsed *p)
{
	free(p->buf);
	free(p->query);
}

static char *case_file(const char *name, const char *ext)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s/%s.%s", VECTORS_DIR, name, name, ext);
	char *s = slurp(path);
	if (!s)
		fail_msg("cannot read %s", path);
	return s;
}

static void check_case(const char *name)
{
	char *req = case_file(name, "req");
	char *creq_want = case_file(name, "creq");
	char *sts_want = case_file(name, "sts");
	char *authz_want = case_file(name, "authz");
	struct parsed p;
	parse_req_file(req, &p);

	char hash[65];
	sigv4_sha256_hex(p.body, strlen(p.body), hash);
	struct sigv4_request r = {p.method, p.path, p.query, p.h, p.nh, hash};
	struct sbuf creq, sh, sts, authz;
	sbuf_init(&creq);
	sbuf_init(&sh);
	sbuf_init(&sts);
	sbuf_init(&authz);
	sigv4_canonical_request(&r, &creq, &sh);
	if (strcmp(creq.data, creq_want) != 0)
		fail_msg("%s: canonical request\n--- got\n%s\n--- want\n%s", name, creq.data,
		         creq_want);
	sigv4_string_to_sign(p.amz_date, "us-east-1", "service", creq.data, &sts);
	/* The two post-x-www-form-urlencoded cases ship a .sts whose hash is not that of its own
	 * .creq (the .sts and .authz agree with each other, not with the
	 * .creq). There the signature stage is checked on the published string
	 * to sign, and our string to sign must hash the published creq. */
	char creq_hash[65];
	sigv4_sha256_hex(creq_want, strlen(creq_want), creq_hash);
	if (!strstr(sts_want, creq_hash)) {
		assert_true(strncmp(name, "post-x-www-form-urlencoded", 26) == 0);
		assert_non_null(strstr(sts.data, creq_hash));
		unsigned char key[32];
		char sig[65];
		sigv4_signing_key(SECRET, p.amz_date, "us-east-1", "service", key);
		sigv4_signature(key, sts_want, sig);
		assert_string_equal(sig, strstr(authz_want, "Signature=") + 10);
	} else {
		if (strcmp(sts.data, sts_want) != 0)
			fail_msg("%s: string to sign\n--- got\n%s\n--- want\n%s", name, sts.data,
			         sts_want);
		struct sigv4_credentials c = {AKID, SECRET, NULL, 1};
		sigv4_authorize(&r, &c, "us-east-1", "service", p.amz_date, NULL, &authz);
		if (strcmp(authz.data, authz_want) != 0)
			fail_msg("%s: authorization\n--- got\n%s\n--- want\n%s", name, authz.data,
			         authz_want);
	}
	sbuf_clean_up(&creq);
	sbuf_clean_up(&sh);
	sbuf_clean_up(&sts);
	sbuf_clean_up(&authz);
	free_parsed(&p);
	free(req);
	free(creq_want);
	free(sts_want);
	free(authz_want);
}

/* The 28 cases of tests/vectors/sigv4, each its own named test: one bad
 * vector does not hide the others. */
static const char *const VECTORS[] = {
    "get-header-key-duplicate",
    "get-header-value-order",
    "get-header-value-trim",
    "get-relative",
    "get-relative-relative",
    "get-slash",
    "get-slash-dot-slash",
    "get-slash-pointless-dot",
    "get-slashes",
    "get-unreserved",
    "get-vanilla",
    "get-vanilla-empty-query-key",
    "get-vanilla-query",
    "get-vanilla-query-order-key",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-value",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "post-header-key-case",
    "post-header-key-sort",
    "post-header-value-case",
    "post-sts-header-after",
    "post-sts-header-before",
    "post-vanilla",
    "post-vanilla-empty-query-value",
    "post-vanilla-query",
    "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters",
};
#define N_VECTORS (sizeof VECTORS / sizeof VECTORS[0])

static void published_case_matches_each_stage(void **state)
{
	check_case(*state);
}

/* Every case on disk is one of the named tests, and there are 28. */
static void every_published_case_is_a_named_test(void **state)
{
	(void)state;
	DIR *d = opendir(VECTORS_DIR);
	assert_non_null(d);
	struct dirent *e;
	size_t n = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strchr(e->d_name, '.'))
			continue;
		size_t i = 0;
		while (i < N_VECTORS && strcmp(VECTORS[i], e->d_name) != 0)
			i++;
		if (i == N_VECTORS)
			fail_msg("case %s in %s is not a named test", e->d_name, VECTORS_DIR);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 28);
	assert_int_equal(N_VECTORS, 28);
}

static void iot_jobs_data_scope_with_token(void **state)
{
	(void)state;
	/* A StartCommandExecution request signed for iot-jobs-data. The expected
	 * values were computed with an independent implementation (Python's hmac
	 * and hashlib, tests/fake_aws.py) from the same inputs. */
	const char *body = "{\"targetArn\":\"arn:aws:iot:eu-west-1:123456789012:thing/t1\","
	                   "\"commandArn\":\"arn:aws:iot:eu-west-1:123456789012:command/c1\","
	                   "\"clientToken\":\"tok-1\"}";
	char hash[65];
	sigv4_sha256_hex(body, strlen(body), hash);
	struct sigv4_header h[] = {
	    {"Content-Type", "application/json"},
	    {"Host", "data.jobs.iot.eu-west-1.amazonaws.com"},
	    {"X-Amz-Date", "20260101T000000Z"},
	    {"X-Amz-Security-Token", "SESSIONTOKEN/+="},
	};
	struct sigv4_request r = {"POST", "/command-executions", NULL, h, 4, hash};
	struct sigv4_credentials c = {AKID, SECRET, "SESSIONTOKEN/+=", 7};
	struct sbuf creq, sh, authz;
	sbuf_init(&creq);
	sbuf_init(&sh);
	sbuf_init(&authz);
	sigv4_canonical_request(&r, &creq, &sh);
	assert_string_equal(sh.data, "content-type;host;x-amz-date;x-amz-security-token");
	struct sigv4_key_cache cache = {0};
	sigv4_authorize(&r, &c, "eu-west-1", "iot-jobs-data", "20260101T000000Z", &cache, &authz);
	assert_non_null(strstr(authz.data, "Credential=AKIDEXAMPLE/20260101/eu-west-1/"
	                                   "iot-jobs-data/aws4_request, "));
	assert_string_equal(strstr(authz.data, "Signature=") + 10,
	                    "ba17aa8035dec628acaabf0b1a46150687b3e468a222ad45739aa9af92a1d4fa");
	/* Second signature with the cached key is identical. */
	struct sbuf again;
	sbuf_init(&again);
	assert_int_equal(cache.valid, 1);
	sigv4_authorize(&r, &c, "eu-west-1", "iot-jobs-data", "20260101T000000Z", &cache, &again);
	assert_string_equal(authz.data, again.data);
	/* A new day derives a new key. */
	sbuf_reset(&again);
	h[2].value = "20260102T000000Z";
	sigv4_authorize(&r, &c, "eu-west-1", "iot-jobs-data", "20260102T000000Z", &cache, &again);
	assert_string_equal(cache.date, "20260102");
	assert_string_not_equal(authz.data, again.data);
	sigv4_key_cache_clean_up(&cache);
	sbuf_clean_up(&again);
	sbuf_clean_up(&creq);
	sbuf_clean_up(&sh);
	sbuf_clean_up(&authz);
}

/* SPEC section 5: a hostile Date (year 99999) once left x-amz-date
 * unterminated. Dates are made only for 2000..2199 and the signer refuses
 * anything that is not a whole 16-character date. */
static void signing_time_at_the_edges(void **state)
{
	(void)state;
	char d[SIGV4_DATE_LEN + 1];
	memset(d, 'X', sizeof(d));
	assert_int_equal(sigv4_format_date(946684800, d), 0); /* 2000-01-01T00:00:00Z */
	assert_string_equal(d, "20000101T000000Z");
	if (sizeof(time_t) > 4) {
		assert_int_equal(sigv4_format_date((time_t)7258118399, d), 0); /* 2199-12-31 */
		assert_string_equal(d, "21991231T235959Z");
	}
	const int64_t refused[] = {
	    946684799,     /* 1999-12-31T23:59:59Z */
	    7258118400,    /* 2200-01-01T00:00:00Z */
	    3093527980800, /* the year 99999 */
	    INT64_MAX / 2, /* gmtime_r cannot represent it */
	    -1,
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if ((int64_t)(time_t)refused[i] != refused[i])
			continue; /* a 32-bit time_t (armhf) cannot even hold it */
		memset(d, 'X', sizeof(d));
		assert_int_equal(sigv4_format_date((time_t)refused[i], d), -1);
		assert_string_equal(d, "");
	}
	/* the signer itself never reads past a short date */
	char hash[65];
	sigv4_sha256_hex("", 0, hash);
	struct sigv4_header h[] = {{"host", "h"}, {"x-amz-date", "2026"}};
	struct sigv4_request r = {"GET", "/", NULL, h, 2, hash};
	struct sigv4_credentials c = {AKID, SECRET, NULL, 1};
	struct sbuf authz;
	sbuf_init(&authz);
	sigv4_authorize(&r, &c, "eu-west-1", "iot", "2026", NULL, &authz);
	assert_int_equal(authz.len, 0);
	sbuf_clean_up(&authz);
}

int main(void)
{
	struct CMUnitTest tests[N_VECTORS + 3];
	for (size_t i = 0; i < N_VECTORS; i++)
		tests[i] = (struct CMUnitTest){VECTORS[i], published_case_matches_each_stage, NULL,
		                               NULL, (void *)VECTORS[i]};
	tests[N_VECTORS] =
	    (struct CMUnitTest)cmocka_unit_test(every_published_case_is_a_named_test);
	tests[N_VECTORS + 1] = (struct CMUnitTest)cmocka_unit_test(iot_jobs_data_scope_with_token);
	tests[N_VECTORS + 2] = (struct CMUnitTest)cmocka_unit_test(signing_time_at_the_edges);
	return _cmocka_run_group_tests("test_sigv4", tests, N_VECTORS + 3, NULL, NULL);
}
