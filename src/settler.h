/*
 * settler: the engine's side of settling (settle.h has the rule). A request
 * answered while its call's fate is unknown stays: it keeps its target's
 * slot (fairq) and its spool entry, and waits on the engine's held list to
 * be called again with the same body and token -- the usual backoff and
 * send rate -- until a definite answer, gateway.settle_max_ms, or the
 * gateway stops. Then it is counted, logged ("settled=<outcome>") and
 * freed, and the target's next request may start.
 *
 * Across a restart: the spool keeps the entry (spool_settle_hold) and marks
 * it ANSWERED once the reply is delivered; such an entry is resumed only to
 * settle its call and is answered no second time. Any resumed request may
 * have had a call in flight at the crash, so its fate starts unknown, and it
 * waits for its turn even past its deadline (then it is answered Expired
 * when its turn comes, and settled).
 */
#ifndef CMDGATE_SETTLER_H
#define CMDGATE_SETTLER_H

#include <stdint.h>

#include "config.h"
#include "fairq.h"
#include "request.h"
#include "settle.h"
#include "spool.h"
#include "stats.h"

/* Views owned by the engine. */
struct settle_env {
	struct fairq *waiting;
	struct reqlist *held; /* settling requests wait here for their next call */
	struct spool *spool;  /* NULL without one */
	struct stats *stats;
	struct config *const *cfg; /* the engine's current one: gateway.settle_max_ms */
};

/* r is about to be answered. 0: answer it; its target's slot is released,
 * or, when its call's fate is unknown, r becomes a settling request on the
 * held list, which the answer leaves alone. 1: r is settling already: no
 * answer; it is held again, or its settling ends (abandoned, or stopped
 * when draining) and r is freed. */
int settler_on_answer(const struct settle_env *env, struct request *r, int draining);
/* After any call of r, whose result res led to decision d: notes what res
 * says about r's fate (settle_note), and returns 1 when r was settling and
 * d ends that (r counted, logged and freed). */
int settler_after_call(const struct settle_env *env, struct request *r,
                       const struct call_result *res, const struct attempt_decision *d,
                       int draining);
/* The gateway stops: 1 when r was settling (its spool entry stays; r freed). */
int settler_stop(const struct settle_env *env, struct request *r);
/* Admission of r, resumed from the spool entry res (NULL: a new arrival),
 * answered at once (not queued): 1 when r, answered before the restart,
 * takes no second answer: its entry is dropped and r freed. */
int settler_unadmitted(const struct settle_env *env, struct request *r, const struct resume *res);
/* r, resumed from res (NULL: a new arrival), is about to be queued. */
void settler_queued(const struct settle_env *env, struct request *r, const struct resume *res);
/* 1 when r, at its turn, must be answered Expired (then settled) instead of
 * called: a resumed request whose deadline passed while it waited. */
int settler_due(const struct request *r, uint64_t now_ms);

#endif
