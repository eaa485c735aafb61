/*
 * engine: the one thread that owns requests. It takes what the MQTT side
 * hands over, validates and queues it, signs and starts HTTP calls on the
 * libcurl multi handle (up to gateway.max_inflight at once), retries what
 * may be retried, and publishes exactly one reply per request.
 *
 * Other threads touch the engine only through engine_submit() (Paho's
 * callback thread) and the signal flags; both wake the loop via an eventfd.
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
