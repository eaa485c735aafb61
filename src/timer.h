/*
 * timer: one clock of deadlines for the engine's loop, libuv-style. An
 * intrusive binary min-heap of struct timer: the owner (a request, a
 * follow, the loop itself) embeds a struct timer, arms it at an absolute
 * time on the monotonic clock, and finds itself again from the timer with
 * container_of. The heap holds pointers only and owns nothing.
 *
 * The loop asks the heap once per turn how long it may sleep
 * (timer_wait_ms), and after the sleep takes the timers that are due
 * (timer_pop_due), earliest first. Arming an armed timer moves it; a timer
 * popped or disarmed is unarmed (slot == TIMER_UNARMED), so an owner can
 * always tell whether it is waiting for its time.
 *
 * A loop whose timers have different owners holds struct timer_task
 * entries only (a timer and the function that handles it) and lets
 * timer_run_due call each due one with the loop's context.
 *
 * Pure: time comes in as an argument. Not thread-safe: one heap belongs to
 * one thread. Arm, disarm and pop are O(log n); the earliest is O(1).
 */
#ifndef CMDGATE_TIMER_H
#define CMDGATE_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The struct of type T that has member m at ptr. */
#define container_of(ptr, T, m) ((T *)(void *)((char *)(ptr)-offsetof(T, m)))

#define TIMER_UNARMED SIZE_MAX

struct timer {
	uint64_t at_ms; /* when it is due (monotonic ms); meaningful while armed */
	size_t slot;    /* heap index; TIMER_UNARMED when not armed */
};

struct timer_heap {
	struct timer **v;
	size_t n, cap;
};

void timer_heap_init(struct timer_heap *h);
/* Frees the heap's array; the timers are the owners' (left as they are). */
void timer_heap_clean_up(struct timer_heap *h);

void timer_init(struct timer *t); /* unarmed */
/* Arm t to be due at at_ms; re-arming an armed timer moves it. CG_OK
 * (allocation failure aborts, as everywhere). */
enum cg_err timer_arm(struct timer_heap *h, struct timer *t, uint64_t at_ms);
/* No-op when unarmed. */
void timer_disarm(struct timer_heap *h, struct timer *t);
int timer_armed(const struct timer *t);
/* The earliest timer due at or before now_ms, removed from the heap (it is
 * unarmed); NULL when none is due. Timers due at the same time come out in
 * no particular order. */
struct timer *timer_pop_due(struct timer_heap *h, uint64_t now_ms);
/* ms until the earliest timer is due: 0 if one is due, cap_ms when the heap
 * is empty or the earliest is further than cap_ms. */
int64_t timer_wait_ms(const struct timer_heap *h, uint64_t now_ms, int64_t cap_ms);

/* A timer and what to do when it is due. The function gets its task (its
 * owner: container_of), the loop's now and the loop's context (the
 * engine's loop passes the engine); it may arm any timer, its own too
 * (armed at or before now it runs again in the same timer_run_due). A
 * task whose function does nothing only wakes the loop. */
struct timer_task;
typedef void (*timer_fn)(struct timer_task *k, uint64_t now_ms, void *ctx);
struct timer_task {
	struct timer timer;
	timer_fn fn;
};

void timer_task_init(struct timer_task *k, timer_fn fn); /* unarmed */
/* Pop every task of h due at or before now_ms and call its function,
 * earliest first. h must hold only timers embedded in a struct
 * timer_task. Returns how many ran. */
size_t timer_run_due(struct timer_heap *h, uint64_t now_ms, void *ctx);
/* A timer_fn that does nothing: the task only wakes the loop. */
void timer_wake_only(struct timer_task *k, uint64_t now_ms, void *ctx);

#endif
