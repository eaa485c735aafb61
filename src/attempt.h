/*
 * attempt: what happens after a call to AWS. Pure: the request's retry
 * state, the call's result, the time and a random number come in; a
 * decision comes out. The engine carries it out and nothing else decides.
 *
 *   answer   accepted (2xx), an AWS rejection, or a gateway code
 *   retry    same body, same token, at a time chosen with capped
 *            exponential backoff and full jitter (5xx, timeouts, transport)
 *   resign   the clock is off: keep the server's offset, re-sign now
 *   refresh  the session token expired: refresh credentials, re-sign
 *   throttle back to its place, to start at the next free send slot
 *
 * Every decision other than "answer" keeps the request's place in its
 * target's order: the engine holds the target's slot until it is answered.
 *
 * Counting: attempt_begin counts a call that may reach AWS. A call that
 * never left (refused, DNS, connect timeout), a re-signed call and a
 * throttled call give their attempt back, so only calls AWS may have acted
 * on use up aws.max_attempts; the others wait to the deadline.
 */
#ifndef CMDGATE_ATTEMPT_H
#define CMDGATE_ATTEMPT_H

#include <stdint.h>
#include <time.h>

#include "awserr.h"
#include "err.h"
#include "reply.h"

struct attempt_state {
	unsigned attempts; /* calls AWS may have acted on */
	unsigned waits;    /* retries that used no attempt */
	int skew_retried, token_retried;
	unsigned throttled; /* 429s met */
	/* the last failure, for the answer when retries run out */
	int last_was_aws;
	struct awserr last_aws;
	char last_err[ERR_LEN];
};

struct attempt_policy {
	unsigned max_attempts;
	uint64_t base_ms, cap_ms; /* retry backoff */
	int draining;             /* the gateway is stopping: no new retries */
};

/* What came back from one call. */
struct call_result {
	enum cg_err transport; /* CG_OK: a response arrived (any status) */
	int not_sent;          /* failed before reaching the endpoint */
	const char *transport_msg;
	long http_status;
	const struct awserr *aws; /* parsed, for a non-2xx response */
	int have_server_time;     /* the response's Date could be read */
	time_t server_time, local_time;
};

enum attempt_kind {
	AT_ACCEPT,
	AT_ANSWER_AWS,     /* answer with decision.aws */
	AT_ANSWER_GATEWAY, /* answer with decision.code and .message */
	AT_RETRY,
	AT_RESIGN,  /* set the clock offset to decision.skew_s, then call at .at_ms */
	AT_REFRESH, /* invalidate the credentials used, then call at .at_ms */
	AT_THROTTLE,
};

struct attempt_decision {
	enum attempt_kind kind;
	uint64_t at_ms; /* when to call again */
	long skew_s;
	const struct awserr *aws; /* points into the result or the state */
	enum gw_code code;
	const char *message; /* points into the state */
};

/* Delay before re-signing after an expired session token (time for the
 * refresh to land). */
#define ATTEMPT_REFRESH_DELAY_MS 300

void attempt_init(struct attempt_state *st);
/* A call is about to start. */
void attempt_begin(struct attempt_state *st);
void attempt_decide(struct attempt_state *st, const struct attempt_policy *p,
                    const struct call_result *res, uint64_t now_ms, uint64_t deadline_ms,
                    uint32_t rnd, struct attempt_decision *out);
/* The deadline of a request waiting for its next call passed: answered
 * with its last answer from AWS (e.g. a 429), Unavailable if the endpoint
 * was unreachable, Expired if no call has ended yet. */
void attempt_at_deadline(const struct attempt_state *st, struct attempt_decision *out);

#endif
