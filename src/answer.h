/*
 * answer: the one way out of the engine for a request. Renders its reply,
 * hands it to the outbox (which publishes it now or as soon as the MQTT
 * client can take it), writes the request's one log line, counts it, and
 * frees the request. A request resumed from the spool leaves the spool when
 * the broker has its reply (the outbox cookie), or at once when there is
 * nowhere to answer.
 */
#ifndef CMDGATE_ANSWER_H
#define CMDGATE_ANSWER_H

#include <stdint.h>

#include "awserr.h"
#include "outbox.h"
#include "reply.h"
#include "request.h"
#include "spool.h"
#include "stats.h"

struct answer_env {
	struct outbox *outbox;
	struct stats *stats;
	struct spool *spool; /* NULL without a spool */
	uint64_t now_ms;
};

/* Each takes r (it must be on no list and hold no fairq slot), except a
 * request settling its call (r->settle.active, settler.h): answered, it stays
 * the caller's, slot and spool entry included. */
/* then: NULL, or a message to queue right after the accepted reply (it may
 * point into r: it is queued before r is freed). */
void answer_accepted(const struct answer_env *env, struct request *r, const char *execution_id,
                     const struct mqtt_out *then);
void answer_gateway(const struct answer_env *env, struct request *r, enum gw_code c,
                    const char *msg);
void answer_aws(const struct answer_env *env, struct request *r, const struct awserr *ae);

#endif
