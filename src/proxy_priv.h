/*
 * proxy_priv: what proxy.c (requests, answers, verdicts, executions),
 * proxy_life.c (start, resume, stop) and
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
#include "proxy_topic.h"
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

/*
 * Spool records of the proxy (the spool's ADD/DONE, told apart by their token):
 *   "proxy:seen"    an execution is known (dedupe across a restart); ends
 *                   when it is forgotten. topic: AWS's request topic,
 *                   deadline: when to forget it (wall ms).
 *   "proxy:request" a request not yet taken by the local broker; ends on
 *                   delivery (outbox cookie). topic: AWS's request topic,
 *                   response topic: its Content Type, deadline: its Message
 *                   Expiry in s as received (-1 none), payload: its bytes.
 *   "proxy:answer"  an answer not yet accepted or finally rejected. topic:
 *                   AWS's answer topic, qos: its status, payload: the JSON
 *                   for AWS.
 */
#define PROXY_TOKEN_SEEN    "proxy:seen"
#define PROXY_TOKEN_REQUEST "proxy:request"
#define PROXY_TOKEN_ANSWER  "proxy:answer"

/* proxy.c: the message flow */
/* ex is looked at in this turn's timers (after the spool's sync). */
void proxy_touch(struct proxy *p, struct proxy_exec *ex, uint64_t now);
/* Queue a request for the local broker; it goes after this turn's spool
 * sync (proxy_forward_ready). seq: its spool record, or 0. */
void proxy_queue_forward(struct proxy *p, const struct proxy_topic *t, const struct message *m,
                         long expiry_s, uint64_t received_ms, uint64_t seq);
/* The forwarding timer (timer_fn). */
void proxy_forward_ready(struct timer_task *k, uint64_t now, void *ctx);
void proxy_free_fwd(struct proxy_fwd *f);
/* An execution's timer (timer_fn). */
void proxy_exec_due(struct timer_task *k, uint64_t now, void *ctx);
/* The link of thing went down (its updates in flight are sent again when
 * it is back) or came up (what waited for it goes now). */
void proxy_link_went_down(struct proxy *p, const char *thing, uint64_t now);
void proxy_link_came_up(struct proxy *p, const char *thing, uint64_t now);

#endif
