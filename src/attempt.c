/* attempt: see attempt.h. One function per kind of answer. */
#include "attempt.h"

#include <stdio.h>
#include <string.h>

#include "backoff.h"

/* Leave this much before the deadline for one last call while AWS is
 * unreachable. */
#define LAST_TRY_MARGIN_MS 50

void attempt_init(struct attempt_state *st)
{
	memset(st, 0, sizeof(*st));
}

void attempt_begin(struct attempt_state *st)
{
	st->attempts++;
}

static void give_back(struct attempt_state *st)
{
	if (st->attempts)
		st->attempts--;
}

static void answer_last(const struct attempt_state *st, struct attempt_decision *out)
{
	if (st->last_was_aws) {
		out->kind = AT_ANSWER_AWS;
		out->aws = &st->last_aws;
	} else {
		out->kind = AT_ANSWER_GATEWAY;
		out->code = GW_UNAVAILABLE;
		out->message = st->last_err;
	}
}

void attempt_at_deadline(const struct attempt_state *st, struct attempt_decision *out)
{
	memset(out, 0, sizeof(*out));
	if (st->last_was_aws || st->last_err[0]) {
		answer_last(st, out);
		return;
	}
	out->kind = AT_ANSWER_GATEWAY;
	out->code = GW_EXPIRED;
	out->message = "the deadline passed before AWS answered";
}

/* Retry with backoff if attempts, deadline and shutdown allow; else answer
 * with the last failure. */
static void retry_or_answer(struct attempt_state *st, const struct attempt_policy *p, int not_sent,
                            uint64_t now, uint64_t deadline, uint32_t rnd,
                            struct attempt_decision *out)
{
	if (not_sent) {
		give_back(st);
		st->waits++;
	}
	unsigned step = st->attempts + st->waits;
	uint64_t delay = backoff_full_jitter(step ? step : 1, p->base_ms, p->cap_ms, rnd);
	if (not_sent && now + delay >= deadline && now + LAST_TRY_MARGIN_MS < deadline)
		delay = deadline - now - LAST_TRY_MARGIN_MS;
	if (st->attempts >= p->max_attempts || now + delay >= deadline || p->draining) {
		answer_last(st, out);
		return;
	}
	out->kind = AT_RETRY;
	out->at_ms = now + delay;
}

static void after_transport_failure(struct attempt_state *st, const struct attempt_policy *p,
                                    const struct call_result *res, uint64_t now, uint64_t deadline,
                                    uint32_t rnd, struct attempt_decision *out)
{
	/* A call sent and cut off at the deadline: AWS did not answer in time.
	 * One refused before anything was sent says the endpoint is
	 * unreachable, even when the refusal is seen just after the deadline
	 * (the last try goes LAST_TRY_MARGIN_MS before it; a busy host may
	 * take longer to report it). */
	if (now >= deadline && !res->not_sent) {
		out->kind = AT_ANSWER_GATEWAY;
		out->code = GW_EXPIRED;
		out->message = "the deadline passed before AWS answered";
		return;
	}
	snprintf(st->last_err, sizeof(st->last_err), "endpoint unreachable: %.180s (%s)",
	         res->transport_msg ? res->transport_msg : "", cg_strerror(res->transport));
	st->last_was_aws = 0;
	if (!cg_can_retry(res->transport)) { /* e.g. a malformed endpoint URL */
		answer_last(st, out);
		return;
	}
	retry_or_answer(st, p, res->not_sent, now, deadline, rnd, out);
}

static void after_error_response(struct attempt_state *st, const struct attempt_policy *p,
                                 const struct call_result *res, uint64_t now, uint64_t deadline,
                                 uint32_t rnd, struct attempt_decision *out)
{
	const struct awserr *ae = res->aws;
	if (ae->clock_skew && !st->skew_retried && res->have_server_time) {
		st->skew_retried = 1;
		give_back(st); /* a re-signed call is not a new attempt */
		out->kind = AT_RESIGN;
		out->skew_s = (long)(res->server_time - res->local_time);
		out->at_ms = now;
		return;
	}
	if (ae->expired_token && !st->token_retried) {
		st->token_retried = 1;
		give_back(st);
		out->kind = AT_REFRESH;
		out->at_ms = now + ATTEMPT_REFRESH_DELAY_MS;
		return;
	}
	if (!ae->retryable) {
		out->kind = AT_ANSWER_AWS;
		out->aws = ae;
		return;
	}
	st->last_aws = *ae;
	st->last_was_aws = 1;
	if (ae->throttled) {
		/* The account's quota, not this request: wait for a free send slot
		 * to the deadline, using up no attempt. */
		st->throttled++;
		give_back(st);
		if (now >= deadline || p->draining) {
			answer_last(st, out);
			return;
		}
		out->kind = AT_THROTTLE;
		out->at_ms = now;
		return;
	}
	retry_or_answer(st, p, 0, now, deadline, rnd, out);
}

void attempt_decide(struct attempt_state *st, const struct attempt_policy *p,
                    const struct call_result *res, uint64_t now_ms, uint64_t deadline_ms,
                    uint32_t rnd, struct attempt_decision *out)
{
	memset(out, 0, sizeof(*out));
	if (res->transport != CG_OK)
		after_transport_failure(st, p, res, now_ms, deadline_ms, rnd, out);
	else if (res->http_status >= 200 && res->http_status < 300)
		out->kind = AT_ACCEPT;
	else
		after_error_response(st, p, res, now_ms, deadline_ms, rnd, out);
}
