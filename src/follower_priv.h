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
#include "follow_poll.h"
#include "follower.h"
#include "http.h"
#include "ratectl.h"
#include "sbuf.h"
#include "sigv4.h"
#include "timer.h"

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
	void *corr;
	size_t corr_len;
	int has_corr, qos;
	char *path, *query; /* path without the endpoint's prefix; canonical query */
	struct follow_state st;
	uint64_t due_ms, sent_ms;
	struct timer_task wake; /* on the loop's timers while not in flight */
	int in_flight;
	struct http_call call;
	uint64_t spool_seq; /* 0: not spooled */
	uint64_t cred_generation;
	int skew_retried, token_retried;
	/* a message publish refused, offered again; final: the follow ends after it */
	struct sbuf pending;
	int pending_final;
	enum follow_status pending_status;
	const char *end_label; /* for the log line */
};

struct follower {
	struct follower_options o;
	char *region; /* owned copy */
	struct follow_endpoint ep;
	struct http_client *http;
	struct cred_provider *creds;
	struct spool *spool;
	follower_publish_fn publish;
	void *ctx;
	struct follow *head, *tail;
	size_t n, inflight;
	struct target *targets;
	struct ratectl rate; /* the same controller as for starts, its own budget */
	struct timer_heap *timers;
	struct timer_task rate_wake; /* the rate's next token */
	struct sigv4_key_cache keys;
	long skew_s;
	struct follower_counters counters;
};

/* follower_set.c */
/* Unlink w, abort its poll, free it. */
void follower_free_follow(struct follower *f, struct follow *w);

/* follower_run.c */
/* Put w on the loop's timers for what it waits for next. */
void follower_schedule(struct follower *f, struct follow *w);
/* w's next poll (or next offer of a pending message) at due_ms. */
void follower_set_due(struct follower *f, struct follow *w, uint64_t due_ms);

#endif
