/*
 * settler: the engine's side of settling (settle.h has the rule), the
 * bookkeeping of a request answered while its call's fate is unknown: it
 * stays after its reply, keeping its target's slot (fairq) and its spool
 * entry, and the engine holds it to be called again with the same body and
 * token -- the usual backoff and send rate -- until a definite answer,
 * gateway.settle_max_ms, or the gateway stops. Then it is counted, logged
 * ("settled=<outcome>") and freed, and the target's next request may start.
 * The engine keeps its lists, slots and timers; this file touches none.
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
#include "request.h"
#include "settle.h"
#include "spool.h"
#include "stats.h"
#include "view.h"

/* Views owned by the engine. */
struct settle_env {
	struct spool *spool; /* NULL without one */
	struct stats *stats;
	struct config *const *cfg; /* the engine's current one: gateway.settle_max_ms */
};

/* r, not settling, is about to be answered: 1 when its call's fate is
 * unknown and it becomes a settling request (the answer leaves it to the
 * engine, which holds it, slot kept, to be called at r->next_try_ms until
 * r->deadline_ms); 0: answer and release it as usual. */
int settler_begin(const struct settle_env *env, struct request *r);
/* A settling r could not be called (no credentials) or its time is up: 1
 * to hold it again at *at_ms; 0: its settling must end (settler_end with
 * abandoned, or stopped when draining). */
int settler_again(const struct request *r, int draining, uint64_t now_ms, uint64_t *at_ms);
/* After any call of r, whose result res led to decision d: notes what res
 * says about r's fate; 1 when r is settling and d ends that (then the
 * engine releases r and calls settler_end with settle_outcome_of(d)). */
int settler_after_call(struct request *r, const struct call_result *res,
                       const struct attempt_decision *d);
/* The settling of r ends with o (d: the last call's decision, body: what
 * AWS answered to it, or NULL and an empty view): counted, logged, its spool
 * entry done (kept when stopped). The engine then releases and frees r. */
void settler_end(const struct settle_env *env, struct request *r, enum settle_outcome o,
                 const struct attempt_decision *d, struct view body);
/* r, resumed from the spool entry res (NULL: a new arrival), is answered at
 * admission: 1 when r was answered before the restart and takes no second
 * answer (its entry is dropped, r freed). */
int settler_unadmitted(const struct settle_env *env, struct request *r, const struct resume *res);
/* r, resumed from res (NULL: a new arrival), was just queued. */
void settler_queued(const struct settle_env *env, struct request *r, const struct resume *res);
/* 1 when r, at its turn, must be answered Expired (then settled) instead of
 * called: a resumed request whose deadline passed while it waited. */
int settler_due(const struct request *r, uint64_t now_ms);

#endif
