/*
 * engine_priv: what the engine's files share: the engine's state and the
 * calls between them. Nothing outside the engine includes it.
 *
 *   engine.c        the loop: each turn's steps, reload, start and stop
 *   engine_admit.c  the way in: admission, the spool's side of it
 *   engine_calls.c  calls to AWS: start, read, retry, deadlines, the way out
 *   engine_stop.c   stopping: the drain, what stays in the spool
 *
 * Engine thread only (see engine.h).
 */
#ifndef CMDGATE_ENGINE_PRIV_H
#define CMDGATE_ENGINE_PRIV_H

#include <stdint.h>

#include "answer.h"
#include "aws_call.h"
#include "config.h"
#include "credentials.h"
#include "fairq.h"
#include "follower.h"
#include "http.h"
#include "inbox.h"
#include "mqtt.h"
#include "outbox.h"
#include "proxy.h"
#include "ratectl.h"
#include "reply.h"
#include "request.h"
#include "settler.h"
#include "sigv4.h"
#include "spool.h"
#include "stats.h"
#include "timer.h"

struct engine {
	struct config *cfg;
	/* the HTTP client, the credentials and the one clock offset, shared by
	 * starts and the follower's polls */
	struct aws_client aws;
	struct mqtt *mqtt;
	struct inbox *inbox;
	struct fairq *waiting; /* RS_QUEUED: per target, round-robin */
	struct reqlist flight; /* RS_FLIGHT: calls on the wire */
	struct reqlist held;   /* RS_HELD: to be called again at next_try_ms */
	struct outbox outbox;
	struct ratectl rate; /* the adaptive send rate (account quota) */
	int draining;
	uint64_t drain_until_ms;
	struct stats stats;
	struct spool *spool;          /* NULL without gateway.spool_dir */
	struct aws_endpoint start_ep; /* StartCommandExecution: aws.endpoint */
	struct follower *follower;
	struct stats_follow follow_stats;
	/* every time the loop waits for: request deadlines and retries, follow
	 * polls, the send rates' next token, the outbox's next look */
	struct timer_heap timers;
	struct timer_task rate_wake, outbox_wake;
	struct settle_env settle; /* calls of unknown fate (settler.h) */
	struct proxy *proxy;      /* NULL without a proxy section (SPEC 9) */
};

/* StartCommandExecution (the IoT Jobs data plane) */
#define START_SERVICE "iot-jobs-data"
#define START_PATH    "/command-executions"

/* engine_calls.c */
/* r is leaving: its target's next may start, its timer and its call go. */
void engine_release(struct engine *e, struct request *r);
/* r's settling (settler.h) ends with o (d: the last decision, or NULL); r
 * is released and freed. */
void engine_end_settling(struct engine *e, struct request *r, enum settle_outcome o,
                         const struct attempt_decision *d);
/* Answer r (taken) with a gateway code or AWS's error. */
void engine_finish_gateway(struct engine *e, struct request *r, enum gw_code c, const char *msg);
void engine_finish_aws(struct engine *e, struct request *r, const struct awserr *ae);
/* Queue an admitted request in its target's order, its deadline armed. */
void engine_queue(struct engine *e, struct request *r);
/* Start what may start (held requests whose retry is due, then the waiting
 * ones round-robin) within max_inflight and the send rate. */
void engine_start_ready(struct engine *e, uint64_t now);
/* The completion of a request's call (ctx: the engine). */
void engine_on_done(struct aws_call *call, void *ctx);

/* engine_admit.c */
/* Admit what the inbox holds. late: the MQTT client has stopped. */
void engine_admit_inbox(struct engine *e, int late);
/* Record DONE for delivered replies and make this turn's ADDs durable. */
void engine_sync_spool(struct engine *e);
/* A spool_entry_fn (ctx: the engine): a live entry admitted again. */
void engine_resume_entry(const struct spool_entry *s, void *ctx);

/* engine_stop.c */
/* SIGTERM: stop taking work, keep or refuse what waits. */
void engine_begin_drain(struct engine *e, uint64_t now);
/* The drain is over: abort calls still in flight. */
void engine_abort_flight(struct engine *e);

#endif
