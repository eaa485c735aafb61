/*
 * settle: the rule for calls whose fate is unknown (SPEC section 5,
 * "Ordering"). Pure: a finished call's result and the attempt decision come
 * in; whether the call must be settled, and how a settling call ended, come
 * out.
 *
 * A call that may have reached AWS and got no definite answer (a timeout or
 * a dropped connection after the body was sent, a 5xx) may or may not have
 * created its execution, now or later. Such a request keeps its target's
 * slot after its reply until a repeat of the same body and client token gets
 * a definite answer: AWS's idempotency makes that repeat return the
 * execution if it exists and create it now otherwise, so the target's next
 * request starts only once this one's execution is pinned down. A 2xx or a
 * 4xx about the body (400, 404, 409) is definite. A call that never left
 * (refused, DNS, connect timeout), a 429 or an authentication refusal (401,
 * 403: checked before the token is looked up) says nothing about an earlier
 * call; a settling call that meets a final 403 ends "refused" all the same,
 * as no later call can get through either.
 *
 * AWS answers a repeat the same way whether it created the execution or had
 * it already, so "accepted" cannot say which.
 */
#ifndef CMDGATE_SETTLE_H
#define CMDGATE_SETTLE_H

#include <stdint.h>

#include "attempt.h"

struct settle_state {
	int unknown;       /* a call may have acted at AWS and nothing definite came since */
	int active;        /* answered; kept only to settle its call */
	uint64_t began_ms; /* when settling began */
	unsigned calls;    /* settling calls finished */
};

enum settle_outcome {
	SETTLE_ACCEPTED,  /* 2xx: the execution exists (created now or before) */
	SETTLE_REFUSED,   /* a definite 4xx: no execution */
	SETTLE_ABANDONED, /* gateway.settle_max_ms passed: the fate stays unknown */
	SETTLE_STOPPED,   /* the gateway stopped: the spool keeps it for the next start */
};

/* What a finished call says about the request's fate. */
void settle_note(struct settle_state *st, const struct call_result *res);
/* Whether d, for a settling request, ends the settling. */
int settle_is_final(const struct attempt_decision *d);
/* How a final decision ends the settling. */
enum settle_outcome settle_outcome_of(const struct attempt_decision *d, int draining);
const char *settle_outcome_name(enum settle_outcome o);

#endif
