/* fairq: round-robin across things, arrival order within a thing, the
 * per-thing token bucket, expiry and the sweep. */
#include "test_util.h"

#include "fairq.h"

struct req {
	struct fq_item it; /* first member: the item is the request */
	const char *thing;
	int n;
};

static void round_robin_and_order_within_a_thing(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	struct req r[12] = {0};
	/* a runaway thing queues 8, then two others queue 2 each */
	for (int i = 0; i < 12; i++) {
		r[i].thing = i < 8 ? "busy" : (i < 10 ? "a" : "b");
		r[i].n = i;
		r[i].it.deadline_ms = 1000;
		fairq_push(q, r[i].thing, &r[i].it);
	}
	assert_int_equal(fairq_len(q), 12);
	int order[12];
	for (int i = 0; i < 12; i++)
		order[i] = ((struct req *)fairq_pop(q))->n;
	assert_null(fairq_pop(q));
	/* busy, a, b, busy, a, b, then busy's rest in order */
	int want[12] = {0, 8, 10, 1, 9, 11, 2, 3, 4, 5, 6, 7};
	assert_memory_equal(order, want, sizeof(want));
	assert_int_equal(fairq_len(q), 0);
	fairq_free(q);
}

static void newcomer_is_served_within_one_round(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	struct req busy[5] = {0}, late = {.thing = "late", .n = 99};
	for (int i = 0; i < 5; i++) {
		busy[i].n = i;
		fairq_push(q, "busy", &busy[i].it);
	}
	assert_int_equal(((struct req *)fairq_pop(q))->n, 0);
	fairq_push(q, "late", &late.it);
	assert_int_equal(((struct req *)fairq_pop(q))->n, 1);
	assert_int_equal(((struct req *)fairq_pop(q))->n, 99);
	fairq_free(q);
}

static void per_thing_token_bucket(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	int ok = 0;
	for (int i = 0; i < 10; i++)
		ok += fairq_admit(q, "runaway", 2.0, 1000);
	assert_int_equal(ok, 2); /* burst of 2 */
	assert_true(fairq_admit(q, "other", 2.0, 1000));
	assert_false(fairq_admit(q, "runaway", 2.0, 1100));
	assert_true(fairq_admit(q, "runaway", 2.0, 1600)); /* 0.5 s: one token back */
	assert_true(fairq_admit(q, "anyone", 0, 0));       /* no limit */
	fairq_sweep(q, 2.0, 100000);
	fairq_free(q);
}

static void expiry_and_next_deadline(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	struct req a = {.it.deadline_ms = 500}, b = {.it.deadline_ms = 300},
	           c = {.it.deadline_ms = 900};
	fairq_push(q, "x", &a.it);
	fairq_push(q, "y", &b.it);
	fairq_push(q, "x", &c.it);
	assert_int_equal(fairq_next_deadline(q), 300);
	assert_null(fairq_pop_expired(q, 299));
	assert_ptr_equal(fairq_pop_expired(q, 300), &b.it);
	assert_ptr_equal(fairq_pop_expired(q, 600), &a.it);
	assert_null(fairq_pop_expired(q, 600));
	assert_int_equal(fairq_next_deadline(q), 900);
	assert_ptr_equal(fairq_pop(q), &c.it);
	assert_int_equal(fairq_next_deadline(q), UINT64_MAX);
	fairq_sweep(q, 0, 0); /* forgets idle things */
	fairq_free(q);
}

static void one_slot_per_target_holds_later_requests(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	fairq_set_limit(q, 1);
	struct req r[5] = {0};
	const char *things[5] = {"x", "x", "x", "y", "y"};
	for (int i = 0; i < 5; i++) {
		r[i].thing = things[i];
		r[i].n = i;
		r[i].it.deadline_ms = 1000 + (uint64_t)i;
		fairq_push(q, r[i].thing, &r[i].it);
	}
	struct req *a = (struct req *)fairq_pop(q);
	struct req *b = (struct req *)fairq_pop(q);
	assert_int_equal(a->n, 0);
	assert_int_equal(b->n, 3);
	/* both targets have a call started: nothing else may start */
	assert_false(fairq_can_pop(q));
	assert_null(fairq_pop(q));
	assert_int_equal(fairq_len(q), 3);
	/* held items still expire and count for the next deadline */
	assert_int_equal(fairq_next_deadline(q), 1001);
	/* x's first is answered: x's second (not y's) may start, in order */
	fairq_release(q, &a->it);
	fairq_release(q, &a->it); /* a second release changes nothing */
	struct req *c = (struct req *)fairq_pop(q);
	assert_int_equal(c->n, 1);
	assert_null(fairq_pop(q));
	fairq_release(q, &b->it);
	assert_int_equal(((struct req *)fairq_pop(q))->n, 4);
	fairq_release(q, &c->it);
	struct req *d = (struct req *)fairq_pop(q);
	assert_int_equal(d->n, 2);
	assert_int_equal(fairq_len(q), 0);
	fairq_free(q);
}

static void raising_the_limit_frees_held_targets(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	fairq_set_limit(q, 1);
	struct req r[3] = {0};
	for (int i = 0; i < 3; i++) {
		r[i].n = i;
		r[i].it.deadline_ms = 5000;
		fairq_push(q, "x", &r[i].it);
	}
	assert_non_null(fairq_pop(q));
	assert_null(fairq_pop(q));
	fairq_set_limit(q, 3); /* a reload */
	assert_int_equal(((struct req *)fairq_pop(q))->n, 1);
	assert_int_equal(((struct req *)fairq_pop(q))->n, 2);
	fairq_free(q);
}

static void expired_held_item_takes_no_slot(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	fairq_set_limit(q, 1);
	struct req r[2] = {0};
	for (int i = 0; i < 2; i++) {
		r[i].n = i;
		r[i].it.deadline_ms = 100;
		fairq_push(q, "x", &r[i].it);
	}
	struct req *a = (struct req *)fairq_pop(q);
	struct req *e = (struct req *)fairq_pop_expired(q, 200);
	assert_int_equal(e->n, 1);
	fairq_release(q, &e->it); /* took no slot: must not free a's */
	assert_int_equal(fairq_len(q), 0);
	struct req more = {.n = 9};
	more.it.deadline_ms = 900;
	fairq_push(q, "x", &more.it);
	assert_null(fairq_pop(q)); /* a still holds x's slot */
	fairq_release(q, &a->it);
	assert_int_equal(((struct req *)fairq_pop(q))->n, 9);
	fairq_free(q);
}

/* gateway.per_thing_queue: a thing holds at most max live items; released
 * ones (answered, expired or never queued) free their place. */
static void a_thing_holds_at_most_max_items(void **s)
{
	(void)s;
	struct fairq *q = fairq_new();
	struct req r[4] = {0};
	assert_true(fairq_hold(q, "x", &r[0].it, 2, 0));
	assert_true(fairq_hold(q, "x", &r[1].it, 2, 0));
	assert_false(fairq_hold(q, "x", &r[2].it, 2, 0));
	assert_true(fairq_hold(q, "y", &r[3].it, 2, 0)); /* others still get in */
	fairq_release(q, &r[2].it);                      /* never counted: nothing */
	assert_false(fairq_hold(q, "x", &r[2].it, 2, 0));
	fairq_release(q, &r[0].it);
	fairq_release(q, &r[0].it); /* twice: counted once */
	fairq_sweep(q, 0, 0);       /* a thing that holds items is kept */
	assert_true(fairq_hold(q, "x", &r[2].it, 2, 0));
	assert_false(fairq_hold(q, "x", &r[0].it, 2, 0));
	assert_true(fairq_hold(q, "x", &r[0].it, 0, 0)); /* 0: no limit (resumed) */
	for (int i = 0; i < 4; i++)
		fairq_release(q, &r[i].it);
	fairq_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(round_robin_and_order_within_a_thing),
	    TEST(newcomer_is_served_within_one_round),
	    TEST(per_thing_token_bucket),
	    TEST(expiry_and_next_deadline),
	    TEST(one_slot_per_target_holds_later_requests),
	    TEST(raising_the_limit_frees_held_targets),
	    TEST(expired_held_item_takes_no_slot),
	    TEST(a_thing_holds_at_most_max_items),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
