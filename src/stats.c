/*
 * stats: latencies go into a log-scale histogram (4 buckets per power of
 * two from 16 µs) so quantiles cost no memory per request; the error of a
 * quantile is under 20 %, plenty for an operator's dashboard.
 */
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsonw.h"

void stats_init(struct stats *s, time_t now)
{
	memset(s, 0, sizeof(*s));
	s->started = now;
}

static unsigned bucket_of(uint64_t us)
{
	if (us < 16)
		return 0;
	double b = (log2((double)us) - 4.0) * 4.0 + 1.0;
	return b >= STATS_BUCKETS - 1 ? STATS_BUCKETS - 1 : (unsigned)b;
}

/* Upper bound of bucket i in microseconds. */
static double bucket_top_us(unsigned i)
{
	return i == 0 ? 16.0 : pow(2.0, 4.0 + (double)i / 4.0);
}

void stats_record(struct stats *s, const char *code, uint64_t latency_us)
{
	if (!code) {
		s->accepted++;
	} else {
		size_t i = 0;
		while (i < s->n_codes && strcmp(s->rejected[i].code, code) != 0)
			i++;
		if (i == s->n_codes && s->n_codes < STATS_CODES_MAX) {
			snprintf(s->rejected[i].code, sizeof(s->rejected[i].code), "%s", code);
			s->n_codes++;
		}
		if (i < s->n_codes)
			s->rejected[i].n++;
		else
			s->rejected_other++;
	}
	s->latency_sum_s += (double)latency_us / 1e6;
	s->latency_count++;
	s->window[bucket_of(latency_us)]++;
	s->window_count++;
}

uint64_t stats_rejected(const struct stats *s)
{
	uint64_t n = s->rejected_other;
	for (size_t i = 0; i < s->n_codes; i++)
		n += s->rejected[i].n;
	return n;
}

double stats_quantile_ms(const struct stats *s, double q)
{
	if (!s->window_count)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)s->window_count);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < STATS_BUCKETS; i++) {
		seen += s->window[i];
		if (seen >= rank)
			return bucket_top_us(i) / 1000.0;
	}
	return bucket_top_us(STATS_BUCKETS - 1) / 1000.0;
}

void stats_new_interval(struct stats *s)
{
	memset(s->window, 0, sizeof(s->window));
	s->window_count = 0;
}

static void num(struct sbuf *b, const char *key, double v, int first)
{
	char t[48];
	jsonw_key(b, key, first);
	if (v == floor(v) && fabs(v) < 1e15)
		snprintf(t, sizeof(t), "%.0f", v);
	else
		snprintf(t, sizeof(t), "%.3f", v);
	sbuf_puts(b, t);
}

static void render_follow_json(const struct stats_follow *f, struct sbuf *out)
{
	jsonw_key(out, "follows", 0);
	sbuf_putc(out, '{');
	num(out, "active", (double)f->active, 1);
	num(out, "polls", (double)f->polls, 0);
	num(out, "poll_errors", (double)f->poll_errors, 0);
	jsonw_key(out, "finished", 0);
	sbuf_putc(out, '{');
	num(out, "SUCCEEDED", (double)f->succeeded, 1);
	num(out, "FAILED", (double)f->failed, 0);
	num(out, "REJECTED", (double)f->rejected, 0);
	num(out, "TIMED_OUT", (double)f->timed_out, 0);
	num(out, "ended", (double)f->ended, 0);
	sbuf_puts(out, "}}");
}

static void render_settle_json(const struct stats_settle *st, struct sbuf *out)
{
	jsonw_key(out, "settle", 0);
	sbuf_putc(out, '{');
	num(out, "settling", (double)st->settling, 1);
	num(out, "calls", (double)st->calls, 0);
	jsonw_key(out, "settled", 0);
	sbuf_putc(out, '{');
	num(out, "accepted", (double)st->accepted, 1);
	num(out, "refused", (double)st->refused, 0);
	num(out, "abandoned", (double)st->abandoned, 0);
	sbuf_puts(out, "}}");
}

static void render_proxy_json(const struct stats_proxy *p, struct sbuf *out)
{
	jsonw_key(out, "proxy", 0);
	sbuf_putc(out, '{');
	num(out, "things_configured", (double)p->configured, 1);
	num(out, "things_connected", (double)p->connected, 0);
	num(out, "executions_delivered", (double)p->delivered, 0);
	jsonw_key(out, "answers", 0);
	sbuf_putc(out, '{');
	num(out, "sent", (double)p->sent, 1);
	num(out, "accepted", (double)p->accepted, 0);
	num(out, "rejected", (double)p->rejected, 0);
	sbuf_putc(out, '}');
	num(out, "answers_waiting", (double)p->waiting, 0);
	sbuf_putc(out, '}');
}

void stats_render_json(const struct stats *s, const struct stats_gauges *g, struct sbuf *out)
{
	char when[32];
	struct tm tm;
	gmtime_r(&g->now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	sbuf_putc(out, '{');
	jsonw_key(out, "time", 1);
	jsonw_string(out, when, strlen(when));
	jsonw_key(out, "client_id", 0);
	jsonw_string(out, g->client_id, strlen(g->client_id));
	num(out, "uptime_s", (double)(g->now - s->started), 0);
	jsonw_key(out, "requests", 0);
	sbuf_putc(out, '{');
	num(out, "accepted", (double)s->accepted, 1);
	jsonw_key(out, "rejected", 0);
	sbuf_putc(out, '{');
	for (size_t i = 0; i < s->n_codes; i++)
		num(out, s->rejected[i].code, (double)s->rejected[i].n, i == 0);
	if (s->rejected_other)
		num(out, "other", (double)s->rejected_other, s->n_codes == 0);
	sbuf_puts(out, "}}");
	num(out, "retries", (double)s->retries, 0);
	render_settle_json(&s->settle, out);
	num(out, "queue", (double)g->queue, 0);
	num(out, "inflight", (double)g->inflight, 0);
	num(out, "spool", (double)g->spool, 0);
	num(out, "replies_waiting", (double)g->replies_waiting, 0);
	num(out, "throttled", (double)g->throttled, 0);
	num(out, "allowed_rate", g->allowed_rate, 0);
	jsonw_key(out, "latency_ms", 0);
	sbuf_putc(out, '{');
	num(out, "p50", stats_quantile_ms(s, 0.5), 1);
	num(out, "p90", stats_quantile_ms(s, 0.9), 0);
	num(out, "p99", stats_quantile_ms(s, 0.99), 0);
	num(out, "count", (double)s->window_count, 0);
	sbuf_putc(out, '}');
	jsonw_key(out, "mqtt", 0);
	sbuf_puts(out, g->mqtt_connected ? "\"connected\"" : "\"disconnected\"");
	jsonw_key(out, "credentials", 0);
	sbuf_putc(out, '{');
	jsonw_key(out, "source", 1);
	if (g->cred_source)
		jsonw_string(out, g->cred_source, strlen(g->cred_source));
	else
		sbuf_puts(out, "null");
	jsonw_key(out, "expires", 0);
	if (g->cred_expiry) {
		gmtime_r(&g->cred_expiry, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		jsonw_string(out, when, strlen(when));
	} else {
		sbuf_puts(out, "null");
	}
	sbuf_putc(out, '}');
	if (g->follow)
		render_follow_json(g->follow, out);
	if (g->proxy)
		render_proxy_json(g->proxy, out);
	sbuf_putc(out, '}');
}

/* A label value with Prometheus' escapes (backslash, quote, newline). */
static void label(struct sbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			sbuf_putc(b, '\\');
		if (*v == '\n') {
			sbuf_puts(b, "\\n");
			continue;
		}
		sbuf_putc(b, *v);
	}
}

static void metric_head(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_follow_prometheus(const struct stats_follow *f, struct sbuf *out)
{
	metric_head(out, "cmdgate_follows_active", "gauge", "Executions being followed.");
	sbuf_printf(out, "cmdgate_follows_active %llu\n", (unsigned long long)f->active);
	metric_head(out, "cmdgate_follow_polls_total", "counter",
	            "GetCommandExecution calls, by result.");
	sbuf_printf(out, "cmdgate_follow_polls_total{result=\"ok\"} %llu\n",
	            (unsigned long long)(f->polls -
	                                 (f->poll_errors < f->polls ? f->poll_errors : f->polls)));
	sbuf_printf(out, "cmdgate_follow_polls_total{result=\"error\"} %llu\n",
	            (unsigned long long)f->poll_errors);
	metric_head(out, "cmdgate_follows_finished_total", "counter",
	            "Follows finished, by final status (ended: stopped early with a code).");
	const char *names[] = {"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "ended"};
	uint64_t v[] = {f->succeeded, f->failed, f->rejected, f->timed_out, f->ended};
	for (int i = 0; i < 5; i++)
		sbuf_printf(out, "cmdgate_follows_finished_total{status=\"%s\"} %llu\n", names[i],
		            (unsigned long long)v[i]);
}

static void render_settle_prometheus(const struct stats_settle *st, struct sbuf *out)
{
	metric_head(out, "cmdgate_settling", "gauge",
	            "Answered requests holding their target until their call's fate is known.");
	sbuf_printf(out, "cmdgate_settling %llu\n", (unsigned long long)st->settling);
	metric_head(out, "cmdgate_settle_calls_total", "counter",
	            "Calls repeated to settle a call of unknown fate.");
	sbuf_printf(out, "cmdgate_settle_calls_total %llu\n", (unsigned long long)st->calls);
	metric_head(out, "cmdgate_settled_total", "counter",
	            "Settlings ended, by outcome (accepted: the execution exists).");
	const char *names[] = {"accepted", "refused", "abandoned"};
	uint64_t v[] = {st->accepted, st->refused, st->abandoned};
	for (int i = 0; i < 3; i++)
		sbuf_printf(out, "cmdgate_settled_total{outcome=\"%s\"} %llu\n", names[i],
		            (unsigned long long)v[i]);
}

static void render_proxy_prometheus(const struct stats_proxy *p, struct sbuf *out)
{
	metric_head(out, "cmdgate_proxy_things_configured", "gauge",
	            "LAN machines cmdgate stands in for on AWS IoT Core.");
	sbuf_printf(out, "cmdgate_proxy_things_configured %llu\n",
	            (unsigned long long)p->configured);
	metric_head(out, "cmdgate_proxy_things_connected", "gauge",
	            "Proxied things whose AWS IoT Core link is up.");
	sbuf_printf(out, "cmdgate_proxy_things_connected %llu\n", (unsigned long long)p->connected);
	metric_head(out, "cmdgate_proxy_executions_delivered_total", "counter",
	            "Executions forwarded from AWS to the machines.");
	sbuf_printf(out, "cmdgate_proxy_executions_delivered_total %llu\n",
	            (unsigned long long)p->delivered);
	metric_head(out, "cmdgate_proxy_answers_total", "counter",
	            "Machines' answers: sent to AWS, accepted, rejected (by AWS or locally).");
	const char *names[] = {"sent", "accepted", "rejected"};
	uint64_t v[] = {p->sent, p->accepted, p->rejected};
	for (int i = 0; i < 3; i++)
		sbuf_printf(out, "cmdgate_proxy_answers_total{outcome=\"%s\"} %llu\n", names[i],
		            (unsigned long long)v[i]);
	metric_head(out, "cmdgate_proxy_answers_waiting", "gauge",
	            "Answers taken from machines, not yet accepted or rejected by AWS.");
	sbuf_printf(out, "cmdgate_proxy_answers_waiting %llu\n", (unsigned long long)p->waiting);
}

void stats_render_prometheus(const struct stats *s, const struct stats_gauges *g, struct sbuf *out)
{
	metric_head(out, "cmdgate_requests_total", "counter",
	            "Requests answered, by outcome and reply code.");
	sbuf_printf(out, "cmdgate_requests_total{outcome=\"accepted\",code=\"\"} %llu\n",
	            (unsigned long long)s->accepted);
	for (size_t i = 0; i < s->n_codes; i++) {
		sbuf_puts(out, "cmdgate_requests_total{outcome=\"rejected\",code=\"");
		label(out, s->rejected[i].code);
		sbuf_printf(out, "\"} %llu\n", (unsigned long long)s->rejected[i].n);
	}
	if (s->rejected_other)
		sbuf_printf(out,
		            "cmdgate_requests_total{outcome=\"rejected\",code=\"other\"} %llu\n",
		            (unsigned long long)s->rejected_other);
	metric_head(out, "cmdgate_retries_total", "counter",
	            "Calls to AWS repeated after a "
	            "retryable failure.");
	sbuf_printf(out, "cmdgate_retries_total %llu\n", (unsigned long long)s->retries);
	render_settle_prometheus(&s->settle, out);
	metric_head(out, "cmdgate_queue_depth", "gauge", "Requests waiting for a call slot.");
	sbuf_printf(out, "cmdgate_queue_depth %llu\n", (unsigned long long)g->queue);
	metric_head(out, "cmdgate_inflight", "gauge", "Calls to AWS in flight.");
	sbuf_printf(out, "cmdgate_inflight %llu\n", (unsigned long long)g->inflight);
	metric_head(out, "cmdgate_spool_entries", "gauge", "Requests held in the spool.");
	sbuf_printf(out, "cmdgate_spool_entries %llu\n", (unsigned long long)g->spool);
	metric_head(out, "cmdgate_replies_waiting", "gauge",
	            "Replies waiting for the MQTT client to take them.");
	sbuf_printf(out, "cmdgate_replies_waiting %llu\n", (unsigned long long)g->replies_waiting);
	metric_head(out, "cmdgate_throttled_total", "counter",
	            "Calls to AWS answered 429 (throttled).");
	sbuf_printf(out, "cmdgate_throttled_total %llu\n", (unsigned long long)g->throttled);
	metric_head(out, "cmdgate_allowed_rate", "gauge",
	            "Calls per second the send-rate controller allows now; 0: no limit.");
	sbuf_printf(out, "cmdgate_allowed_rate %.3f\n", g->allowed_rate);
	metric_head(out, "cmdgate_mqtt_connected", "gauge", "1 when connected to the broker.");
	sbuf_printf(out, "cmdgate_mqtt_connected %d\n", g->mqtt_connected ? 1 : 0);
	metric_head(out, "cmdgate_request_latency_seconds", "summary",
	            "Request to reply latency; quantiles over the last interval.");
	static const double qs[] = {0.5, 0.9, 0.99};
	for (int i = 0; i < 3; i++)
		sbuf_printf(out, "cmdgate_request_latency_seconds{quantile=\"%g\"} %.6f\n", qs[i],
		            stats_quantile_ms(s, qs[i]) / 1000.0);
	sbuf_printf(out, "cmdgate_request_latency_seconds_sum %.6f\n", s->latency_sum_s);
	sbuf_printf(out, "cmdgate_request_latency_seconds_count %llu\n",
	            (unsigned long long)s->latency_count);
	metric_head(out, "cmdgate_credentials_expiry_timestamp_seconds", "gauge",
	            "When the AWS credentials in use expire (0: never or none).");
	sbuf_puts(out, "cmdgate_credentials_expiry_timestamp_seconds{source=\"");
	label(out, g->cred_source ? g->cred_source : "none");
	sbuf_printf(out, "\"} %lld\n", (long long)g->cred_expiry);
	if (g->follow)
		render_follow_prometheus(g->follow, out);
	if (g->proxy)
		render_proxy_prometheus(g->proxy, out);
}
