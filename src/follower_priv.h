/*
 * follower_priv: what follower_set.c (the set of follows) and
 * follower_run.c (polls and messages, each loop turn), the two halves of
 * follower.h, share. Nothing else includes it.
 *
 * Follows live in one doubly linked list (a follower holds a few thousand
 * at most: one per execution started in the last follow_max_s), scanned
 * per run; targets are a small list with reference counts, each
 * remembering when one of its follows was last polled, which is what makes
 * the choice among due polls round-robin across targets.
 */
#ifndef CMDGATE_FOLLOWER_PRIV_H
#define CMDGATE_FOLLOWER_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "follow.h"
#include "attempt.h"
#include "aws_call.h"
#include "follower.h"
#include "http.h"
#include "ratectl.h"
#include "sbuf.h"
#include "sigv4.h"
#include "timer.h"

/* GetCommandExecution: the IoT control plane */
#define FOLLOW_SERVICE "iot"

struct target {
	struct target *next;
	char *arn;
	size_t refs;
	uint64_t last_ms; /* last poll started for one of its follows */
};

struct follow {
	struct follow *next, *prev;
	struct target *target;
	char *thing, *command, *execution_id, *topic, *id_json; /* owned */
	char *corr; /* owned; NULL: no Correlation Data */
	size_t corr_len;
	int qos;
	char *path, *query; /* path without the endpoint's prefix; canonical query */
	struct follow_state st;
	uint64_t due_ms, sent_ms;
	unsigned polls;         /* GetCommandExecution calls made and finished, for the log line */
	struct timer_task wake; /* on the loop's timers while not in flight */
	int in_flight;
	struct aws_call *call;   /* its polls */
	struct attempt_state at; /* re-sign and refresh once each between answers */
	uint64_t spool_seq;      /* 0: not spooled */
	/* a message publish refused, offered again; final: the follow ends after it */
	struct sbuf pending;
	int pending_final;
	enum follow_status pending_status;
	const char *end_label; /* for the log line */
};

struct follower {
	struct follower_options o; /* control_url and region: in ep */
	struct aws_endpoint ep;    /* aws.control_endpoint, service "iot" */
	struct aws_client *aws;    /* the engine's: HTTP, credentials, clock offset */
	struct spool *spool;
	follower_publish_fn publish;
	void *ctx;
	struct follow *head, *tail;
	size_t n, inflight;
	struct target *targets;
	struct ratectl rate; /* the same controller as for starts, its own budget */
	struct timer_heap *timers;
	struct timer_task rate_wake; /* the rate's next token */
	struct follower_counters counters;
};

/* follower_set.c */
/* Unlink w, abort its poll, free it. */
void follower_free_follow(struct follower *f, struct follow *w);

/* follower_run.c */
/* The completion of w's poll (ctx: the follower; owner: the follow). */
void follower_on_poll_done(struct aws_call *call, void *ctx);
/* Put w on the loop's timers for what it waits for next. */
void follower_schedule(struct follower *f, struct follow *w);
/* w's next poll (or next offer of a pending message) at due_ms. */
void follower_set_due(struct follower *f, struct follow *w, uint64_t due_ms);

#endif
