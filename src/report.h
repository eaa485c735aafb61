/*
 * report: what the engine tells operators, rendered from its counters and
 * a snapshot of its gauges: the stats JSON on stats.topic (retained), the
 * Prometheus textfile (stats.file, replaced atomically) and the systemd
 * STATUS= line.
 */
#ifndef CMDGATE_REPORT_H
#define CMDGATE_REPORT_H

#include "config.h"
#include "credentials.h"
#include "mqtt.h"
#include "stats.h"

/* Publish and write the stats (whichever are configured), then start a new
 * latency interval. g's cred and time fields are filled here. */
void report_stats(const struct config *c, struct mqtt *m, struct cred_provider *creds,
                  struct stats *s, struct stats_gauges *g);
/* STATUS= for systemd. */
void report_status(const struct stats *s, const struct stats_gauges *g);

/* When the periodic reports are due (monotonic ms). */
struct report_clock {
	uint64_t watchdog_ms; /* 0: no watchdog */
	uint64_t last_watchdog_ms, last_status_ms, last_stats_ms;
};

void report_clock_init(struct report_clock *rc, uint64_t watchdog_ms, uint64_t now_ms);
/* WATCHDOG=1, STATUS= (every 2 s) and the stats (every stats.interval) when
 * due. Returns 1 when STATUS was sent (a moment for housekeeping). */
int report_tick(struct report_clock *rc, uint64_t now_ms, const struct config *c, struct mqtt *m,
                struct cred_provider *creds, struct stats *s, struct stats_gauges *g);

#endif
