/*
 * engine_stop: stopping. On SIGTERM the engine stops starting calls:
 * requests not yet started stay in the spool for the next start (answered
 * Unavailable without a spool), calls in flight get gateway.drain_ms to
 * finish, and what is still in flight then is aborted the same way.
 */
#include "engine_priv.h"
#include "log.h"
#include "notify.h"

/* At shutdown: r stays in the spool for the next start (1), or is
 * answered Unavailable without one (0). */
static int keep_or_refuse(struct engine *e, struct request *r, const char *why)
{
	if (r->settle.active) { /* answered already; the spool keeps it */
		engine_end_settling(e, r, SETTLE_STOPPED, NULL);
		return 1;
	}
	if (e->spool && r->spool_seq) {
		log_debug("stopping: token=%s stays in the spool", r->tr.client_token);
		engine_release(e, r);
		request_free(r);
		return 1;
	}
	engine_finish_gateway(e, r, GW_UNAVAILABLE, why);
	return 0;
}

static void drop_waiting(struct engine *e)
{
	size_t kept = 0;
	struct request *r;
	while ((r = (struct request *)fairq_pop_expired(e->waiting, UINT64_MAX)) ||
	       (r = e->held.head)) {
		if (r->state == RS_HELD)
			reqlist_remove(&e->held, r);
		kept += (size_t)keep_or_refuse(e, r, "the gateway is shutting down");
	}
	if (kept)
		log_info("stopping: %zu waiting request(s) stay in the spool", kept);
}

void engine_begin_drain(struct engine *e, uint64_t now)
{
	e->draining = 1;
	e->drain_until_ms = now + (uint64_t)e->cfg->gateway.drain_ms;
	log_info("stopping: %zu in flight, %zu waiting; draining up to %ld ms", e->flight.n,
	         fairq_len(e->waiting) + e->held.n, e->cfg->gateway.drain_ms);
	notify_send("STOPPING=1");
	/* The subscriptions stay: requests that arrive from now on are kept in
	 * the spool, or answered Unavailable without one, and those published
	 * while the gateway is down wait in the broker's session. */
	drop_waiting(e);
}

void engine_abort_flight(struct engine *e)
{
	while (e->flight.head) {
		struct request *r = e->flight.head;
		reqlist_remove(&e->flight, r);
		keep_or_refuse(e, r, "stopped before AWS answered; retry with the same id");
	}
	drop_waiting(e); /* retries scheduled while draining */
}
