/*
 * inbox: a mutex-guarded singly linked list of messages, a growable array of
 * delivered cookies and an eventfd. Handing over is O(1) and never blocks
 * for longer than the engine takes to swap a list head.
 */
#include "inbox.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime.h"

struct inbox {
	int fd;
	pthread_mutex_t lock; /* guards head, tail, delivered, n, cap */
	struct message *head, **tail;
	uint64_t *delivered;
	size_t n, cap;
	atomic_int ready;
};

struct inbox *inbox_new(void)
{
	struct inbox *ib = rt_calloc(1, sizeof(*ib));
	ib->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ib->fd < 0) {
		int saved = errno;
		free(ib);
		errno = saved;
		return NULL;
	}
	pthread_mutex_init(&ib->lock, NULL);
	ib->tail = &ib->head;
	atomic_init(&ib->ready, 0);
	return ib;
}

/* Signal handlers run on any thread: they set a flag and write the
 * eventfd, both async-signal-safe. */
static volatile sig_atomic_t stop_requested, reload_requested;
static struct inbox *volatile signal_inbox;

void inbox_signal(int which)
{
	if (which & INBOX_STOP)
		stop_requested = 1;
	if (which & INBOX_RELOAD)
		reload_requested = 1;
	struct inbox *ib = signal_inbox;
	if (ib)
		inbox_wake(ib);
}

void inbox_listen_for_signals(struct inbox *ib)
{
	signal_inbox = ib;
}

int inbox_take_signals(struct inbox *ib)
{
	(void)ib;
	int bits = stop_requested ? INBOX_STOP : 0;
	if (reload_requested) {
		reload_requested = 0;
		bits |= INBOX_RELOAD;
	}
	return bits;
}

void inbox_free(struct inbox *ib)
{
	if (!ib)
		return;
	if (signal_inbox == ib)
		signal_inbox = NULL;
	for (struct message *m = ib->head, *next; m; m = next) {
		next = m->next;
		message_free(m);
	}
	free(ib->delivered);
	pthread_mutex_destroy(&ib->lock);
	close(ib->fd);
	free(ib);
}

void inbox_wake(struct inbox *ib)
{
	uint64_t one = 1;
	ssize_t r = write(ib->fd, &one, sizeof(one));
	(void)r; /* a full counter already means "awake" */
}

void inbox_put(struct inbox *ib, struct message *m)
{
	m->next = NULL;
	pthread_mutex_lock(&ib->lock);
	int was_empty = ib->head == NULL;
	*ib->tail = m;
	ib->tail = &m->next;
	pthread_mutex_unlock(&ib->lock);
	/* The engine takes the whole list after each wake-up, so a non-empty
	 * list already has one pending. */
	if (was_empty)
		inbox_wake(ib);
}

#define GIVEN_BACK (UINT64_C(1) << 63)

void inbox_delivered(struct inbox *ib, uint64_t cookie, int ok)
{
	pthread_mutex_lock(&ib->lock);
	if (ib->n == ib->cap) {
		ib->cap = ib->cap ? 2 * ib->cap : 256;
		ib->delivered = rt_realloc(ib->delivered, ib->cap * sizeof(*ib->delivered));
	}
	ib->delivered[ib->n++] = ok ? cookie : cookie | GIVEN_BACK;
	pthread_mutex_unlock(&ib->lock);
	inbox_wake(ib); /* a reply left Paho's buffer: the outbox may move */
}

void inbox_set_ready(struct inbox *ib)
{
	atomic_store(&ib->ready, 1);
	inbox_wake(ib);
}

void inbox_on_message(struct message *m, void *ctx)
{
	inbox_put(ctx, m);
}

void inbox_on_ready(void *ctx)
{
	inbox_set_ready(ctx);
}

void inbox_on_delivered(uint64_t cookie, int ok, void *ctx)
{
	inbox_delivered(ctx, cookie, ok);
}

int inbox_fd(const struct inbox *ib)
{
	return ib->fd;
}

void inbox_clear_wake(struct inbox *ib)
{
	uint64_t n;
	while (read(ib->fd, &n, sizeof(n)) > 0)
		;
}

struct message *inbox_take(struct inbox *ib)
{
	pthread_mutex_lock(&ib->lock);
	struct message *m = ib->head;
	ib->head = NULL;
	ib->tail = &ib->head;
	pthread_mutex_unlock(&ib->lock);
	return m;
}

void inbox_take_delivered(struct inbox *ib, void (*fn)(uint64_t cookie, int ok, void *ctx),
                          void *ctx)
{
	pthread_mutex_lock(&ib->lock);
	for (size_t i = 0; i < ib->n; i++)
		fn(ib->delivered[i] & ~GIVEN_BACK, !(ib->delivered[i] & GIVEN_BACK), ctx);
	ib->n = 0;
	pthread_mutex_unlock(&ib->lock);
}

int inbox_take_ready(struct inbox *ib)
{
	return atomic_exchange(&ib->ready, 0);
}
