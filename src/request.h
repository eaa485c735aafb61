/*
 * request: one device request inside the engine, and its admission: the
 * route that matches its topic, the validated and translated call body,
 * the reply topics, the deadline. Admission decides; it publishes nothing
 * and touches no list: the engine queues or answers what it returns.
 */
#ifndef CMDGATE_REQUEST_H
#define CMDGATE_REQUEST_H

#include <stdint.h>

#include "attempt.h"
#include "config.h"
#include "fairq.h"
#include "message.h"
#include "reply.h"
#include "settle.h"
#include "spool_format.h"
#include "timer.h"
#include "translate.h"

enum req_state { RS_QUEUED, RS_FLIGHT, RS_HELD };

struct aws_call; /* aws_call.h: the engine's handle for a request's calls */

/* What a request resumed from the spool keeps from before the restart. */
struct resume {
	uint64_t seq;             /* its spool entry */
	int64_t deadline_wall_ms; /* the original deadline */
	char token[CLIENT_TOKEN_MAX + 1];
	int answered; /* its reply was delivered; resumed only to settle its call */
};

/* fq is the first member: a struct fq_item * from the fair queue is the
 * request itself. */
struct request {
	struct fq_item fq;           /* its place in its target's order; a popped request
	                                keeps its target's slot until it is answered */
	struct request *next, *prev; /* the engine's flight or held list */
	enum req_state state;
	struct message *msg; /* owned */
	uint64_t spool_seq;  /* 0: not in the spool */
	char thing[130], command[66];
	char *target;       /* owned: the target ARN, the key of its order */
	char *follow_topic; /* owned: execution_topic but {execution}; NULL: not followed */
	char *reply_accepted, *reply_rejected; /* owned topics, NULL: nowhere */
	struct translated tr;
	uint64_t deadline_ms, next_try_ms; /* monotonic */
	/* on the engine's timers while waiting or held: at the deadline, or at
	 * next_try_ms when that is earlier (then at the deadline again) */
	struct timer_task wake;
	uint64_t sent_ms; /* when its last call started */
	struct attempt_state at;
	struct settle_state settle; /* whether its call's fate is unknown (settle.h) */
	struct aws_call *call;      /* NULL until its first call; the engine frees it */
};

/* The engine's lists of started requests (flight, held). */
struct reqlist {
	struct request *head, *tail;
	size_t n;
};

void reqlist_push(struct reqlist *l, struct request *r);
void reqlist_remove(struct reqlist *l, struct request *r);

enum admit_verdict {
	ADMIT_QUEUE,  /* valid: queue it */
	ADMIT_ANSWER, /* answer at once with code and err */
	ADMIT_DROP,   /* no route and nowhere to answer: log and free */
};

struct admit_env {
	const struct config *cfg;
	uint64_t now_ms;
	int draining;
	size_t queued;         /* requests and replies waiting now */
	struct fairq *buckets; /* per-thing rate buckets */
};

/*
 * Build a request from m (taken). res is NULL for a new arrival. On
 * ADMIT_ANSWER, *code and err say why; the request is still returned so it
 * can be answered. On ADMIT_DROP the request is returned for freeing.
 * Fails closed: when no random token can be made the answer is
 * InternalError.
 */
enum admit_verdict request_admit(const struct admit_env *env, struct message *m,
                                 const struct resume *res, struct request **out, enum gw_code *code,
                                 char *err);
void request_free(struct request *r);

/* The spool ADD record of r (views into r; seq is set by spool_add). */
void request_spool_entry(const struct request *r, long deadline_ms, struct spool_entry *out);
/* A message and its resume data from a live spool entry, as received now
 * (a deadline already past becomes now: the request is answered Expired). */
struct message *request_message_from_spool(const struct spool_entry *s, int64_t now_wall_ms,
                                           uint64_t now_ms, struct resume *res);

#endif
