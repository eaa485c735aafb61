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
#include "follower.h"
#include "mqtt.h"
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
	struct follower *follower; /* accepted requests of following routes go there */
	long follow_max_s;
	long follow_max; /* gateway.follow_max: executions followed at once */
};

/* Where the outbox hands replies over. */
struct answer_sink {
	struct mqtt *mqtt; /* NULL until connected the first time */
	struct spool *spool;
};

/* The outbox's publish function (ctx: struct answer_sink). A reply that
 * can never be published leaves the spool. */
enum cg_err answer_publish(void *ctx, const struct outbox_msg *m, char *err);

/* A follower_publish_fn over the outbox (ctx: struct outbox *). */
int answer_follow_publish(void *ctx, const char *topic, const char *payload, size_t len, int qos,
                          const void *corr, size_t corr_len, uint64_t cookie);

/* Each takes r (it must be on no list and hold no fairq slot), except a
 * request settling its call (r->settle.active, settler.h): answered, it stays
 * the caller's, slot and spool entry included. */
void answer_accepted(const struct answer_env *env, struct request *r, const char *execution_id);
void answer_gateway(const struct answer_env *env, struct request *r, enum gw_code c,
                    const char *msg);
void answer_aws(const struct answer_env *env, struct request *r, const struct awserr *ae);

#endif
