/*
 * proxy_priv: what proxy.c (requests, answers, verdicts, executions) and
 * proxy_links.c (the set of links, pacing, reload) share. Nothing else
 * includes it. Engine thread only.
 */
#ifndef CMDGATE_PROXY_PRIV_H
#define CMDGATE_PROXY_PRIV_H

#include "proxy.h"
#include "proxy_exec.h"
#include "proxy_link.h"
#include "ratectl.h"

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
	const struct proxy_config *pc;
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
	struct proxy_exec **dirty; /* touched this turn: looked at in proxy_run */
	size_t n_dirty, cap_dirty;
	int scan;         /* a link came up: look at every execution */
	uint64_t scan_at; /* the next full look (timeouts, backoffs, forgetting) */
	struct stats_proxy n;
};

/* proxy_links.c */
struct proxy_link *proxy_find_link(const struct proxy *p, const char *thing);
void proxy_links_add(struct proxy *p, const char *thing);
void proxy_links_remove_all(struct proxy *p, int timeout_ms);
/* Connect due links while the bucket allows; ms until the next try. */
uint64_t proxy_links_tick(struct proxy *p, uint64_t now);
/* A link's own event (up, down, failed); events of a removed link are
 * ignored. */
void proxy_links_on_event(struct proxy *p, struct message *m, uint64_t now);
/* The link an event is for (by id), or NULL (a link since removed). */
struct proxy_link *proxy_link_by_id(const struct proxy *p, uint64_t id);

/* proxy.c */
/* The link of thing went down: its updates in flight are sent again. */
void proxy_link_went_down(struct proxy *p, const char *thing, uint64_t now);

#endif
