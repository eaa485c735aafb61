/* outbox: replies wait in order while the client refuses or the window is
 * full, nothing is dropped, a reply given back is sent again first,
 * permanent refusals are not retried. */
#include "test_util.h"

#include "outbox.h"

struct client {
	int accept;    /* 0: "buffer full" */
	int bad_topic; /* refuse topic "bad" for good */
	char seen[32][32];
	uint64_t ids[32];
	int n;
};

static int publish(void *ctx, const struct outbox_msg *m, char *err)
{
	struct client *c = ctx;
	if (c->bad_topic && strcmp(m->out.topic, "bad") == 0) {
		cg_fail(err, CG_INVALID, "invalid topic");
		return MQTT_OUT_NEVER;
	}
	if (!c->accept) {
		cg_fail(err, CG_TRANSPORT, "buffer full");
		return MQTT_OUT_LATER;
	}
	snprintf(c->seen[c->n], sizeof(c->seen[0]), "%s=%.*s", m->out.topic,
	         (int)m->out.payload.len, m->out.payload.ptr);
	c->ids[c->n++] = m->id;
	return MQTT_OUT_TAKEN;
}

/* outbox_put of a QoS message (views of the arguments). */
static int put(struct outbox *o, const char *topic, const char *payload, size_t len, int qos,
               const void *corr, size_t corr_len, uint64_t cookie, char *err)
{
	struct mqtt_out m = {.topic = topic,
	                     .payload = view_of(payload, len),
	                     .qos = qos,
	                     .correlation = view_of(corr, corr_len)};
	return outbox_put(o, &m, cookie, err);
}

static void sent_at_once_and_confirmed_with_its_cookie(void **s)
{
	(void)s;
	struct client c = {.accept = 1};
	struct outbox o;
	outbox_init(&o, 4, publish, &c);
	char err[ERR_LEN];
	assert_int_equal(put(&o, "t", "a", 1, 1, NULL, 0, 7, err), MQTT_OUT_TAKEN);
	assert_int_equal(outbox_waiting(&o), 0);
	assert_int_equal(outbox_len(&o), 1); /* handed over, not yet confirmed */
	assert_string_equal(c.seen[0], "t=a");
	int known;
	assert_int_equal(outbox_confirm(&o, c.ids[0], 1, &known), 7);
	assert_true(known);
	assert_int_equal(outbox_len(&o), 0);
	assert_int_equal(outbox_confirm(&o, c.ids[0], 1, &known), 0); /* twice: unknown */
	assert_false(known);
	outbox_clean_up(&o);
}

static void waits_in_order_while_refused_then_flushes(void **s)
{
	(void)s;
	struct client c = {.accept = 0};
	struct outbox o;
	outbox_init(&o, 0, publish, &c);
	char err[ERR_LEN];
	char payload[8];
	for (int i = 0; i < 5; i++) {
		snprintf(payload, sizeof(payload), "%d", i);
		assert_int_equal(
		    put(&o, "t", payload, strlen(payload), 1, "cd", 2, (uint64_t)i, err),
		    MQTT_OUT_LATER);
	}
	assert_int_equal(outbox_waiting(&o), 5);
	assert_int_equal(outbox_flush(&o), 0); /* still refused: nothing lost */
	assert_int_equal(outbox_waiting(&o), 5);
	c.accept = 1;
	/* a new reply must not overtake the waiting ones */
	assert_int_equal(put(&o, "t", "5", 1, 1, NULL, 0, 5, err), MQTT_OUT_LATER);
	assert_int_equal(outbox_flush(&o), 6);
	assert_int_equal(outbox_waiting(&o), 0);
	for (int i = 0; i < 6; i++) {
		char want[32];
		snprintf(want, sizeof(want), "t=%d", i);
		assert_string_equal(c.seen[i], want);
	}
	outbox_clean_up(&o);
}

static void window_limits_what_is_handed_over(void **s)
{
	(void)s;
	struct client c = {.accept = 1};
	struct outbox o;
	outbox_init(&o, 2, publish, &c);
	char err[ERR_LEN];
	const char *p[5] = {"0", "1", "2", "3", "4"};
	for (int i = 0; i < 5; i++)
		put(&o, "t", p[i], 1, 1, NULL, 0, (uint64_t)(10 + i), err);
	assert_int_equal(c.n, 2); /* the window is full */
	assert_int_equal(outbox_waiting(&o), 3);
	assert_int_equal(outbox_flush(&o), 0);
	int known;
	/* confirmations may come in any order; each opens the window by one */
	assert_int_equal(outbox_confirm(&o, c.ids[1], 1, &known), 11);
	assert_int_equal(outbox_flush(&o), 1);
	assert_string_equal(c.seen[2], "t=2");
	assert_int_equal(outbox_confirm(&o, c.ids[0], 1, &known), 10);
	assert_int_equal(outbox_confirm(&o, c.ids[2], 1, &known), 12);
	assert_int_equal(outbox_flush(&o), 2);
	assert_int_equal(outbox_len(&o), 2);
	outbox_clean_up(&o);
}

static void given_back_goes_first_again(void **s)
{
	(void)s;
	struct client c = {.accept = 1};
	struct outbox o;
	outbox_init(&o, 1, publish, &c);
	char err[ERR_LEN];
	put(&o, "t", "a", 1, 1, NULL, 0, 1, err);
	put(&o, "t", "b", 1, 1, NULL, 0, 2, err);
	int known;
	/* the connection dropped before "a" reached the broker */
	assert_int_equal(outbox_confirm(&o, c.ids[0], 0, &known), 0);
	assert_true(known);
	assert_int_equal(outbox_waiting(&o), 2);
	assert_int_equal(outbox_flush(&o), 1);
	assert_string_equal(c.seen[1], "t=a"); /* "a" again, before "b" */
	assert_int_equal(outbox_confirm(&o, c.ids[1], 1, &known), 1);
	assert_int_equal(outbox_flush(&o), 1);
	assert_string_equal(c.seen[2], "t=b");
	outbox_clean_up(&o);
}

static void a_permanent_refusal_is_not_retried(void **s)
{
	(void)s;
	struct client c = {.accept = 1, .bad_topic = 1};
	struct outbox o;
	outbox_init(&o, 0, publish, &c);
	char err[ERR_LEN] = "";
	assert_int_equal(put(&o, "bad", "x", 1, 1, NULL, 0, 0, err), MQTT_OUT_NEVER);
	assert_non_null(strstr(err, "invalid topic"));
	assert_int_equal(o.refused, 1);
	assert_int_equal(outbox_len(&o), 0);
	/* behind waiting replies it is dropped by flush, the rest still go */
	c.accept = 0;
	put(&o, "t", "a", 1, 1, NULL, 0, 0, err);
	put(&o, "bad", "y", 1, 1, NULL, 0, 0, err);
	put(&o, "t", "b", 1, 1, NULL, 0, 0, err);
	c.accept = 1;
	assert_int_equal(outbox_flush(&o), 3);
	assert_int_equal(c.n, 2);
	assert_int_equal(o.refused, 2);
	outbox_clean_up(&o);
}

static void correlation_data_is_copied(void **s)
{
	(void)s;
	struct client c = {.accept = 0};
	struct outbox o;
	outbox_init(&o, 0, publish, &c);
	char err[ERR_LEN];
	char cd[3] = {1, 0, 2};
	put(&o, "t", "a", 1, 1, cd, sizeof(cd), 0, err);
	cd[0] = 9; /* the caller's buffer changes: the waiting copy must not */
	assert_memory_equal(o.waiting.head->out.correlation.ptr, "\x01\x00\x02", 3);
	assert_int_equal(o.waiting.head->out.correlation.len, 3);
	outbox_clean_up(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(sent_at_once_and_confirmed_with_its_cookie),
	    TEST(waits_in_order_while_refused_then_flushes),
	    TEST(window_limits_what_is_handed_over),
	    TEST(given_back_goes_first_again),
	    TEST(a_permanent_refusal_is_not_retried),
	    TEST(correlation_data_is_copied),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
