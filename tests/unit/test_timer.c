/* timer: the loop's min-heap of deadlines. */
#include "test_util.h"

#include "runtime.h"
#include "timer.h"

struct owner {
	int id;
	struct timer t;
};

static void pops_in_time_order_and_only_when_due(void **s)
{
	(void)s;
	struct timer_heap h;
	timer_heap_init(&h);
	struct owner o[5];
	uint64_t at[5] = {500, 100, 300, 100, 200};
	for (int i = 0; i < 5; i++) {
		o[i].id = i;
		timer_init(&o[i].t);
		assert_false(timer_armed(&o[i].t));
		assert_int_equal(timer_arm(&h, &o[i].t, at[i]), CG_OK);
		assert_true(timer_armed(&o[i].t));
	}
	assert_null(timer_pop_due(&h, 99));
	uint64_t last = 0;
	for (int n = 0; n < 4; n++) {
		struct timer *t = timer_pop_due(&h, 300);
		assert_non_null(t);
		assert_false(timer_armed(t));
		assert_true(t->at_ms >= last && t->at_ms <= 300);
		last = t->at_ms;
	}
	assert_null(timer_pop_due(&h, 499)); /* 500 is not due yet */
	struct timer *t = timer_pop_due(&h, 500);
	assert_ptr_equal(container_of(t, struct owner, t), &o[0]);
	assert_null(timer_pop_due(&h, UINT64_MAX));
	timer_heap_clean_up(&h);
}

static void rearm_moves_and_disarm_removes(void **s)
{
	(void)s;
	struct timer_heap h;
	timer_heap_init(&h);
	struct owner a = {1, {0, 0}}, b = {2, {0, 0}}, c = {3, {0, 0}};
	timer_init(&a.t);
	timer_init(&b.t);
	timer_init(&c.t);
	timer_arm(&h, &a.t, 100);
	timer_arm(&h, &b.t, 200);
	timer_arm(&h, &c.t, 300);
	timer_arm(&h, &a.t, 400); /* moved later: b is first now */
	assert_int_equal(h.n, 3);
	timer_arm(&h, &c.t, 50); /* moved earlier */
	timer_disarm(&h, &b.t);
	assert_false(timer_armed(&b.t));
	timer_disarm(&h, &b.t); /* no-op when unarmed */
	assert_int_equal(h.n, 2);
	assert_ptr_equal(timer_pop_due(&h, 1000), &c.t);
	assert_ptr_equal(timer_pop_due(&h, 1000), &a.t);
	assert_null(timer_pop_due(&h, 1000));
	timer_heap_clean_up(&h);
}

static void wait_is_zero_when_due_and_capped(void **s)
{
	(void)s;
	struct timer_heap h;
	timer_heap_init(&h);
	assert_int_equal(timer_wait_ms(&h, 1000, 1000), 1000); /* empty: the cap */
	struct timer t;
	timer_init(&t);
	timer_arm(&h, &t, 1250);
	assert_int_equal(timer_wait_ms(&h, 1000, 1000), 250);
	assert_int_equal(timer_wait_ms(&h, 1000, 100), 100);
	assert_int_equal(timer_wait_ms(&h, 1250, 1000), 0);
	assert_int_equal(timer_wait_ms(&h, 5000, 1000), 0); /* overdue */
	timer_heap_clean_up(&h);
	assert_false(timer_armed(&t)); /* clean-up leaves its timers unarmed */
}

/* Many timers armed, moved and disarmed at random come out in order: the
 * heap property holds whatever the sequence. */
static void random_operations_keep_the_order(void **s)
{
	(void)s;
	enum { N = 500 };
	struct timer_heap h;
	timer_heap_init(&h);
	static struct timer t[N];
	for (int i = 0; i < N; i++)
		timer_init(&t[i]);
	uint32_t x = 12345;
	for (int step = 0; step < 20000; step++) {
		x = x * 1103515245u + 12345u;
		struct timer *p = &t[(x >> 8) % N];
		if ((x >> 4) % 4 == 0)
			timer_disarm(&h, p);
		else
			timer_arm(&h, p, (x >> 12) % 100000);
	}
	size_t armed = 0;
	for (int i = 0; i < N; i++)
		armed += timer_armed(&t[i]) ? 1 : 0;
	assert_int_equal(h.n, armed);
	uint64_t last = 0;
	struct timer *p;
	size_t popped = 0;
	while ((p = timer_pop_due(&h, UINT64_MAX)) != NULL) {
		assert_true(p->at_ms >= last);
		last = p->at_ms;
		popped++;
	}
	assert_int_equal(popped, armed);
	timer_heap_clean_up(&h);
}

struct counter {
	struct timer_task task;
	int runs;
	uint64_t again_at; /* 0: do not re-arm */
	struct timer_heap *h;
};

static void count(struct timer_task *k, uint64_t now_ms, void *ctx)
{
	struct counter *c = container_of(k, struct counter, task);
	c->runs++;
	assert_ptr_equal(ctx, c->h); /* the loop's context */
	(void)now_ms;
	if (c->again_at) {
		timer_arm(c->h, &k->timer, c->again_at);
		c->again_at = 0;
	}
}

static void tasks_run_when_due_and_may_rearm(void **s)
{
	(void)s;
	struct timer_heap h;
	timer_heap_init(&h);
	struct counter a = {.h = &h}, b = {.h = &h};
	void *ctx = &h;
	timer_task_init(&a.task, count);
	timer_task_init(&b.task, count);
	timer_arm(&h, &a.task.timer, 10);
	timer_arm(&h, &b.task.timer, 20);
	a.again_at = 30;
	assert_int_equal(timer_run_due(&h, 15, ctx), 1);
	assert_int_equal(a.runs, 1);
	assert_true(timer_armed(&a.task.timer)); /* re-armed by its function */
	assert_int_equal(timer_run_due(&h, 15, ctx), 0);
	assert_int_equal(timer_run_due(&h, 30, ctx), 2);
	assert_int_equal(a.runs, 2);
	assert_int_equal(b.runs, 1);
	assert_int_equal(h.n, 0);
	timer_heap_clean_up(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(pops_in_time_order_and_only_when_due), TEST(rearm_moves_and_disarm_removes),
	    TEST(wait_is_zero_when_due_and_capped),     TEST(random_operations_keep_the_order),
	    TEST(tasks_run_when_due_and_may_rearm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
