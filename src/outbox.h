/*
 * outbox: replies that the MQTT client could not take yet. Every reply goes
 * through outbox_put; it is handed to the publish function at once when
 * nothing is waiting before it, else it waits its turn (first in, first
 * out) and outbox_flush tries again — after a delivery freed room in the
 * client's buffer, after a reconnect, or on the loop's next turn. Nothing
 * is dropped: a publish that fails for a reason that will not change (an
 * invalid topic) is counted and logged by the caller's function, never
 * retried for ever.
 *
 * Pure apart from the function it is given, so it is unit-tested with a
 * publish function that refuses on demand. Engine thread only.
 */
#ifndef CMDGATE_OUTBOX_H
#define CMDGATE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct outbox_msg {
	struct outbox_msg *next;
	char *topic;
	char *payload;
	size_t len;
	int qos;
	void *correlation; /* or NULL */
	size_t correlation_len;
	uint64_t cookie; /* handed to the publish function (spool sequence, 0: none) */
};

/* CG_OK: taken; CG_TRANSPORT: not now, keep it; anything else: never. */
typedef enum cg_err (*outbox_publish_fn)(void *ctx, const struct outbox_msg *m, char *err);

struct outbox {
	struct outbox_msg *head, *tail;
	size_t n;
	uint64_t refused; /* replies given up as unpublishable */
	outbox_publish_fn publish;
	void *ctx;
};

void outbox_init(struct outbox *o, outbox_publish_fn publish, void *ctx);
/* Frees every waiting reply (used at exit, after the last flush). */
void outbox_clean_up(struct outbox *o);

/*
 * Queue a reply (everything is copied). Returns 1 when it was handed over
 * now, 0 when it waits, -1 when the publish function refused it for good
 * (err says why).
 */
int outbox_put(struct outbox *o, const char *topic, const char *payload, size_t len, int qos,
               const void *correlation, size_t correlation_len, uint64_t cookie, char *err);
/* Hand over waiting replies in order until one must wait; returns how many
 * left the outbox. */
size_t outbox_flush(struct outbox *o);
/* Flush until empty or until the monotonic deadline (used when stopping). */
void outbox_drain(struct outbox *o, uint64_t until_ms);
static inline size_t outbox_len(const struct outbox *o)
{
	return o->n;
}

#endif
