/* settler: see settler.h. */
#include "settler.h"

#include <stdio.h>
#include <string.h>

#include "awserr.h"
#include "backoff.h"
#include "log.h"
#include "runtime.h"

/* A settling call that could not start tries again after this long. */
#define SETTLE_RETRY_MS 1000
/* The first settling call waits like a first retry. */
#define SETTLE_BASE_MS 100
#define SETTLE_CAP_MS  5000

static void become_settling(const struct settle_env *env, struct request *r, int answered,
                            uint64_t now)
{
	r->settle.unknown = 1;
	r->settle.active = 1;
	r->settle.began_ms = now;
	r->settle.calls = 0;
	/* r->at stays: the answer about to go out reads its last failure, and
	 * the settling calls' backoff goes on from the attempts made */
	r->deadline_ms = now + (uint64_t)(*env->cfg)->gateway.settle_max_ms;
	if (env->spool && r->spool_seq)
		spool_settle_hold(env->spool, r->spool_seq, answered);
	env->stats->settle.settling++;
}

int settler_begin(const struct settle_env *env, struct request *r)
{
	if (!r->settle.unknown)
		return 0;
	uint64_t now = rt_now_ms();
	become_settling(env, r, 0, now);
	r->next_try_ms =
	    now + backoff_full_jitter(1, SETTLE_BASE_MS, SETTLE_CAP_MS, rt_random_u32());
	log_info("settle thing=%s token=%s: the call's fate is unknown; the target's next request "
	         "waits until AWS answers a repeat (at most %ld ms)",
	         r->thing, r->tr.client_token, (*env->cfg)->gateway.settle_max_ms);
	return 1;
}

int settler_again(const struct request *r, int draining, uint64_t now_ms, uint64_t *at_ms)
{
	*at_ms = now_ms + SETTLE_RETRY_MS;
	return !draining && *at_ms < r->deadline_ms;
}

int settler_after_call(struct request *r, const struct call_result *res,
                       const struct attempt_decision *d)
{
	settle_note(&r->settle, res);
	return r->settle.active && settle_is_final(d);
}

/* What AWS said, for the log line. */
static void describe(struct view body, enum settle_outcome o, const struct attempt_decision *d,
                     char *out, size_t n)
{
	char err[ERR_LEN], exec_id[256];
	out[0] = '\0';
	if (o == SETTLE_ACCEPTED && body.ptr &&
	    awserr_execution_id(body.ptr, body.len, exec_id, sizeof(exec_id), err) == CG_OK)
		snprintf(out, n, " executionId=%s", exec_id);
	else if (d && d->kind == AT_ANSWER_AWS)
		snprintf(out, n, " code=%s httpStatus=%d", d->aws->code, d->aws->http_status);
	else if (d && d->kind == AT_ANSWER_GATEWAY)
		snprintf(out, n, " last=\"%.200s\"", d->message ? d->message : "");
}

static void count(struct stats_settle *s, const struct request *r, enum settle_outcome o)
{
	if (s->settling)
		s->settling--;
	s->calls += r->settle.calls;
	if (o == SETTLE_ACCEPTED)
		s->accepted++;
	else if (o == SETTLE_REFUSED)
		s->refused++;
	else if (o == SETTLE_ABANDONED)
		s->abandoned++;
}

void settler_end(const struct settle_env *env, struct request *r, enum settle_outcome o,
                 const struct attempt_decision *d, struct view body)
{
	count(&env->stats->settle, r, o);
	char what[400];
	describe(body, o, d, what, sizeof(what));
	unsigned long long ms = rt_now_ms() - r->settle.began_ms;
	if (o == SETTLE_ABANDONED) /* the target's order is no longer known to hold */
		log_warn("settled thing=%s token=%s settled=%s calls=%u ms=%llu%s", r->thing,
		         r->tr.client_token, settle_outcome_name(o), r->settle.calls, ms, what);
	else
		log_info("settled thing=%s token=%s settled=%s calls=%u ms=%llu%s", r->thing,
		         r->tr.client_token, settle_outcome_name(o), r->settle.calls, ms, what);
	if (env->spool && r->spool_seq && o != SETTLE_STOPPED)
		spool_settle_end(env->spool, r->spool_seq);
	r->settle.active = 0;
}

int settler_unadmitted(const struct settle_env *env, struct request *r, const struct resume *res)
{
	if (!res || !res->answered)
		return 0; /* answered now, as any request */
	log_warn("spool: token=%s, answered before the restart, cannot be admitted again; its "
	         "call is not settled",
	         r->tr.client_token);
	if (env->spool && r->spool_seq)
		spool_done(env->spool, r->spool_seq);
	request_free(r);
	return 1;
}

void settler_queued(const struct settle_env *env, struct request *r, const struct resume *res)
{
	if (!res)
		return;
	r->fq.deadline_ms = UINT64_MAX; /* never expires unstarted: settler_due */
	if (!res->answered) {
		r->settle.unknown = 1;
		return;
	}
	become_settling(env, r, 1, rt_now_ms());
	log_info("settle thing=%s token=%s: answered before the restart; its call is settled "
	         "before the target's next request starts",
	         r->thing, r->tr.client_token);
}

int settler_due(const struct request *r, uint64_t now_ms)
{
	return r->settle.unknown && !r->settle.active && now_ms >= r->deadline_ms;
}
