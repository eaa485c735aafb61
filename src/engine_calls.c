/*
 * engine_calls: a request's calls to AWS, from the waiting room to its
 * answer. Starts what may start (held retries first, then the waiting
 * requests round-robin, within gateway.max_inflight and the send rate),
 * carries out attempt_decide's decision when a call finishes, and expires
 * what waited past its deadline: each waiting or held request has a timer
 * on the loop's heap, at its deadline or at its retry when that is sooner.
 * Every request leaves through engine_finish_* (answer.c renders, logs and
 * frees).
 */
#include <stdlib.h>

#include "attempt.h"
#include "awserr.h"
#include "engine_priv.h"
#include "follow.h"
#include "jsonw.h"
#include "log.h"
#include "runtime.h"

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS  5000

/* ---- answers ------------------------------------------------------------ */

static struct answer_env answer_env(struct engine *e)
{
	struct answer_env a = {
	    .outbox = &e->outbox, .stats = &e->stats, .spool = e->spool, .now_ms = rt_now_ms()};
	return a;
}

/* SPEC 5: with gateway.follow_max executions followed, one more ends at
 * once with its one final message (status null, code Overloaded), queued
 * right after the accepted reply, so memory and polls stay bounded whatever
 * devices start. Answers r. */
static void accept_refusing_follow(struct engine *e, struct request *r, const char *execution_id)
{
	struct answer_env a = answer_env(e);
	struct sbuf topic, id, msg;
	sbuf_init(&topic);
	sbuf_init(&id);
	sbuf_init(&msg);
	if (r->tr.id)
		jsonw_value(&id, r->tr.id);
	if (follow_topic_finish(r->follow_topic, execution_id, &topic, NULL) != CG_OK) {
		answer_accepted(&a, r, execution_id, NULL);
	} else {
		follow_render_end(&msg, r->tr.id ? id.data : NULL, execution_id, FOLLOW_NONE,
		                  "Overloaded", 1);
		log_warn("follow thing=%s execution=%s: %zu executions are followed "
		         "(gateway.follow_max); ended at once",
		         r->thing, execution_id, follower_active(e->follower));
		struct mqtt_out then = {
		    .topic = topic.data,
		    .payload = view_of(msg.data, msg.len),
		    .qos = r->msg->qos,
		    .correlation = view_of(r->msg->correlation, r->msg->correlation_len),
		};
		answer_accepted(&a, r, execution_id, &then);
	}
	sbuf_clean_up(&msg);
	sbuf_clean_up(&id);
	sbuf_clean_up(&topic);
}

/* An accepted execution of a following route goes to the follower. */
static void follow(struct engine *e, const struct request *r, const char *execution_id)
{
	struct sbuf topic, id;
	sbuf_init(&topic);
	sbuf_init(&id);
	if (r->tr.id)
		jsonw_value(&id, r->tr.id);
	char err[ERR_LEN];
	if (follow_topic_finish(r->follow_topic, execution_id, &topic, err) == CG_OK) {
		struct follow_info fi = {
		    .thing = r->thing,
		    .command = r->command,
		    .execution_id = execution_id,
		    .target_arn = r->target,
		    .topic = topic.data,
		    .id_json = r->tr.id ? id.data : NULL,
		    .qos = r->msg->qos,
		    .correlation = view_of(r->msg->correlation, r->msg->correlation_len),
		};
		long max_s = e->cfg->gateway.follow_max_s;
		if (follower_add(e->follower, &fi, rt_now_ms(), max_s, err) != CG_OK)
			log_warn("not followed: %s", err);
	}
	sbuf_clean_up(&topic);
	sbuf_clean_up(&id);
}

/* r is leaving: its target's next may start, its timer and its call go. */
void engine_release(struct engine *e, struct request *r)
{
	fairq_release(e->waiting, &r->fq);
	timer_disarm(&e->timers, &r->wake.timer);
	aws_call_free(&e->aws, r->call); /* aborted if still in flight */
	r->call = NULL;
}

static void hold(struct engine *e, struct request *r, uint64_t at);

void engine_end_settling(struct engine *e, struct request *r, enum settle_outcome o,
                         const struct attempt_decision *d)
{
	settler_end(&e->settle, r, o, d, r->call ? aws_call_body(r->call) : view_of(NULL, 0));
	engine_release(e, r);
	request_free(r);
}

/* r is about to be answered. 1: r is settling already: no second answer; it
 * is held again, or its settling ends here. 0: answer it; *keep: its call's
 * fate is unknown, so it keeps its slot, to be held and settled after its
 * answer (settler.h); else it is released. */
static int settling(struct engine *e, struct request *r, int *keep)
{
	uint64_t at;
	if (!r->settle.active) {
		*keep = settler_begin(&e->settle, r);
		if (!*keep)
			engine_release(e, r);
		return 0;
	}
	if (settler_again(r, e->draining, rt_now_ms(), &at)) {
		hold(e, r, at);
		return 1;
	}
	engine_end_settling(e, r, e->draining ? SETTLE_STOPPED : SETTLE_ABANDONED, NULL);
	return 1;
}

void engine_finish_gateway(struct engine *e, struct request *r, enum gw_code c, const char *msg)
{
	struct answer_env a = answer_env(e);
	int keep;
	if (settling(e, r, &keep))
		return;
	answer_gateway(&a, r, c, msg);
	if (keep)
		hold(e, r, r->next_try_ms);
}

void engine_finish_aws(struct engine *e, struct request *r, const struct awserr *ae)
{
	struct answer_env a = answer_env(e);
	int keep;
	if (settling(e, r, &keep))
		return;
	answer_aws(&a, r, ae);
	if (keep)
		hold(e, r, r->next_try_ms);
}

/* ---- deadlines ---------------------------------------------------------- */

/* Waiting requests expire from the heads of their targets' FIFOs: deadlines
 * follow arrival order within a target. */
static void expire_waiting(struct engine *e, uint64_t now)
{
	struct fq_item *it;
	while ((it = fairq_pop_expired(e->waiting, now)) != NULL)
		engine_finish_gateway(e, (struct request *)it, GW_EXPIRED,
		                      "the deadline passed while the request waited");
}

/* r's timer: a held request's retry is due (start_ready takes it; its
 * deadline is the next time), or r's deadline passed. */
static void request_due(struct timer_task *k, uint64_t now, void *ctx)
{
	struct engine *e = ctx;
	struct request *r = container_of(k, struct request, wake);
	if (r->deadline_ms > now) {
		timer_arm(&e->timers, &k->timer, r->deadline_ms);
		return;
	}
	if (r->state == RS_QUEUED) {
		expire_waiting(e, now);
		return;
	}
	reqlist_remove(&e->held, r);
	struct attempt_decision d;
	attempt_at_deadline(&r->at, &d);
	if (d.kind == AT_ANSWER_AWS) /* e.g. still throttled at the deadline */
		engine_finish_aws(e, r, d.aws);
	else
		engine_finish_gateway(e, r, d.code, d.message);
}

void engine_queue(struct engine *e, struct request *r)
{
	r->state = RS_QUEUED;
	r->fq.deadline_ms = r->deadline_ms;
	fairq_push(e->waiting, r->target, &r->fq);
	r->wake.fn = request_due;
	timer_arm(&e->timers, &r->wake.timer, r->deadline_ms);
}

/* ---- calls -------------------------------------------------------------- */

/* Sign r's body and start its StartCommandExecution (counts an attempt);
 * the call's timeout ends at the deadline at the latest. */
static enum cg_err start_call(struct engine *e, struct request *r, uint64_t now, char *err)
{
	if (!r->call)
		r->call = aws_call_new(engine_on_done, e, r);
	struct aws_signable s = {
	    .method = "POST",
	    .path = START_PATH,
	    .content_type = "application/json",
	    .payload = view_of(r->tr.body.data, r->tr.body.len),
	};
	uint64_t left = r->deadline_ms > now ? r->deadline_ms - now : 1;
	long timeout = e->cfg->aws.request_timeout_ms;
	if ((uint64_t)timeout > left)
		timeout = (long)left;
	enum cg_err rc = aws_call_start(&e->aws, &e->start_ep, &s, timeout, r->call, err);
	if (rc == CG_CREDENTIALS)
		return rc;
	attempt_begin(&r->at);
	log_debug("call token=%s attempt=%u thing=%s", r->tr.client_token, r->at.attempts,
	          r->thing);
	return rc;
}

static void launch(struct engine *e, struct request *r, uint64_t now)
{
	if (settler_due(r, now)) { /* resumed, and its deadline passed while it waited */
		engine_finish_gateway(e, r, GW_EXPIRED, "the deadline passed before AWS answered");
		return;
	}
	char err[ERR_LEN] = "";
	timer_disarm(&e->timers, &r->wake.timer); /* in flight: the call's timeout bounds it */
	enum cg_err rc = start_call(e, r, now, err);
	if (rc == CG_OK) {
		r->sent_ms = now;
		r->state = RS_FLIGHT;
		reqlist_push(&e->flight, r);
	} else if (rc == CG_CREDENTIALS) {
		engine_finish_gateway(e, r, GW_CREDENTIALS_UNAVAILABLE, err);
	} else {
		log_error("cannot start call: %s", err);
		engine_finish_gateway(e, r, GW_INTERNAL_ERROR, err);
	}
}

static void hold(struct engine *e, struct request *r, uint64_t at)
{
	r->next_try_ms = at;
	r->state = RS_HELD;
	reqlist_push(&e->held, r);
	timer_arm(&e->timers, &r->wake.timer, at < r->deadline_ms ? at : r->deadline_ms);
}

/* Carry out attempt_decide's decision for r, whose call finished. */
static void after_call(struct engine *e, struct request *r, uint64_t now)
{
	struct awserr ae;
	struct call_result res;
	aws_call_read(r->call, &ae, &res);
	/* a settling call is bounded by gateway.settle_max_ms alone */
	struct attempt_policy p = {.max_attempts =
	                               r->settle.active ? ~0u : (unsigned)e->cfg->aws.max_attempts,
	                           .base_ms = RETRY_BASE_MS,
	                           .cap_ms = RETRY_CAP_MS,
	                           .draining = e->draining};
	struct attempt_decision d;
	attempt_decide(&r->at, &p, &res, now, r->deadline_ms, rt_random_u32(), &d);
	int throttled = res.aws && res.aws->throttled;
	if (res.transport == CG_OK && ratectl_on_answer(&e->rate, now, throttled, r->sent_ms) &&
	    ratectl_log_due(&e->rate, now))
		log_warn("AWS is throttling: send rate cut to %.1f calls/s",
		         ratectl_rate(&e->rate));
	if (settler_after_call(r, &res, &d)) { /* a definite answer, or time is up */
		engine_end_settling(e, r, settle_outcome_of(&d, e->draining), &d);
		return;
	}
	char exec_id[256], err[ERR_LEN];
	switch (d.kind) {
	case AT_ACCEPT:
		struct view body = aws_call_body(r->call);
		if (awserr_execution_id(body.ptr, body.len, exec_id, sizeof(exec_id), err) !=
		    CG_OK) {
			engine_finish_gateway(e, r, GW_INTERNAL_ERROR, err);
			return;
		}
		engine_release(e, r);
		if (r->follow_topic &&
		    follower_active(e->follower) >= (size_t)e->cfg->gateway.follow_max) {
			accept_refusing_follow(e, r, exec_id);
			return;
		}
		if (r->follow_topic)
			follow(e, r, exec_id);
		struct answer_env a = answer_env(e);
		answer_accepted(&a, r, exec_id, NULL);
		return;
	case AT_ANSWER_AWS:
		engine_finish_aws(e, r, d.aws);
		return;
	case AT_ANSWER_GATEWAY:
		engine_finish_gateway(e, r, d.code, d.message);
		return;
	case AT_RESIGN:
		e->aws.skew_s = d.skew_s;
		log_warn("clock skew: AWS is %+lds from local time; re-signing", e->aws.skew_s);
		break;
	case AT_REFRESH:
		cred_provider_invalidate(e->aws.creds, aws_call_cred_generation(r->call));
		break;
	case AT_THROTTLE:
		break;
	case AT_RETRY:
		e->stats.retries++;
		break;
	}
	hold(e, r, d.at_ms);
}

void engine_on_done(struct aws_call *call, void *ctx)
{
	struct engine *e = ctx;
	struct request *r = aws_call_owner(call);
	reqlist_remove(&e->flight, r);
	after_call(e, r, rt_now_ms());
}

/* A token of the send rate to start one call: 1, or 0 with the loop woken
 * when the next one is due. */
static int take_token(struct engine *e, uint64_t now)
{
	uint64_t wait = ratectl_take(&e->rate, now);
	if (wait)
		timer_arm(&e->timers, &e->rate_wake.timer, now + wait);
	return wait == 0;
}

/* Start what may start: held requests whose retry is due first (they are
 * older), then the waiting ones round-robin. A due request without a free
 * call slot waits for a call to finish (libcurl wakes the loop). */
void engine_start_ready(struct engine *e, uint64_t now)
{
	size_t max = (size_t)e->cfg->gateway.max_inflight;
	for (struct request *r = e->held.head, *next; r && e->flight.n < max; r = next) {
		next = r->next;
		if (r->next_try_ms > now)
			continue;
		if (!take_token(e, now))
			return;
		reqlist_remove(&e->held, r);
		launch(e, r, now);
	}
	while (fairq_can_pop(e->waiting) && e->flight.n < max) {
		if (!take_token(e, now))
			return;
		launch(e, (struct request *)fairq_pop(e->waiting), now);
	}
}
