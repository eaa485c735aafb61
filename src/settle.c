/* settle: see settle.h. */
#include "settle.h"

void settle_note(struct settle_state *st, const struct call_result *res)
{
	if (st->active)
		st->calls++;
	if (res->transport != CG_OK) {
		if (!res->not_sent)
			st->unknown = 1;
	} else if (res->http_status >= 500) {
		st->unknown = 1;
	} else if (res->http_status < 300 || (res->http_status != 429 && res->http_status != 401 &&
	                                      res->http_status != 403)) {
		st->unknown = 0; /* 2xx, or a 4xx about the body that any repeat gets too */
	}
}

int settle_is_final(const struct attempt_decision *d)
{
	return d->kind == AT_ACCEPT || d->kind == AT_ANSWER_AWS || d->kind == AT_ANSWER_GATEWAY;
}

enum settle_outcome settle_outcome_of(const struct attempt_decision *d, int draining)
{
	if (d->kind == AT_ACCEPT)
		return SETTLE_ACCEPTED;
	if (d->kind == AT_ANSWER_AWS && !d->aws->retryable)
		return SETTLE_REFUSED;
	return draining ? SETTLE_STOPPED : SETTLE_ABANDONED;
}

const char *settle_outcome_name(enum settle_outcome o)
{
	switch (o) {
	case SETTLE_ACCEPTED:
		return "accepted";
	case SETTLE_REFUSED:
		return "refused";
	case SETTLE_ABANDONED:
		return "abandoned";
	case SETTLE_STOPPED:
		break;
	}
	return "stopped";
}
