/*
 * proxy: cmdgate standing in for LAN machines on AWS IoT Core (SPEC 9),
 * the engine's half. It owns the links (one per proxied thing), the table
 * of known executions and the proxy's spool records, and is driven by the
 * engine thread alone:
 *
 *   link --request--> dedupe, spool --(after the spool sync)--> local publish
 *   local answer --check--> spool, queue --(link up)--> AWS
 *   AWS verdict --proxy_exec rules--> local accepted/rejected, once
 *
 * Everything it waits for is a timer on the engine loop's heap, run after
 * the turn's spool sync: each execution's next update, re-send, backoff or
 * forgetting; the requests to forward; the links' next connect.
 *
 * Local publishes go out through the engine (proxy_local_fn: its outbox,
 * which holds them while the local broker is away); a forwarded request's
 * spool record ends when the broker has it (the outbox cookie).
 */
#ifndef CMDGATE_PROXY_H
#define CMDGATE_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "inbox.h"
#include "message.h"
#include "proxy_local.h"
#include "spool.h"
#include "stats.h"
#include "timer.h"

struct proxy;

/* pc is borrowed (the engine's configuration; a reload swaps it). Its
 * timers go on the engine loop's heap (timer_task entries). */
struct proxy *proxy_new(const struct proxy_config *pc, struct inbox *ib, struct spool *spool,
                        struct timer_heap *timers, proxy_local_fn local, void *local_ctx,
                        uint64_t now);
/* Disconnect every link (up to timeout_ms each) and free. */
void proxy_free(struct proxy *p, int timeout_ms);

/* What the engine's local client subscribes to: the routes' filters, then
 * each proxied thing's .../executions/+/response/json. Owned: free with
 * proxy_free_filters. */
struct proxy_filters {
	char **v;
	size_t n;
};
struct proxy_filters proxy_filters(const struct config *c);
void proxy_free_filters(struct proxy_filters *f);

/* A message the inbox handed over: 1 when it was the proxy's (taken: an
 * event or publish of a link, or a machine's answer on a proxied thing's
 * topic), else 0 (m left to the caller). p may be NULL (no proxy: a link's
 * late event is dropped). */
int proxy_take_message(struct proxy *p, struct message *m, uint64_t now);
/* A spool entry found at start: 1 when it was the proxy's (resumed, or
 * ended in spool when of no use any more), 0 when not. p may be NULL. */
int proxy_resume(struct proxy *p, struct spool *spool, const struct spool_entry *e, uint64_t now,
                 int64_t wall_now);

/* The counts now, or NULL when p is NULL (nothing rendered); valid until
 * the next call of a proxy function. */
const struct stats_proxy *proxy_stats(struct proxy *p);

struct outbox;
/* The engine's start, reload and stop: *pp is started when pc appears
 * (local publishes through the outbox), reconfigured (keys that need a
 * restart are logged), or stopped when pc is NULL. */
void proxy_reload(struct proxy **pp, const struct proxy_config *pc, struct inbox *ib,
                  struct spool *spool, struct outbox *o, struct timer_heap *timers);

#endif
