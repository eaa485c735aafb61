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

#endif
