/*
 * fairq: the waiting room. One FIFO per key (the engine uses the target
 * ARN), served round-robin, so one busy device cannot starve the others
 * while each key's requests still start in arrival order; a limit of
 * started-and-unfinished items per key (gateway.per_target_inflight): a key
 * at its limit is skipped by fairq_pop until fairq_release, so a request
 * being retried holds back the later ones of its key only; plus a token
 * bucket per key for gateway.per_thing_rate, and a count of live items per
 * key for gateway.per_thing_queue. Intrusive (the engine embeds struct
 * fq_item, zeroed, in its request) and pure: time comes in as an argument.
 */
#ifndef CMDGATE_FAIRQ_H
#define CMDGATE_FAIRQ_H

#include <stddef.h>
#include <stdint.h>

struct fq_thing;

struct fq_item {
	struct fq_item *next;
	struct fq_thing *owner;
	struct fq_thing *holder; /* the thing it counts against (fairq_hold) */
	uint64_t deadline_ms;
};

struct fairq;

struct fairq *fairq_new(void);
/* Frees the bookkeeping; items still queued are the caller's. */
void fairq_free(struct fairq *q);

/* Token bucket of thing at rate requests/s (burst max(1, rate)); 1 when a
 * request may be admitted now (a token is taken), 0 when over the rate.
 * rate <= 0 always admits. */
int fairq_admit(struct fairq *q, const char *thing, double rate, uint64_t now_ms);

/* Count it as one of thing's live requests (admitted, not yet released)
 * unless thing already holds max (0: no limit): gateway.per_thing_queue.
 * 1 when counted; fairq_release uncounts it. */
int fairq_hold(struct fairq *q, const char *thing, struct fq_item *it, unsigned max,
               uint64_t now_ms);

void fairq_push(struct fairq *q, const char *thing, struct fq_item *it);
/* Slots per key (0: unlimited). */
void fairq_set_limit(struct fairq *q, unsigned limit);
/* The next item, round-robin across keys with a free slot (the slot is
 * taken); NULL when none may start. */
struct fq_item *fairq_pop(struct fairq *q);
/* Whether fairq_pop would return an item. */
int fairq_can_pop(const struct fairq *q);
/* The popped item it is finished: its key's slot is free again, and it no
 * longer counts against its thing (fairq_hold). Call once per item (a
 * second call does nothing). */
void fairq_release(struct fairq *q, struct fq_item *it);
/* An item whose deadline is <= now, or NULL (takes no slot). */
struct fq_item *fairq_pop_expired(struct fairq *q, uint64_t now_ms);
/* Earliest deadline among queue heads; UINT64_MAX when empty. */
uint64_t fairq_next_deadline(const struct fairq *q);
size_t fairq_len(const struct fairq *q);
/* Forget idle things whose bucket has refilled (bounds memory). */
void fairq_sweep(struct fairq *q, double rate, uint64_t now_ms);

#endif
