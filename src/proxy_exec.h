/*
 * proxy_exec: what the proxy knows about one execution it stands in for
 * (SPEC 9), and the rules of its updates to AWS. Pure: time and randomness
 * come in as arguments; nothing here publishes, the caller does what the
 * functions say.
 *
 * An execution is known from its first delivery (or, for a late answer,
 * from that answer) until it is forgotten: its final answer was accepted,
 * or its timeout plus PROXY_GRACE_MS passed with no answer waiting. While
 * known, AWS's redeliveries are not forwarded again.
 *
 * Answers queue per execution; the head is the current update:
 *
 *   IDLE --answer--> DUE --sent--> FLIGHT --accepted/rejected--> (next or IDLE)
 *                     ^              |  no verdict within update_timeout,
 *                     +--------------+  link lost, DataConflict or
 *                                       RequestThrottled (after a backoff)
 *
 * One update is in flight at a time. AWS's updates carry no idempotency
 * token, so a verdict is taken as the current update's; a verdict when
 * nothing was sent is stray and ignored.
 */
#ifndef CMDGATE_PROXY_EXEC_H
#define CMDGATE_PROXY_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "proxy_answer.h"
#include "proxy_topic.h"
#include "timer.h"

/* How long an execution is remembered after its timeout (SPEC 9: 60 s). */
#define PROXY_GRACE_MS 60000
/* Without a Message Expiry the execution timeout is unknown: assume this. */
#define PROXY_DEFAULT_TIMEOUT_S 3600
/* DataConflict / RequestThrottled: equal-jitter backoff. */
#define PROXY_RETRY_BASE_MS 100
#define PROXY_RETRY_CAP_MS  5000

/* One answer taken from the machine, as it goes to AWS. Owned by its
 * execution's queue. */
struct proxy_update {
	struct proxy_update *next;
	char *body; /* the JSON for AWS (proxy_answer_check's) */
	size_t len;
	enum proxy_status status;
	uint64_t spool_seq; /* its spool record, 0: none */
	uint64_t taken_ms;  /* monotonic */
	unsigned sends;     /* times published since taken (or resumed) */
	int sent_before;    /* resumed from the spool: it may have left before the restart */
};

enum proxy_exec_state { PX_IDLE, PX_DUE, PX_FLIGHT };

struct proxy_exec {
	struct proxy_exec *next; /* the table's chain */
	char thing[PROXY_THING_MAX + 1];
	char id[PROXY_EXEC_ID_MAX + 1];
	uint64_t delivered_ms; /* monotonic; 0: known from an answer only */
	uint64_t forget_ms;    /* monotonic: timeout + grace */
	uint64_t spool_seq;    /* its "seen" record, 0: none */
	struct proxy_update *head, *tail;
	size_t n_updates;
	enum proxy_exec_state state;
	uint64_t next_ms; /* DUE: send at; FLIGHT: re-send at */
	unsigned retries; /* DataConflict / RequestThrottled in a row */
	int final_accepted;
	enum proxy_status last_status; /* of the last accepted update */
	struct timer_task task;        /* the owner's: armed at proxy_exec_next_ms */
	void *owner;
};

/* What to do with AWS's verdict. */
enum proxy_verdict {
	PXV_STRAY,          /* nothing was sent: ignore it */
	PXV_RELAY,          /* relay AWS's bytes to the machine; the update is done */
	PXV_RELAY_ACCEPTED, /* TerminalStateReached after a re-send: counts as accepted;
	                       the machine gets {"executionId"}; the update is done */
	PXV_RETRY,          /* DataConflict / RequestThrottled: sent again later */
};

/* A fresh execution (zeroed, names copied). timeout_s: seconds to its
 * timeout as the request said (Message Expiry), < 0 unknown. */
void proxy_exec_init(struct proxy_exec *ex, const char *thing, const char *id, uint64_t now,
                     long timeout_s);

/*
 * The Message Expiry to republish with: expiry_s (as received, at
 * received_ms) less the time since (at least 1 ms: time has always passed
 * since the broker counted it), in whole seconds rounded down. Returns
 * -1 when the request had none (expiry_s < 0), 0 when less than a second
 * is left (expired: not forwarded).
 */
long proxy_expiry_left(long expiry_s, uint64_t received_ms, uint64_t now);

/* Queue an answer (takes u). It becomes due at once when nothing is queued. */
void proxy_exec_answer(struct proxy_exec *ex, struct proxy_update *u, uint64_t now);
/* Whether the current update should be published now (due, or its verdict
 * overdue: re-send). */
int proxy_exec_send_due(const struct proxy_exec *ex, uint64_t now);
/* The current update was handed to the link. */
void proxy_exec_sent(struct proxy_exec *ex, uint64_t now, uint64_t update_timeout_ms);
/* The link went down: an update in flight is sent again when it is back. */
void proxy_exec_link_lost(struct proxy_exec *ex, uint64_t now);

/*
 * AWS's verdict on the current update: accepted, or rejected with error
 * code. For PXV_RELAY and PXV_RELAY_ACCEPTED the update leaves the queue
 * into *done (the caller frees it with proxy_update_free, after ending its
 * spool record) and the next one becomes due.
 */
enum proxy_verdict proxy_exec_verdict(struct proxy_exec *ex, int accepted, const char *code,
                                      uint64_t now, uint32_t rnd, struct proxy_update **done);

/* When ex next needs attention (UINT64_MAX: never while idle and final). */
uint64_t proxy_exec_next_ms(const struct proxy_exec *ex);
/* Whether ex may be forgotten: nothing queued, and its final answer was
 * accepted or its timeout plus grace passed. */
int proxy_exec_forgettable(const struct proxy_exec *ex, uint64_t now);

struct proxy_update *proxy_update_new(const char *body, size_t len, enum proxy_status st,
                                      uint64_t now);
void proxy_update_free(struct proxy_update *u);
/* Free every queued update (not the struct itself). */
void proxy_exec_clean_up(struct proxy_exec *ex);

#endif
