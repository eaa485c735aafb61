/*
 * fairq: things live in a hash table (chained). Those with waiting items and
 * a free slot are on a circular list (the ring) that fairq_pop walks; those
 * with waiting items but every slot taken are on the held list until
 * fairq_release frees a slot. A thing is forgotten by fairq_sweep once it
 * has nothing waiting, started or held and its bucket is full again, so
 * memory follows the number of recently active things.
 */
#include "fairq.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

struct fq_thing {
	struct fq_thing *hnext;                   /* hash chain */
	struct fq_thing *rnext;                   /* ring of things with items */
	struct fq_thing *hprev_held, *hnext_held; /* the held list */
	struct fq_item *head, *tail;
	double tokens;
	uint64_t last_ms;
	unsigned busy; /* items popped and not released */
	unsigned live; /* items held (fairq_hold) and not released */
	int on_ring, held;
	char name[];
};

struct fairq {
	struct fq_thing *table[NBUCKETS];
	struct fq_thing *cursor; /* the ring, at the thing served next */
	struct fq_thing *last;   /* the one before the cursor */
	struct fq_thing *held;   /* things with items and no free slot */
	unsigned limit;          /* slots per thing; 0: unlimited */
	size_t len;
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

struct fairq *fairq_new(void)
{
	struct fairq *q = rt_calloc(1, sizeof(*q));
	return q;
}

void fairq_free(struct fairq *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct fq_thing *t = q->table[i], *n; t; t = n) {
			n = t->hnext;
			free(t);
		}
	free(q);
}

static struct fq_thing *get(struct fairq *q, const char *name, double burst, uint64_t now)
{
	unsigned h = hash(name);
	for (struct fq_thing *t = q->table[h]; t; t = t->hnext)
		if (strcmp(t->name, name) == 0)
			return t;
	size_t n = strlen(name);
	struct fq_thing *t = rt_calloc(1, sizeof(*t) + n + 1);
	memcpy(t->name, name, n + 1);
	t->tokens = burst;
	t->last_ms = now;
	t->hnext = q->table[h];
	q->table[h] = t;
	return t;
}

int fairq_admit(struct fairq *q, const char *thing, double rate, uint64_t now_ms)
{
	if (rate <= 0)
		return 1;
	double burst = rate < 1 ? 1 : rate;
	struct fq_thing *t = get(q, thing, burst, now_ms);
	t->tokens += (double)(now_ms - t->last_ms) * rate / 1000.0;
	if (t->tokens > burst)
		t->tokens = burst;
	t->last_ms = now_ms;
	if (t->tokens < 1)
		return 0;
	t->tokens -= 1;
	return 1;
}

/* Put t on the ring just before the cursor (served last in this round). */
static void ring_add(struct fairq *q, struct fq_thing *t)
{
	t->on_ring = 1;
	if (!q->cursor) {
		t->rnext = t;
		q->cursor = q->last = t;
		return;
	}
	q->last->rnext = t;
	t->rnext = q->cursor;
	q->last = t;
}

/* Unlink t, whose predecessor on the ring is prev. */
static void ring_unlink(struct fairq *q, struct fq_thing *prev, struct fq_thing *t)
{
	if (prev == t) {
		q->cursor = q->last = NULL;
	} else {
		prev->rnext = t->rnext;
		if (q->cursor == t)
			q->cursor = t->rnext;
		if (q->last == t)
			q->last = prev;
	}
	t->rnext = NULL;
	t->on_ring = 0;
}

static int has_slot(const struct fairq *q, const struct fq_thing *t)
{
	return q->limit == 0 || t->busy < q->limit;
}

static void held_add(struct fairq *q, struct fq_thing *t)
{
	t->held = 1;
	t->hprev_held = NULL;
	t->hnext_held = q->held;
	if (q->held)
		q->held->hprev_held = t;
	q->held = t;
}

static void held_unlink(struct fairq *q, struct fq_thing *t)
{
	if (t->hprev_held)
		t->hprev_held->hnext_held = t->hnext_held;
	else
		q->held = t->hnext_held;
	if (t->hnext_held)
		t->hnext_held->hprev_held = t->hprev_held;
	t->hprev_held = t->hnext_held = NULL;
	t->held = 0;
}

/* A thing with items goes on the ring when it has a free slot, else on the
 * held list. */
static void place(struct fairq *q, struct fq_thing *t)
{
	if (has_slot(q, t))
		ring_add(q, t);
	else
		held_add(q, t);
}

void fairq_set_limit(struct fairq *q, unsigned limit)
{
	q->limit = limit;
	for (struct fq_thing *t = q->held, *next; t; t = next) {
		next = t->hnext_held;
		if (has_slot(q, t)) {
			held_unlink(q, t);
			ring_add(q, t);
		}
	}
}

int fairq_hold(struct fairq *q, const char *thing, struct fq_item *it, unsigned max,
               uint64_t now_ms)
{
	struct fq_thing *t = get(q, thing, 1, now_ms);
	if (max && t->live >= max)
		return 0;
	t->live++;
	it->holder = t;
	return 1;
}

void fairq_release(struct fairq *q, struct fq_item *it)
{
	if (it->holder) {
		it->holder->live--;
		it->holder = NULL;
	}
	struct fq_thing *t = it->owner;
	if (!t || !t->busy)
		return;
	t->busy--;
	it->owner = NULL;
	if (t->held && has_slot(q, t)) {
		held_unlink(q, t);
		ring_add(q, t);
	}
}

void fairq_push(struct fairq *q, const char *thing, struct fq_item *it)
{
	struct fq_thing *t = get(q, thing, 1, 0);
	it->next = NULL;
	it->owner = t;
	if (t->tail)
		t->tail->next = it;
	else
		t->head = it;
	t->tail = it;
	if (!t->on_ring && !t->held)
		place(q, t);
	q->len++;
}

static struct fq_item *take_head(struct fairq *q, struct fq_thing *prev, struct fq_thing *t)
{
	struct fq_item *it = t->head;
	t->head = it->next;
	if (!t->head) {
		t->tail = NULL;
		if (t->held)
			held_unlink(q, t);
		else
			ring_unlink(q, prev, t);
	}
	it->next = NULL;
	q->len--;
	return it;
}

struct fq_item *fairq_pop(struct fairq *q)
{
	struct fq_thing *t = q->cursor;
	if (!t)
		return NULL;
	struct fq_item *it = take_head(q, q->last, t);
	t->busy++;
	if (t->on_ring && !has_slot(q, t)) { /* items left, no slot: held */
		ring_unlink(q, q->last, t);
		held_add(q, t);
	} else if (t->on_ring) { /* still has items: the next thing's turn */
		q->last = t;
		q->cursor = t->rnext;
	}
	return it;
}

/* Items expire from the head of their thing's FIFO: deadlines follow
 * arrival order within a thing. */
static struct fq_item *find_expired(struct fairq *q, uint64_t now_ms)
{
	for (struct fq_thing *t = q->held; t; t = t->hnext_held)
		if (t->head->deadline_ms <= now_ms)
			return take_head(q, NULL, t);
	struct fq_thing *prev = q->last, *t = q->cursor;
	if (!t)
		return NULL;
	do {
		if (t->head->deadline_ms <= now_ms)
			return take_head(q, prev, t);
		prev = t;
		t = t->rnext;
	} while (t != q->cursor);
	return NULL;
}

struct fq_item *fairq_pop_expired(struct fairq *q, uint64_t now_ms)
{
	struct fq_item *it = find_expired(q, now_ms);
	if (it)
		it->owner = NULL; /* took no slot: nothing to release */
	return it;
}

uint64_t fairq_next_deadline(const struct fairq *q)
{
	uint64_t best = UINT64_MAX;
	for (const struct fq_thing *t = q->held; t; t = t->hnext_held)
		if (t->head->deadline_ms < best)
			best = t->head->deadline_ms;
	struct fq_thing *t = q->cursor;
	if (!t)
		return best;
	do {
		if (t->head->deadline_ms < best)
			best = t->head->deadline_ms;
		t = t->rnext;
	} while (t != q->cursor);
	return best;
}

int fairq_can_pop(const struct fairq *q)
{
	return q->cursor != NULL;
}

size_t fairq_len(const struct fairq *q)
{
	return q->len;
}

void fairq_sweep(struct fairq *q, double rate, uint64_t now_ms)
{
	double burst = rate < 1 ? 1 : rate;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct fq_thing **p = &q->table[i];
		while (*p) {
			struct fq_thing *t = *p;
			double tokens = t->tokens + (double)(now_ms - t->last_ms) * rate / 1000.0;
			if (!t->on_ring && !t->held && !t->busy && !t->live &&
			    (rate <= 0 || tokens >= burst)) {
				*p = t->hnext;
				free(t);
			} else {
				p = &t->hnext;
			}
		}
	}
}
