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
 * Local publishes go out through the engine (proxy_local_fn: its outbox,
 * which holds them while the local broker is away); a forwarded request's
 * spool record ends when the broker has it (the outbox cookie).
 */
#ifndef CMDGATE_PROXY_H
#define CMDGATE_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "config_proxy.h"
#include "inbox.h"
#include "message.h"
#include "spool.h"
#include "stats.h"

/* One publish to the local broker, QoS 1, not retained. */
struct proxy_local_msg {
	const char *topic;
	const char *payload;
	size_t len;
	const char *content_type; /* NULL: none */
	long expiry_s;            /* < 0: no Message Expiry */
	uint64_t cookie;          /* spool record ended on delivery, 0: none */
};
typedef void (*proxy_local_fn)(void *ctx, const struct proxy_local_msg *m);

struct proxy;

/* pc is borrowed (the engine's configuration; proxy_reconfigure swaps it). */
struct proxy *proxy_new(const struct proxy_config *pc, struct inbox *ib, struct spool *spool,
                        proxy_local_fn local, void *local_ctx, uint64_t now);
/* Disconnect every link (up to timeout_ms each) and free. */
void proxy_free(struct proxy *p, int timeout_ms);

/* The local filters the engine's client subscribes to, in addition to the
 * routes': each thing's .../executions/+/response/json. Caller frees each
 * and the array. */
char **proxy_local_filters(const struct proxy_config *pc, size_t *n);

/* A message from a link (m->link != 0). Takes m. */
void proxy_on_link_message(struct proxy *p, struct message *m, uint64_t now);
/* A message from the local broker: 1 (taken) when it is a machine's
 * answer on a proxied thing's topic, else 0 (m left to the caller). */
int proxy_on_local_message(struct proxy *p, struct message *m, uint64_t now);
/* A spool entry found at start: 0 not the proxy's, 1 taken, -1 the
 * proxy's but of no use any more (the caller ends it). */
int proxy_resume(struct proxy *p, const struct spool_entry *e, uint64_t now, int64_t wall_now);

/* Connect due links (paced), forward requests made durable, send due
 * updates, forget what ended. Call after the spool's sync. Returns ms
 * until it wants to run again. */
uint64_t proxy_run(struct proxy *p, uint64_t now);
/* A new configuration (SIGHUP): links of removed things close, new things
 * get links; the others are not touched. */
void proxy_reconfigure(struct proxy *p, const struct proxy_config *pc);
/* Whether any link came up since the last call (for TCP_NODELAY). */
int proxy_take_link_up(struct proxy *p);

void proxy_counts(const struct proxy *p, struct stats_proxy *out);

struct outbox;
/* The engine's start and reload: *pp is started when pc appears (local
 * publishes through the outbox), reconfigured, or stopped when pc is gone. */
void proxy_reload(struct proxy **pp, const struct proxy_config *pc, struct inbox *ib,
                  struct spool *spool, struct outbox *o);

#endif
