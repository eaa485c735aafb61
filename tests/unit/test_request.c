/* request: admission. A message becomes a queued request or an immediate
 * answer; tokens fail closed when the random source fails (RAND_bytes is
 * replaced here: the test binary's definition wins over libcrypto's). */
#include "test_util.h"

#include <openssl/rand.h>

#include "config.h"
#include "request.h"
#include "runtime.h"

static int rand_fails;

int RAND_bytes(unsigned char *buf, int num)
{
	if (rand_fails)
		return 0;
	for (int i = 0; i < num; i++)
		buf[i] = (unsigned char)(0x5A ^ i);
	return 1;
}

static struct config *cfg(void)
{
	char err[ERR_LEN];
	struct config *c =
	    config_load_text("aws: { region = \"eu-west-1\"; account = \"123456789012\"; };\n"
	                     "gateway: { queue_size = 2; };\n",
	                     "test.conf", err);
	assert_non_null(c);
	return c;
}

static struct message *msg(const char *topic, const char *payload)
{
	struct message *m = rt_calloc(1, sizeof(*m));
	m->topic = rt_strdup(topic);
	m->payload = rt_strdup(payload);
	m->len = strlen(payload);
	m->qos = 1;
	m->received_ms = 1000;
	m->received_wall_ms = 1700000000000;
	return m;
}

struct env {
	struct config *c;
	struct fairq *q;
	struct admit_env a;
};

static void env_init(struct env *e)
{
	e->c = cfg();
	e->q = fairq_new();
	struct admit_env a = {e->c, 1000, 0, 0, e->q};
	e->a = a;
}

static void env_clean_up(struct env *e)
{
	fairq_free(e->q);
	config_free(e->c);
}

static enum admit_verdict admit(struct env *e, const char *topic, const char *payload,
                                const struct resume *res, struct request **r, enum gw_code *code)
{
	char err[ERR_LEN] = "";
	return request_admit(&e->a, msg(topic, payload), res, r, code, err);
}

static void valid_request_is_queued_with_its_target_and_topics(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{\"id\":\"a\"}", NULL, &r, &code),
	                 ADMIT_QUEUE);
	assert_string_equal(r->thing, "pump-1");
	assert_string_equal(r->command, "open");
	assert_string_equal(r->target, "arn:aws:iot:eu-west-1:123456789012:thing/pump-1");
	assert_string_equal(r->reply_accepted, "commands/pump-1/open/start/accepted");
	assert_string_equal(r->reply_rejected, "commands/pump-1/open/start/rejected");
	assert_int_equal(r->deadline_ms, 1000 + 30000);
	assert_int_equal(strlen(r->tr.client_token), 64); /* derived from the id */
	request_free(r);
	env_clean_up(&e);
}

static void random_token_fails_closed(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	rand_fails = 1;
	/* no id, no clientToken: a random token is needed and cannot be had */
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", NULL, &r, &code),
	                 ADMIT_ANSWER);
	assert_int_equal(code, GW_INTERNAL_ERROR);
	assert_string_equal(r->tr.client_token, "");
	request_free(r);
	/* with an id the token is derived: no randomness needed */
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{\"id\":7}", NULL, &r, &code),
	                 ADMIT_QUEUE);
	request_free(r);
	rand_fails = 0;
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", NULL, &r, &code),
	                 ADMIT_QUEUE);
	assert_int_equal(strlen(r->tr.client_token), 36); /* a UUIDv4 */
	assert_int_equal(r->tr.client_token[14], '4');
	request_free(r);
	env_clean_up(&e);
}

static void answers_at_once(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{\"bogus\":1}", NULL, &r, &code),
	                 ADMIT_ANSWER);
	assert_int_equal(code, GW_INVALID_REQUEST);
	request_free(r);
	e.a.queued = 2; /* queue_size reached (requests and waiting replies) */
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", NULL, &r, &code),
	                 ADMIT_ANSWER);
	assert_int_equal(code, GW_OVERLOADED);
	assert_string_not_equal(r->tr.client_token, ""); /* Overloaded carries its token */
	request_free(r);
	e.a.queued = 0;
	e.a.draining = 1;
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", NULL, &r, &code),
	                 ADMIT_ANSWER);
	assert_int_equal(code, GW_UNAVAILABLE);
	request_free(r);
	env_clean_up(&e);
}

/* Without a route no Response Topic is confined, so none is honoured. */
static void no_route_is_dropped_even_with_a_response_topic(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	char err[ERR_LEN];
	assert_int_equal(admit(&e, "other/topic", "{}", NULL, &r, &code), ADMIT_DROP);
	request_free(r);
	struct message *m = msg("other/topic", "{}");
	m->response_topic = rt_strdup("dev/reply");
	assert_int_equal(request_admit(&e.a, m, NULL, &r, &code, err), ADMIT_DROP);
	request_free(r);
	env_clean_up(&e);
}

/* Admit a request of pump-1 carrying Response Topic rt. */
static enum admit_verdict admit_rt(struct env *e, const char *rt, struct request **r,
                                   enum gw_code *code)
{
	char err[ERR_LEN] = "";
	struct message *m = msg("commands/pump-1/open/start", "{\"id\":\"r-1\"}");
	m->response_topic = rt_strdup(rt);
	return request_admit(&e->a, m, NULL, r, code, err);
}

/* SPEC 4: a Response Topic outside the thing's own subtree, or one that a
 * request filter matches, makes the request Forbidden, answered on the
 * route's reply topic, with no token (no AWS call). */
static void response_topic_outside_the_things_subtree_is_forbidden(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	assert_int_equal(admit_rt(&e, "commands/pump-1/my/replies", &r, &code), ADMIT_QUEUE);
	assert_string_equal(r->reply_accepted, "commands/pump-1/my/replies");
	assert_string_equal(r->reply_rejected, "commands/pump-1/my/replies");
	request_free(r);
	const char *bad[] = {"commands/victim-9/open/start/accepted",
	                     "commands/victim-9/open/executions/x",
	                     "cmdgate/gw/status",
	                     "commands/pump-1/open/start", /* a request topic */
	                     "commands/pump-1/#",
	                     "",
	                     "x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(admit_rt(&e, bad[i], &r, &code), ADMIT_ANSWER);
		assert_int_equal(code, GW_FORBIDDEN);
		assert_string_equal(r->reply_rejected, "commands/pump-1/open/start/rejected");
		assert_string_equal(r->tr.client_token, "");
		assert_non_null(r->tr.id); /* the id is still echoed */
		request_free(r);
	}
	env_clean_up(&e);
}

/* SPEC 5: no thing holds more than gateway.per_thing_queue requests; the
 * others are still admitted, and a finished request frees its place. */
static void one_thing_cannot_fill_the_queue(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	config_free(e.c);
	char err[ERR_LEN];
	e.c = config_load_text("aws: { region = \"eu-west-1\"; account = \"123456789012\"; };\n"
	                       "gateway: { per_thing_queue = 2; };\n",
	                       "test.conf", err);
	assert_non_null(e.c);
	e.a.cfg = e.c;
	struct request *held[2], *r;
	enum gw_code code;
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    admit(&e, "commands/pump-1/open/start", "{}", NULL, &held[i], &code),
		    ADMIT_QUEUE);
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", NULL, &r, &code),
	                 ADMIT_ANSWER);
	assert_int_equal(code, GW_OVERLOADED);
	fairq_release(e.q, &r->fq); /* answered: as the engine does */
	request_free(r);
	assert_int_equal(admit(&e, "commands/pump-2/open/start", "{}", NULL, &r, &code),
	                 ADMIT_QUEUE);
	fairq_release(e.q, &r->fq);
	request_free(r);
	fairq_release(e.q, &held[0]->fq); /* one of pump-1's is answered */
	request_free(held[0]);
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", NULL, &r, &code),
	                 ADMIT_QUEUE);
	fairq_release(e.q, &r->fq);
	request_free(r);
	fairq_release(e.q, &held[1]->fq);
	request_free(held[1]);
	env_clean_up(&e);
}

static void resumed_request_keeps_token_and_deadline_and_skips_limits(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	struct resume res = {.seq = 42, .deadline_wall_ms = 1700000000000 + 5000};
	snprintf(res.token, sizeof(res.token), "tok-before-restart");
	e.a.queued = 99; /* it was admitted before the restart */
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{}", &res, &r, &code),
	                 ADMIT_QUEUE);
	assert_string_equal(r->tr.client_token, "tok-before-restart");
	assert_int_equal(r->spool_seq, 42);
	assert_int_equal(r->deadline_ms, 1000 + 5000);
	request_free(r);
	env_clean_up(&e);
}

static void spool_entry_round_trip(void **s)
{
	(void)s;
	struct env e;
	env_init(&e);
	struct request *r;
	enum gw_code code;
	assert_int_equal(admit(&e, "commands/pump-1/open/start", "{\"id\":\"z\"}", NULL, &r, &code),
	                 ADMIT_QUEUE);
	struct spool_entry se;
	request_spool_entry(r, 30000, &se);
	se.seq = 5;
	struct resume res;
	struct message *m = request_message_from_spool(&se, 1700000001000, 77, &res);
	assert_string_equal(m->topic, "commands/pump-1/open/start");
	assert_memory_equal(m->payload, "{\"id\":\"z\"}", m->len);
	assert_int_equal(res.seq, 5);
	assert_int_equal(res.deadline_wall_ms, 1700000000000 + 30000);
	assert_string_equal(res.token, r->tr.client_token);
	message_free(m);
	/* past its deadline: the deadline becomes now */
	m = request_message_from_spool(&se, 1700000099000, 77, &res);
	assert_int_equal(res.deadline_wall_ms, 1700000099000);
	message_free(m);
	request_free(r);
	env_clean_up(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(valid_request_is_queued_with_its_target_and_topics),
	    TEST(random_token_fails_closed),
	    TEST(answers_at_once),
	    TEST(no_route_is_dropped_even_with_a_response_topic),
	    TEST(response_topic_outside_the_things_subtree_is_forbidden),
	    TEST(one_thing_cannot_fill_the_queue),
	    TEST(resumed_request_keeps_token_and_deadline_and_skips_limits),
	    TEST(spool_entry_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
