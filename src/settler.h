/*
 * settler: the engine's side of settling (settle.h has the rule). A request
 * answered while its call's fate is unknown stays: it keeps its target's
 * slot (fairq) and its spool entry, and is called again with the same body
 * and token, through the engine's usual held list, backoff and send rate,
 * until a definite answer, gateway.settle_max_ms, or the gateway stops.
 * Then it is counted, logged ("settled=<outcome>") and freed, and the
 * target's next request may start.
 *
 * Across a restart: the spool keeps the entry (spool_settle_hold) and marks
 * it ANSWERED once the reply is delivered; such an entry is resumed only to
 * settle its call and is answered no second time. Any resumed request may
 * have had a call in flight at the crash, so its fate starts unknown.
 */
#ifndef CMDGATE_SETTLER_H
#define CMDGATE_SETTLER_H

#include <stdint.h>

#include "fairq.h"
#include "request.h"
#include "settle.h"
#include "spool.h"
#include "stats.h"

/* Views owned by the engine. */
struct settle_env {
	struct fairq *waiting;
	struct spool *spool; /* NULL without one */
	struct stats *stats;
	long max_ms; /* gateway.settle_max_ms */
	uint64_t now_ms;
};

/* r is about to be answered. 0: its target's slot is released; answer it
 * as usual. 1: its call's fate is unknown: r becomes a settling request
 * (the answer leaves it to the caller), keeps its slot and spool entry, and
 * is to be called again at r->next_try_ms, until r->deadline_ms. */
int settler_begin(const struct settle_env *env, struct request *r);
/* A settling request could not be called (credentials, the deadline): 1
 * when it is to be tried again at r->next_try_ms, else it ends (abandoned,
 * or stopped when draining) and is freed. */
int settler_again(const struct settle_env *env, struct request *r, int draining);
/* The settling of r ends with o (d: the last call's decision, or NULL): it
 * is counted and logged, its slot and spool entry released (the entry stays
 * when stopped), and r is freed. */
void settler_end(const struct settle_env *env, struct request *r, enum settle_outcome o,
                 const struct attempt_decision *d);
/* r was resumed from the spool (queued next, in its target's order): its
 * fate starts unknown, and a request answered before the restart only
 * settles. A resumed request waits for its turn past its deadline: its
 * deadline is checked when it starts (settler_due). */
void settler_resumed(const struct settle_env *env, struct request *r, int answered);
/* r may start now; 1 when it must instead be answered Expired first (a
 * resumed request whose deadline passed while it waited). */
int settler_due(const struct request *r, uint64_t now_ms);

#endif
