/*
 * follower: the edge that runs follows (SPEC section 8). It owns the set of
 * executions being followed, starts their GetCommandExecution polls through
 * the engine's struct aws_client (aws_call.h: the same signing, clock
 * offset and reading as starts; completions come back here, not through
 * the engine), decides after each like a start (attempt_decide: re-sign on
 * a clock skew, refresh an expired token), applies follow.c's rules to
 * each answer,
 * hands the messages to a publish callback (the engine's outbox), records
 * follows in the spool, and counts.
 *
 * Used from the engine thread only. The engine calls follower_run() each
 * loop turn; each follow's next poll, next offer or deadline, and the poll
 * rate's next token, are timers on the engine's heap, which the loop's wait
 * comes from. The rest of the time the follower is passive. Polls have their own rate limiter
 * (aws.follow_max_rate, adaptive on throttling) and their own in-flight
 * cap, so they never take a start's budget; due polls are served
 * round-robin across targets (the target served least recently first).
 *
 * Spool: a follow is a FOLLOW record written when it is added (durable at
 * the engine's next spool sync, so before the accepted reply's DONE), a
 * STATUS record per non-final status published, and DONE(seq) once the
 * broker has the final message: the publish callback gets the follow's
 * spool seq as cookie for the final message, and the engine records DONE
 * when that publish is delivered, exactly as for a reply.
 */
#ifndef CMDGATE_FOLLOWER_H
#define CMDGATE_FOLLOWER_H

#include <stddef.h>
#include <stdint.h>

#include "aws_call.h"
#include "config.h"
#include "err.h"
#include "follow.h"
#include "mqtt_out.h"
#include "spool.h"
#include "stats.h"
#include "timer.h"

struct follower_options {
	const char *control_url; /* config's control_url: "https://iot.{region}.amazonaws.com" */
	const char *region;
	double max_rate;         /* aws.follow_max_rate: polls/s, 0 = unlimited */
	long request_timeout_ms; /* aws.request_timeout_ms */
	size_t max_inflight;     /* polls in flight at once */
	long poll_ms;            /* gateway.follow_poll_ms: the polls' back-off step */
};

/* The options from a configuration (views into c). */
struct follower_options follower_options_of(const struct config *c);
/* Whether any route of c follows (stats render follows only then). */
int follower_configured(const struct config *c);

/*
 * Publish one message (not retained; its views live for the call only).
 * cookie: 0, or for the final message of a spooled follow its spool seq,
 * which the engine passes to spool_done() once the broker has the message.
 * Returns MQTT_OUT_TAKEN (queued is enough), MQTT_OUT_LATER (offered again
 * a second later) or MQTT_OUT_NEVER (logged; a final message still ends
 * the follow).
 */
typedef int (*follower_publish_fn)(void *ctx, const struct mqtt_out *m, uint64_t cookie);

/* What the engine knows of an accepted execution. Views: copied by add. */
struct follow_info {
	const char *thing, *command;
	const char *execution_id;
	const char *target_arn; /* as sent to StartCommandExecution */
	const char *topic;      /* the route's execution_topic, expanded */
	const char *id_json;    /* the request's id as JSON text; NULL: none */
	int qos;
	struct view correlation; /* MQTT 5 Correlation Data; ptr NULL: none */
};

struct follower_counters {
	uint64_t polls;       /* GetCommandExecution calls completed (any answer) */
	uint64_t poll_errors; /* ... that were not a 2xx */
	uint64_t messages;    /* messages handed to publish */
	/* finished follows by final status (index enum follow_status), and
	 * those that ended early with a code (index FOLLOW_NONE) */
	uint64_t finished[FOLLOW_UNKNOWN + 1];
};

struct follower;

/* None of the pointers is owned; aws, spool (NULL: no spool) and timers
 * (the loop's heap: the follower's timers only wake the loop) must outlive
 * the follower. */
struct follower *follower_new(const struct follower_options *o, struct aws_client *aws,
                              struct spool *spool, struct timer_heap *timers,
                              follower_publish_fn publish, void *ctx, uint64_t now_ms);
/* Aborts polls in flight (call before http_client_free) and frees. */
void follower_free(struct follower *f);
/* After a reload: endpoint, rate and limits for the next polls. */
void follower_reconfigure(struct follower *f, const struct follower_options *o);
/* A new credentials source (reload; the aws_client has it): forget the
 * derived key. */
void follower_credentials_changed(struct follower *f);

/*
 * Follow an accepted execution; started_ms (monotonic) is when the accepted
 * reply went out, max_s gateway.follow_max_s. With a spool, the FOLLOW
 * record is queued (the caller's next spool flush makes it durable).
 * CG_INVALID when the execution id is not one AWS would give. An
 * execution already followed is not followed twice (CG_OK, nothing added):
 * a device repeating its request with the same id gets one set of messages.
 */
enum cg_err follower_add(struct follower *f, const struct follow_info *in, uint64_t started_ms,
                         long max_s, char *err);
/* A spool_follow_fn: resume a follow found by spool_recover() (ctx: the
 * follower). Its times are carried over from the wall clock; a follow whose
 * follow_max_s passed while the gateway was down ends at the next run with
 * its final message. */
void follower_resume(const struct spool_follow *rec, void *ctx);

/* Publish what is pending, end follows past their deadline, start due
 * polls within the rate and the in-flight cap. */
void follower_run(struct follower *f, uint64_t now);

/*
 * Stopping: polls in flight are aborted. A spooled follow stays in the
 * spool and is resumed at the next start; any other one gets its final
 * message now ({"code":"Unavailable","retryable":true}).
 */
void follower_shutdown(struct follower *f);

size_t follower_active(const struct follower *f); /* follows in progress (gauge) */
const struct follower_counters *follower_counters(const struct follower *f);
/* The counters as stats renders them (g.follow = &out). */
void follower_stats(const struct follower *f, struct stats_follow *out);

#endif
