/*
 * timer: a binary min-heap in an array (the children of slot i are 2i+1
 * and 2i+2); each timer knows its slot, so disarming or moving one is a
 * sift from where it stands, never a search.
 */
#include "timer.h"

#include <stdlib.h>

#include "runtime.h"

void timer_heap_init(struct timer_heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
}

void timer_heap_clean_up(struct timer_heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->slot = TIMER_UNARMED;
	free(h->v);
	timer_heap_init(h);
}

void timer_init(struct timer *t)
{
	t->at_ms = 0;
	t->slot = TIMER_UNARMED;
}

int timer_armed(const struct timer *t)
{
	return t->slot != TIMER_UNARMED;
}

static void place(struct timer_heap *h, size_t i, struct timer *t)
{
	h->v[i] = t;
	t->slot = i;
}

static void sift_up(struct timer_heap *h, size_t i)
{
	struct timer *t = h->v[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (h->v[parent]->at_ms <= t->at_ms)
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(struct timer_heap *h, size_t i)
{
	struct timer *t = h->v[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= h->n)
			break;
		if (child + 1 < h->n && h->v[child + 1]->at_ms < h->v[child]->at_ms)
			child++;
		if (t->at_ms <= h->v[child]->at_ms)
			break;
		place(h, i, h->v[child]);
		i = child;
	}
	place(h, i, t);
}

/* Take the timer at slot i out, filling the hole with the last one. */
static void remove_at(struct timer_heap *h, size_t i)
{
	struct timer *t = h->v[i];
	struct timer *last = h->v[--h->n];
	t->slot = TIMER_UNARMED;
	if (i == h->n)
		return;
	place(h, i, last);
	sift_down(h, i);
	sift_up(h, last->slot);
}

enum cg_err timer_arm(struct timer_heap *h, struct timer *t, uint64_t at_ms)
{
	if (timer_armed(t))
		remove_at(h, t->slot);
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 16;
		h->v = rt_realloc(h->v, h->cap * sizeof(*h->v));
	}
	t->at_ms = at_ms;
	place(h, h->n++, t);
	sift_up(h, t->slot);
	return CG_OK;
}

void timer_disarm(struct timer_heap *h, struct timer *t)
{
	if (timer_armed(t))
		remove_at(h, t->slot);
}

struct timer *timer_pop_due(struct timer_heap *h, uint64_t now_ms)
{
	if (h->n == 0 || h->v[0]->at_ms > now_ms)
		return NULL;
	struct timer *t = h->v[0];
	remove_at(h, 0);
	return t;
}

int64_t timer_wait_ms(const struct timer_heap *h, uint64_t now_ms, int64_t cap_ms)
{
	if (h->n == 0)
		return cap_ms;
	uint64_t at = h->v[0]->at_ms;
	if (at <= now_ms)
		return 0;
	uint64_t d = at - now_ms;
	return d < (uint64_t)cap_ms ? (int64_t)d : cap_ms;
}

void timer_task_init(struct timer_task *k, timer_fn fn)
{
	timer_init(&k->timer);
	k->fn = fn;
}

void timer_wake_only(struct timer_task *k, uint64_t now_ms, void *ctx)
{
	(void)k;
	(void)now_ms;
	(void)ctx;
}

size_t timer_run_due(struct timer_heap *h, uint64_t now_ms, void *ctx)
{
	size_t ran = 0;
	struct timer *t;
	while ((t = timer_pop_due(h, now_ms)) != NULL) {
		struct timer_task *k = container_of(t, struct timer_task, timer);
		k->fn(k, now_ms, ctx);
		ran++;
	}
	return ran;
}
