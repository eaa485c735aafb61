/*
 * outbox: every reply on its way to the MQTT client. A reply is handed to
 * the publish function when nothing waits before it and fewer than
 * `window` replies are handed over and unconfirmed; otherwise it waits its
 * turn (first in, first out). The transport confirms each reply it was
 * handed (outbox_confirm): delivered, or given back — a reply given back
 * (the connection dropped before the broker had it) goes to the head of the
 * queue and is handed over again. So nothing is dropped, and a burst never
 * overflows the client's own buffer.
 *
 * The window also keeps the MQTT client moving: Paho's send thread sleeps
 * up to a second when its in-flight window is full and is woken only by new
 * work, so replies are fed to it as confirmations come back rather than
 * queued inside it.
 *
 * A publish that fails for a reason that will not change (an invalid topic)
 * is counted and logged, never retried. Pure apart from the function it is
 * given: unit-tested with a publish function that refuses on demand.
 * Engine thread only.
 */
#ifndef CMDGATE_OUTBOX_H
#define CMDGATE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "mqtt_out.h"

struct outbox_msg {
	struct outbox_msg *next;
	uint64_t id;         /* the transport's cookie for outbox_confirm, from 1 */
	uint64_t cookie;     /* the caller's (spool sequence, 0: none) */
	struct mqtt_out out; /* every string and byte it points to is an owned copy */
};

/* Hand m->out to the transport, tracked as m->id: MQTT_OUT_TAKEN (confirm
 * later with m->id), MQTT_OUT_LATER (keep it), MQTT_OUT_NEVER (err says why). */
typedef int (*outbox_publish_fn)(void *ctx, const struct outbox_msg *m, char *err);

struct outbox_list {
	struct outbox_msg *head, *tail;
	size_t n;
};

struct outbox {
	struct outbox_list waiting; /* not handed over yet */
	struct outbox_list sent;    /* handed over, not confirmed */
	size_t window;              /* most replies handed over at once; 0: no limit */
	uint64_t next_id;
	uint64_t refused; /* replies given up as unpublishable */
	outbox_publish_fn publish;
	void *ctx; /* the publish function's; may change between calls */
	/* told the cookie of each message refused for good (cookie != 0) */
	void (*on_refused)(void *ctx, uint64_t cookie);
	void *refused_ctx;
};

void outbox_init(struct outbox *o, size_t window, outbox_publish_fn publish, void *ctx);
/* Frees every reply still held (at exit, after the last flush). */
void outbox_clean_up(struct outbox *o);

/*
 * Queue a message (everything m points to is copied) and hand over what may
 * go. MQTT_OUT_TAKEN: this message was handed over now; MQTT_OUT_LATER: it
 * waits its turn here; MQTT_OUT_NEVER: the publish function refused it for
 * good (err says why).
 */
int outbox_put(struct outbox *o, const struct mqtt_out *m, uint64_t cookie, char *err);
/* Hand over waiting replies in order while the window and the publish
 * function allow; returns how many left the waiting queue. */
size_t outbox_flush(struct outbox *o);
/*
 * The transport confirms the reply it was handed as id: ok, delivered (its
 * cookie is returned and *known set); not ok, given back (queued again at
 * the head). An unknown id returns 0 with *known 0.
 */
uint64_t outbox_confirm(struct outbox *o, uint64_t id, int ok, int *known);

/* Replies not yet handed over. */
static inline size_t outbox_waiting(const struct outbox *o)
{
	return o->waiting.n;
}
/* Replies held: waiting or unconfirmed (what admission counts). */
static inline size_t outbox_len(const struct outbox *o)
{
	return o->waiting.n + o->sent.n;
}

#endif
