/*
 * stats: what operators watch. Counters by outcome and code, retries,
 * gauges, and the latency distribution of the last interval; rendered as a
 * JSON document (for stats.topic) and as Prometheus text exposition (for
 * stats.file, read by node_exporter's textfile collector). Pure: the engine
 * feeds it and owns the I/O.
 */
#ifndef CMDGATE_STATS_H
#define CMDGATE_STATS_H

#include <stdint.h>
#include <time.h>

#include "sbuf.h"

#define STATS_CODES_MAX 48
#define STATS_BUCKETS   64

/* Settling calls of unknown fate (SPEC section 5, settler.h). */
struct stats_settle {
	uint64_t settling;                     /* gauge: requests settling now */
	uint64_t calls;                        /* settling calls made (finished) */
	uint64_t accepted, refused, abandoned; /* settlings ended, by outcome */
};

struct stats {
	uint64_t accepted;
	struct {
		char code[64];
		uint64_t n;
	} rejected[STATS_CODES_MAX];
	size_t n_codes;
	uint64_t rejected_other; /* codes past STATS_CODES_MAX */
	uint64_t retries;
	struct stats_settle settle;
	double latency_sum_s; /* since start */
	uint64_t latency_count;
	uint32_t window[STATS_BUCKETS]; /* log-scale latency histogram, this interval */
	uint64_t window_count;
	time_t started;
};

/* Follows (SPEC section 8), filled from follower_counters(). */
struct stats_follow {
	uint64_t active;      /* gauge: follows in progress */
	uint64_t polls;       /* GetCommandExecution calls */
	uint64_t poll_errors; /* ... answered with an error or not at all */
	uint64_t succeeded, failed, rejected, timed_out; /* finished by final status */
	uint64_t ended; /* ended early with a code (follow_max_s, 403, ...) */
};

/* The proxy (SPEC 9), filled from proxy_counts(). */
struct stats_proxy {
	uint64_t configured, connected;    /* gauges: proxied things, links up */
	uint64_t delivered;                /* executions forwarded to machines */
	uint64_t sent, accepted, rejected; /* answers */
	uint64_t waiting;                  /* gauge: answers not yet accepted or rejected */
};

/* What the engine knows at render time. */
struct stats_gauges {
	uint64_t queue, inflight, spool;
	uint64_t replies_waiting; /* in the outbox */
	double allowed_rate;      /* send-rate limit now; 0: none */
	uint64_t throttled;       /* calls answered 429 since start */
	int mqtt_connected;
	const char *cred_source; /* NULL when none */
	time_t cred_expiry;      /* 0: none or does not expire */
	time_t now;
	const char *client_id;
	const struct stats_follow *follow; /* NULL: no route follows; not rendered */
	const struct stats_proxy *proxy;   /* NULL: no proxy section; not rendered */
};

void stats_init(struct stats *s, time_t now);
void stats_record(struct stats *s, const char *code_or_null, uint64_t latency_us);
/* Requests answered rejected, all codes. */
uint64_t stats_rejected(const struct stats *s);
/* Latency quantile (0..1) of the current interval, in ms; 0 when empty. */
double stats_quantile_ms(const struct stats *s, double q);
void stats_render_json(const struct stats *s, const struct stats_gauges *g, struct sbuf *out);
void stats_render_prometheus(const struct stats *s, const struct stats_gauges *g, struct sbuf *out);
/* Start a new latency interval. */
void stats_new_interval(struct stats *s);

#endif
