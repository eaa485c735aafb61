/*
 * proxy_exec: the per-execution update rules of SPEC 9. The head of the
 * queue is the one update AWS may be applying; everything else waits
 * behind it. Only the verdict moves the queue.
 */
#include "proxy_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "runtime.h"

void proxy_exec_init(struct proxy_exec *ex, const char *thing, const char *id, uint64_t now,
                     long timeout_s)
{
	memset(ex, 0, sizeof(*ex));
	snprintf(ex->thing, sizeof(ex->thing), "%s", thing);
	snprintf(ex->id, sizeof(ex->id), "%s", id);
	uint64_t t = (uint64_t)(timeout_s >= 0 ? timeout_s : PROXY_DEFAULT_TIMEOUT_S);
	ex->forget_ms = now + t * 1000 + PROXY_GRACE_MS;
}

long proxy_expiry_left(long expiry_s, uint64_t received_ms, uint64_t now)
{
	if (expiry_s < 0)
		return -1;
	uint64_t total = (uint64_t)expiry_s * 1000;
	/* Some time has always passed since the broker stamped expiry_s (and
	 * the clock counts whole ms): at least 1 ms, so a request that came
	 * with 1 s is expired, and 30 s become 29, on every machine alike. */
	uint64_t gone = now > received_ms ? now - received_ms : 0;
	gone = gone ? gone : 1;
	if (gone >= total)
		return 0;
	return (long)((total - gone) / 1000);
}

void proxy_exec_answer(struct proxy_exec *ex, struct proxy_update *u, uint64_t now)
{
	u->next = NULL;
	if (ex->tail)
		ex->tail->next = u;
	else
		ex->head = u;
	ex->tail = u;
	ex->n_updates++;
	if (ex->state == PX_IDLE) {
		ex->state = PX_DUE;
		ex->next_ms = now;
		ex->retries = 0;
	}
}

int proxy_exec_send_due(const struct proxy_exec *ex, uint64_t now)
{
	return ex->head && ex->state != PX_IDLE && now >= ex->next_ms;
}

void proxy_exec_sent(struct proxy_exec *ex, uint64_t now, uint64_t update_timeout_ms)
{
	ex->head->sends++;
	ex->state = PX_FLIGHT;
	ex->next_ms = now + update_timeout_ms;
}

void proxy_exec_link_lost(struct proxy_exec *ex, uint64_t now)
{
	if (ex->state == PX_FLIGHT) {
		ex->state = PX_DUE;
		ex->next_ms = now;
	}
}

/* The head is done: off the queue, the next (if any) due now. */
static struct proxy_update *pop(struct proxy_exec *ex, uint64_t now)
{
	struct proxy_update *u = ex->head;
	ex->head = u->next;
	if (!ex->head)
		ex->tail = NULL;
	ex->n_updates--;
	u->next = NULL;
	ex->retries = 0;
	ex->state = ex->head ? PX_DUE : PX_IDLE;
	ex->next_ms = now;
	return u;
}

static int resent(const struct proxy_update *u)
{
	return u->sends >= 2 || (u->sends >= 1 && u->sent_before);
}

enum proxy_verdict proxy_exec_verdict(struct proxy_exec *ex, int accepted, const char *code,
                                      uint64_t now, uint32_t rnd, struct proxy_update **done)
{
	*done = NULL;
	struct proxy_update *u = ex->head;
	if (!u || u->sends == 0)
		return PXV_STRAY;
	if (!accepted &&
	    (strcmp(code, "DataConflict") == 0 || strcmp(code, "RequestThrottled") == 0)) {
		ex->retries++;
		ex->state = PX_DUE;
		ex->next_ms = now + backoff_equal_jitter(ex->retries, PROXY_RETRY_BASE_MS,
		                                         PROXY_RETRY_CAP_MS, rnd);
		return PXV_RETRY;
	}
	enum proxy_verdict v = PXV_RELAY;
	if (!accepted && strcmp(code, "TerminalStateReached") == 0 &&
	    proxy_status_terminal(u->status) && resent(u)) {
		v = PXV_RELAY_ACCEPTED;
		accepted = 1;
	}
	if (accepted) {
		ex->last_status = u->status;
		if (proxy_status_terminal(u->status))
			ex->final_accepted = 1;
	}
	*done = pop(ex, now);
	return v;
}

uint64_t proxy_exec_next_ms(const struct proxy_exec *ex)
{
	if (ex->head)
		return ex->next_ms;
	return ex->final_accepted ? 0 : ex->forget_ms;
}

int proxy_exec_forgettable(const struct proxy_exec *ex, uint64_t now)
{
	return !ex->head && (ex->final_accepted || now >= ex->forget_ms);
}

struct proxy_update *proxy_update_new(const char *body, size_t len, enum proxy_status st,
                                      uint64_t now)
{
	struct proxy_update *u = rt_calloc(1, sizeof(*u));
	u->body = rt_memdup(body, len);
	u->len = len;
	u->status = st;
	u->taken_ms = now;
	return u;
}

void proxy_update_free(struct proxy_update *u)
{
	if (!u)
		return;
	free(u->body);
	free(u);
}

void proxy_exec_clean_up(struct proxy_exec *ex)
{
	while (ex->head) {
		struct proxy_update *u = ex->head;
		ex->head = u->next;
		proxy_update_free(u);
	}
	ex->tail = NULL;
	ex->n_updates = 0;
}
