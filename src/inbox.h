/*
 * inbox: the one door into the engine thread. Paho's threads (and the
 * signal handlers, through the wake-up) hand work over here and nothing
 * else of the engine is touched from another thread.
 *
 * Thread notes: every function may be called from any thread except those
 * marked "engine thread". A mutex guards the message list and the delivered
 * list; the ready flag is a C11 atomic; the wake-up is an eventfd, so one
 * write makes the engine's poll return however many were handed over.
 */
#ifndef CMDGATE_INBOX_H
#define CMDGATE_INBOX_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"

struct inbox;

/* NULL with errno set when the eventfd cannot be made. */
struct inbox *inbox_new(void);
/* Engine thread, after every other thread has stopped using it. Frees any
 * messages still held. */
void inbox_free(struct inbox *ib);

/* Takes m. Wakes the engine once per batch. */
void inbox_put(struct inbox *ib, struct message *m);
/* A tracked publish (cookie < 2^63) reached the broker (ok) or was given
 * back by the client (not ok: the connection went before it was sent). */
void inbox_delivered(struct inbox *ib, uint64_t cookie, int ok);
/* The subscriptions are in place (again). */
void inbox_set_ready(struct inbox *ib);
/* Wake the engine loop. Async-signal-safe. */
void inbox_wake(struct inbox *ib);

/* The same three as struct mqtt_hooks callbacks (ctx: the inbox). */
void inbox_on_message(struct message *m, void *ctx);
void inbox_on_ready(void *ctx);
void inbox_on_delivered(uint64_t cookie, int ok, void *ctx);

/* Signals: the handlers only record them and wake the engine. */
enum { INBOX_STOP = 1, INBOX_RELOAD = 2 };
/* Async-signal-safe: record a stop or reload request for the engine. */
void inbox_signal(int which);
/* Engine thread: signals go to ib from now on (NULL: to nobody). */
void inbox_listen_for_signals(struct inbox *ib);
/* Engine thread: the signals recorded since the last call (INBOX_ bits);
 * a stop stays recorded. */
int inbox_take_signals(struct inbox *ib);

/* Engine thread: the file descriptor to poll, readable after a wake-up. */
int inbox_fd(const struct inbox *ib);
/* Engine thread: consume pending wake-ups. */
void inbox_clear_wake(struct inbox *ib);
/* Engine thread: every message handed over so far, oldest first (owned by
 * the caller, chained through next). */
struct message *inbox_take(struct inbox *ib);
/* Engine thread: call fn for each delivery outcome since the last call. */
void inbox_take_delivered(struct inbox *ib, void (*fn)(uint64_t cookie, int ok, void *ctx),
                          void *ctx);
/* Engine thread: 1 once after each inbox_set_ready, else 0. */
int inbox_take_ready(struct inbox *ib);

#endif
