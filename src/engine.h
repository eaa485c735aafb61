/*
 * engine: the one thread that owns requests. It takes what the MQTT side
 * hands over, validates and queues it, signs and starts HTTP calls on the
 * libcurl multi handle (up to gateway.max_inflight at once), retries what
 * may be retried, and publishes exactly one reply per request.
 *
 * Other threads touch the engine only through its inbox (inbox.h): Paho's
 * threads hand over messages and delivery outcomes, signal handlers record
 * stop and reload; each wakes the loop through the inbox's eventfd.
 */
#ifndef CMDGATE_ENGINE_H
#define CMDGATE_ENGINE_H

#include "config.h"
#include "mqtt.h"

struct engine;

/* Takes ownership of cfg. */
struct engine *engine_new(struct config *cfg, char *err);
/* Connect, subscribe, run until stopped. Returns the process exit status. */
int engine_run(struct engine *e);
void engine_free(struct engine *e);

#endif
