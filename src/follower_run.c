/*
 * follower_run: what happens to follows each loop turn: due polls start
 * (round-robin across targets, within the poll rate and the in-flight
 * cap), answers go through follow.c's rules, messages are rendered and
 * offered to the publish callback (offered again a second later when it
 * cannot take them now), and follows end with one log line.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "follower_priv.h"
#include "log.h"
#include "runtime.h"

#define PUBLISH_RETRY_MS 1000

/* Put w on the loop's timers for what it waits for next: a pending
 * message's next offer, else its next poll or its deadline, whichever is
 * first. A follow in flight waits for its poll (libcurl wakes the loop). */
void follower_schedule(struct follower *f, struct follow *w)
{
	if (w->in_flight) {
		timer_disarm(f->timers, &w->wake.timer);
		return;
	}
	uint64_t at = w->due_ms;
	if (!w->pending.len && w->st.deadline_ms < at)
		at = w->st.deadline_ms;
	timer_arm(f->timers, &w->wake.timer, at);
}

void follower_set_due(struct follower *f, struct follow *w, uint64_t due_ms)
{
	w->due_ms = due_ms;
	follower_schedule(f, w);
}

/* ---- messages ----------------------------------------------------------- */

/* One line per final outcome, counted; then the follow is gone. */
static void finished(struct follower *f, struct follow *w, uint64_t now)
{
	int idx = w->end_label ? FOLLOW_NONE : (int)w->st.last;
	f->counters.finished[idx]++;
	log_info("follow thing=%s command=%s id=%s execution=%s outcome=%s%s%s polls=%u "
	         "duration_ms=%llu",
	         w->thing, w->command, w->id_json ? w->id_json : "-", w->execution_id,
	         w->end_label ? "ended" : follow_status_name(w->st.last),
	         w->end_label ? " code=" : "", w->end_label ? w->end_label : "", w->polls,
	         (unsigned long long)(now - w->st.started_ms));
	follower_free_follow(f, w);
}

/* Offer the pending message; 1 when it is done with (taken, or refused for
 * good: logged, and a final one still ends the follow). */
static int flush_pending(struct follower *f, struct follow *w, uint64_t now)
{
	uint64_t cookie = w->pending_final ? w->spool_seq : 0;
	struct mqtt_out out = {
	    .topic = w->topic,
	    .payload = view_of(w->pending.data, w->pending.len),
	    .qos = w->qos,
	    .correlation = view_of(w->corr, w->corr_len),
	};
	int rc = f->publish(f->ctx, &out, cookie);
	if (rc == MQTT_OUT_LATER) {
		follower_set_due(f, w, now + PUBLISH_RETRY_MS);
		return 0;
	}
	if (rc == MQTT_OUT_NEVER)
		log_error("follow execution=%s: message to %s refused for good", w->execution_id,
		          w->topic);
	else
		f->counters.messages++;
	sbuf_reset(&w->pending);
	follower_schedule(f, w); /* its deadline counts again */
	if (!w->pending_final && f->spool && w->spool_seq)
		spool_follow_status(f->spool, w->spool_seq, (uint8_t)w->pending_status);
	return 1;
}

/* Render and publish what step asks for; frees w when it was the end.
 * Returns 1 when w is gone. */
static int apply(struct follower *f, struct follow *w, const struct follow_step *step,
                 const struct follow_answer *a, uint64_t now)
{
	if (!step->final)
		follower_set_due(f, w, step->next_poll_ms);
	if (!step->publish)
		return 0;
	sbuf_reset(&w->pending);
	if (step->code) {
		follow_render_end(&w->pending, w->id_json, w->execution_id, step->status,
		                  step->code, step->retryable);
		w->end_label = step->code; /* a literal or text in w->st: lives as long as w */
	} else {
		follow_render_status(&w->pending, w->id_json, w->execution_id, a, step->final);
	}
	w->pending_final = step->final;
	w->pending_status = step->status;
	if (!flush_pending(f, w, now))
		return 0;
	if (!step->final)
		return 0;
	finished(f, w, now);
	return 1;
}

/* ---- polls -------------------------------------------------------------- */

static enum cg_err start_poll(struct follower *f, struct follow *w, uint64_t now, char *err)
{
	struct aws_signable s = {.method = "GET", .path = w->path, .query = w->query};
	long timeout = f->o.request_timeout_ms > 0 ? f->o.request_timeout_ms : 10000;
	enum cg_err rc = aws_call_start(f->aws, &f->ep, &s, timeout, w->call, err);
	if (rc == CG_OK) {
		w->in_flight = 1;
		follower_schedule(f, w);
		w->sent_ms = now;
		f->inflight++;
		w->target->last_ms = now;
	}
	return rc;
}

/* A failure of w's poll; gateway codes for what never reached AWS. */
static void failed(struct follower *f, struct follow *w, int http_status, const char *code,
                   int retryable, uint64_t now)
{
	struct follow_step step;
	follow_on_failure(&w->st, http_status, code, retryable, now, rt_random_u32(), &step);
	log_debug("follow execution=%s poll failed: %s (HTTP %d)", w->execution_id, code,
	          http_status);
	apply(f, w, &step, NULL, now);
}

/* A 2xx: AWS's answer goes through follow.c's rules. w may be gone when
 * this returns. */
static void answered(struct follower *f, struct follow *w, int http_status, uint64_t now)
{
	struct view body = aws_call_body(w->call);
	struct follow_answer a;
	char err[ERR_LEN];
	if (follow_parse_answer(body.ptr, body.len, &a, err) != CG_OK) {
		log_warn("GetCommandExecution: %s", err);
		f->counters.poll_errors++;
		failed(f, w, http_status, "InternalError", 1, now);
		return;
	}
	attempt_init(&w->at); /* an answer: the next skew or expiry may be retried again */
	struct follow_step step;
	follow_on_answer(&w->st, &a, now, rt_random_u32(), &step);
	apply(f, w, &step, &a, now);
	follow_answer_clean_up(&a);
}

/*
 * What a finished poll means, decided as for a start (attempt_decide): an
 * answer; a re-sign with AWS's clock or a credentials refresh, once each
 * between answers; or a failure, which follow.c's schedule retries (a poll
 * is retried by the next poll, so the decision's own retry time is not
 * used). w may be gone when this returns.
 */
void follower_on_poll_done(struct aws_call *call, void *ctx)
{
	struct follower *f = ctx;
	struct follow *w = aws_call_owner(call);
	uint64_t now = rt_now_ms();
	w->in_flight = 0;
	f->inflight--;
	f->counters.polls++;
	w->polls++;
	struct awserr ae;
	struct call_result res;
	aws_call_read(call, &ae, &res);
	if (res.transport == CG_OK)
		ratectl_on_answer(&f->rate, now, res.aws && res.aws->throttled, w->sent_ms);
	struct attempt_policy p = {.max_attempts = UINT_MAX};
	struct attempt_decision d;
	attempt_decide(&w->at, &p, &res, now, w->st.deadline_ms, rt_random_u32(), &d);
	if (d.kind == AT_ACCEPT) {
		answered(f, w, (int)res.http_status, now);
		return;
	}
	f->counters.poll_errors++;
	if (d.kind == AT_RESIGN) {
		f->aws->skew_s = d.skew_s; /* the one clock offset: starts use it too */
		follower_set_due(f, w, d.at_ms);
	} else if (d.kind == AT_REFRESH) {
		cred_provider_invalidate(f->aws->creds, aws_call_cred_generation(call));
		follower_set_due(f, w, d.at_ms);
	} else if (res.transport != CG_OK) { /* never answered: the gateway's code */
		failed(f, w, 0, "Unavailable", cg_can_retry(res.transport), now);
	} else {
		failed(f, w, (int)res.http_status, ae.code, ae.retryable, now);
	}
}

/* The due follow whose target was served least recently; NULL: none due. */
static struct follow *pick_due(struct follower *f, uint64_t now)
{
	struct follow *best = NULL;
	for (struct follow *w = f->head; w; w = w->next) {
		if (w->in_flight || w->pending.len || w->due_ms > now)
			continue;
		if (!best || w->target->last_ms < best->target->last_ms ||
		    (w->target->last_ms == best->target->last_ms && w->due_ms < best->due_ms))
			best = w;
	}
	return best;
}

void follower_run(struct follower *f, uint64_t now)
{
	struct follow_step step;
	for (struct follow *w = f->head, *next; w; w = next) {
		next = w->next;
		if (w->in_flight)
			continue;
		if (w->pending.len) {
			if (w->due_ms <= now && flush_pending(f, w, now) && w->pending_final)
				finished(f, w, now);
			continue;
		}
		if (follow_check_deadline(&w->st, now, &step))
			apply(f, w, &step, NULL, now);
	}
	while (f->inflight < f->o.max_inflight) {
		struct follow *w = pick_due(f, now);
		if (!w)
			break;
		uint64_t wait = ratectl_take(&f->rate, now);
		if (wait) {
			timer_arm(f->timers, &f->rate_wake.timer, now + wait);
			break;
		}
		char err[ERR_LEN] = "";
		enum cg_err rc = start_poll(f, w, now, err);
		if (rc == CG_OK)
			continue;
		/* no credentials, or curl refused: a failed poll on the schedule
		 * (not counted as a poll: nothing was sent) */
		w->target->last_ms = now;
		if (rc == CG_CREDENTIALS)
			failed(f, w, 0, "CredentialsUnavailable", 1, now);
		else
			failed(f, w, 0, "InternalError", 1, now);
	}
}

void follower_shutdown(struct follower *f)
{
	uint64_t now = rt_now_ms();
	size_t kept = 0;
	while (f->head) {
		struct follow *w = f->head;
		if (w->in_flight) {
			aws_call_abort(f->aws, w->call);
			w->in_flight = 0;
			f->inflight--;
		}
		if (f->spool && w->spool_seq && !w->pending_final) {
			kept++;
			follower_free_follow(f, w);
			continue;
		}
		if (!w->pending_final) {
			sbuf_reset(&w->pending);
			follow_render_end(&w->pending, w->id_json, w->execution_id, w->st.last,
			                  "Unavailable", 1);
			w->pending_final = 1;
			w->end_label = "Unavailable";
		}
		flush_pending(f, w, now);
		finished(f, w, now);
	}
	if (kept)
		log_info("stopping: %zu follow(s) stay in the spool", kept);
}
