/* stats: counters, interval quantiles, JSON and Prometheus renderings. */
#include "test_util.h"

#include <jansson.h>

#include "stats.h"

static struct stats_gauges gauges(void)
{
	struct stats_gauges g = {.queue = 3,
	                         .inflight = 2,
	                         .spool = 0,
	                         .mqtt_connected = 1,
	                         .cred_source = "iot",
	                         .cred_expiry = 1795689916,
	                         .now = 1795686000,
	                         .client_id = "gw-1"};
	return g;
}

static void counters_add_up(void **s)
{
	(void)s;
	struct stats st;
	stats_init(&st, 1795685000);
	for (int i = 0; i < 7; i++)
		stats_record(&st, NULL, 1000);
	stats_record(&st, "InvalidRequest", 50);
	stats_record(&st, "ThrottlingException", 90000);
	stats_record(&st, "InvalidRequest", 50);
	st.retries = 4;
	st.settle.settling = 1;
	st.settle.calls = 5;
	st.settle.accepted = 2;
	st.settle.refused = 1;
	assert_int_equal(stats_rejected(&st), 3);
	struct stats_gauges g = gauges();
	struct sbuf b;
	sbuf_init(&b);
	stats_render_json(&st, &g, &b);
	json_error_t je;
	json_t *j = json_loads(b.data, 0, &je);
	if (!j)
		fail_msg("not JSON: %s (%s)", b.data, je.text);
	json_t *req = json_object_get(j, "requests");
	assert_int_equal(json_integer_value(json_object_get(req, "accepted")), 7);
	json_t *rej = json_object_get(req, "rejected");
	assert_int_equal(json_integer_value(json_object_get(rej, "InvalidRequest")), 2);
	assert_int_equal(json_integer_value(json_object_get(rej, "ThrottlingException")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "retries")), 4);
	json_t *settle = json_object_get(j, "settle");
	assert_int_equal(json_integer_value(json_object_get(settle, "settling")), 1);
	assert_int_equal(json_integer_value(json_object_get(settle, "calls")), 5);
	json_t *settled = json_object_get(settle, "settled");
	assert_int_equal(json_integer_value(json_object_get(settled, "accepted")), 2);
	assert_int_equal(json_integer_value(json_object_get(settled, "refused")), 1);
	assert_int_equal(json_integer_value(json_object_get(settled, "abandoned")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "queue")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "uptime_s")), 1000);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "credentials"), "source")), "iot");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "credentials"), "expires")),
	    "2026-11-26T10:45:16Z");
	json_decref(j);
	sbuf_clean_up(&b);
}

static void quantiles_are_close(void **s)
{
	(void)s;
	struct stats st;
	stats_init(&st, 0);
	assert_true(stats_quantile_ms(&st, 0.5) == 0);
	for (int i = 1; i <= 1000; i++)
		stats_record(&st, NULL, (uint64_t)i * 100); /* 0.1 .. 100 ms */
	double p50 = stats_quantile_ms(&st, 0.5), p99 = stats_quantile_ms(&st, 0.99);
	assert_true(p50 >= 50 && p50 <= 50 * 1.2);
	assert_true(p99 >= 99 && p99 <= 99 * 1.2);
	stats_new_interval(&st);
	assert_true(stats_quantile_ms(&st, 0.99) == 0);
	assert_int_equal(st.latency_count, 1000); /* the summary's count is cumulative */
}

static void prometheus_text(void **s)
{
	(void)s;
	struct stats st;
	stats_init(&st, 0);
	stats_record(&st, NULL, 2000);
	stats_record(&st, "Odd\"Code\\", 2000);
	st.settle.abandoned = 3;
	struct stats_gauges g = gauges();
	struct sbuf b;
	sbuf_init(&b);
	stats_render_prometheus(&st, &g, &b);
	assert_non_null(strstr(b.data, "# TYPE cmdgate_requests_total counter\n"));
	assert_non_null(
	    strstr(b.data, "cmdgate_requests_total{outcome=\"accepted\",code=\"\"} 1\n"));
	assert_non_null(strstr(
	    b.data, "cmdgate_requests_total{outcome=\"rejected\",code=\"Odd\\\"Code\\\\\"} 1\n"));
	assert_non_null(strstr(b.data, "cmdgate_request_latency_seconds_count 2\n"));
	assert_non_null(strstr(b.data, "cmdgate_inflight 2\n"));
	assert_non_null(strstr(b.data, "cmdgate_settled_total{outcome=\"abandoned\"} 3\n"));
	assert_non_null(strstr(b.data, "cmdgate_settled_total{outcome=\"accepted\"} 0\n"));
	assert_non_null(strstr(b.data,
	                       "cmdgate_credentials_expiry_timestamp_seconds{source=\"iot\"} "
	                       "1795689916\n"));
	sbuf_clean_up(&b);
}

static void follow_counters_rendered_when_given(void **s)
{
	(void)s;
	struct stats st;
	stats_init(&st, 0);
	struct stats_gauges g = gauges();
	struct sbuf b;
	sbuf_init(&b);
	stats_render_json(&st, &g, &b);
	assert_null(strstr(b.data, "follows"));
	sbuf_reset(&b);
	stats_render_prometheus(&st, &g, &b);
	assert_null(strstr(b.data, "follow"));
	struct stats_follow f = {.active = 3,
	                         .polls = 40,
	                         .poll_errors = 4,
	                         .succeeded = 9,
	                         .failed = 2,
	                         .rejected = 1,
	                         .timed_out = 1,
	                         .ended = 5};
	g.follow = &f;
	sbuf_reset(&b);
	stats_render_json(&st, &g, &b);
	json_error_t je;
	json_t *j = json_loads(b.data, 0, &je);
	if (!j)
		fail_msg("not JSON: %s (%s)", b.data, je.text);
	json_t *fo = json_object_get(j, "follows");
	assert_int_equal(json_integer_value(json_object_get(fo, "active")), 3);
	assert_int_equal(json_integer_value(json_object_get(fo, "polls")), 40);
	json_t *fin = json_object_get(fo, "finished");
	assert_int_equal(json_integer_value(json_object_get(fin, "SUCCEEDED")), 9);
	assert_int_equal(json_integer_value(json_object_get(fin, "ended")), 5);
	json_decref(j);
	sbuf_reset(&b);
	stats_render_prometheus(&st, &g, &b);
	assert_non_null(strstr(b.data, "cmdgate_follows_active 3\n"));
	assert_non_null(strstr(b.data, "cmdgate_follow_polls_total{result=\"ok\"} 36\n"));
	assert_non_null(strstr(b.data, "cmdgate_follow_polls_total{result=\"error\"} 4\n"));
	assert_non_null(strstr(b.data, "cmdgate_follows_finished_total{status=\"FAILED\"} 2\n"));
	sbuf_clean_up(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(counters_add_up),
	    TEST(quantiles_are_close),
	    TEST(prometheus_text),
	    TEST(follow_counters_rendered_when_given),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
