/*
 * proxy_priv: what proxy.c (requests, answers, verdicts, executions) and
 * proxy_links.c (the set of links, pacing, reload) share. Nothing else
 * includes it. Engine thread only.
 */
#ifndef CMDGATE_PROXY_PRIV_H
#define CMDGATE_PROXY_PRIV_H

#include "config_proxy.h"
#include "inbox.h"
#include "message.h"
#include "proxy_local.h"
#include "proxy_exec.h"
#include "proxy_link.h"
#include "ratectl.h"
#include "spool.h"
#include "stats.h"

/* A request made durable this turn, forwarded after the spool sync. */
struct proxy_fwd {
	struct proxy_fwd *next;
	char *topic; /* local */
	char *payload;
	size_t len;
	char *content_type;
	long expiry_s;        /* as received; < 0 none */
	uint64_t received_ms; /* monotonic */
	uint64_t seq;         /* its request record */
	char thing[PROXY_THING_MAX + 1];
	char id[PROXY_EXEC_ID_MAX + 1];
};

struct proxy {
	const struct proxy_config *pc; /* the current configuration's */
	struct proxy_config *links_pc; /* what links are made from: as at start */
	struct inbox *inbox;
	struct spool *spool;
	proxy_local_fn local;
	void *local_ctx;
	/* links */
	struct proxy_link *links;
	size_t n_links, n_up;
	uint64_t next_link_id;
	struct ratectl connects; /* proxy.connect_rate */
	int link_came_up;
	/* executions */
	struct proxy_exec **buckets;
	size_t n_buckets, n_execs;
	struct proxy_fwd *fwd_head, *fwd_tail;
	/* the engine's loop: one timer per execution (its next update, re-send
	 * or forgetting), one for the requests to forward, one for the links */
	struct timer_heap *timers;
	struct timer_task fwd_wake, links_wake;
	struct stats_proxy n;
};

/* proxy_links.c */
struct proxy_link *proxy_find_link(const struct proxy *p, const char *thing);
void proxy_links_add(struct proxy *p, const char *thing);
void proxy_links_remove_all(struct proxy *p, int timeout_ms);
/* The links' timer: connect due links while the bucket allows, TCP_NODELAY
 * after connects, armed again for the next try. */
void proxy_links_due(struct timer_task *k, uint64_t now, void *ctx);
/* A link's own event (up, down, failed); events of a removed link are
 * ignored. */
void proxy_links_on_event(struct proxy *p, struct message *m, uint64_t now);
/* The link an event is for (by id), or NULL (a link since removed). */
struct proxy_link *proxy_link_by_id(const struct proxy *p, uint64_t id);

/* Link changes (proxy_links.c). */
void proxy_reconfigure(struct proxy *p, const struct proxy_config *pc);

/* proxy_table.c: the executions by thing and executionId */
struct proxy_exec *proxy_table_find(const struct proxy *p, const char *thing, const char *id);
struct proxy_exec *proxy_table_add(struct proxy *p, const char *thing, const char *id, uint64_t now,
                                   long timeout_s);
/* Off the table (not freed). */
void proxy_table_remove(struct proxy *p, struct proxy_exec *ex);

/* proxy.c */
/* An execution's timer (timer_fn). */
void proxy_exec_due(struct timer_task *k, uint64_t now, void *ctx);
/* The link of thing went down (its updates in flight are sent again when
 * it is back) or came up (what waited for it goes now). */
void proxy_link_went_down(struct proxy *p, const char *thing, uint64_t now);
void proxy_link_came_up(struct proxy *p, const char *thing, uint64_t now);

#endif
