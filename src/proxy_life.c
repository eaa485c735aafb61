/*
 * proxy_life: a proxy's life around the message flow of proxy.c: made at
 * start (one link per configured thing), resumed from the spool's records
 * after a restart, changed by SIGHUP, freed at stop; and what the engine
 * reads of it (its MQTT filters, its stats). Engine thread only.
 */
#include "proxy.h"

#include "mqtt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outbox.h"
#include "proxy_priv.h"
#include "runtime.h"

struct proxy *proxy_new(const struct proxy_config *pc, struct inbox *ib, struct spool *spool,
                        struct timer_heap *timers, proxy_local_fn local, void *local_ctx,
                        uint64_t now)
{
	struct proxy *p = rt_calloc(1, sizeof(*p));
	p->pc = pc;
	p->links_pc = config_proxy_link_part(pc);
	p->timers = timers;
	timer_task_init(&p->fwd_wake, proxy_forward_ready);
	timer_task_init(&p->links_wake, proxy_links_due);
	timer_arm(timers, &p->links_wake.timer, now);
	p->inbox = ib;
	p->spool = spool;
	p->local = local;
	p->local_ctx = local_ctx;
	p->n_buckets = 64;
	p->buckets = rt_calloc(p->n_buckets, sizeof(*p->buckets));
	ratectl_init(&p->connects, pc->connect_rate, now);
	for (size_t i = 0; i < pc->n_things; i++)
		proxy_links_add(p, pc->things[i]);
	p->n.configured = p->n_links;
	log_info("proxy: standing in for %zu thing(s) on %s", p->n_links, pc->uri);
	return p;
}

static void resume_answer(struct proxy *p, const struct proxy_topic *t, const struct spool_entry *e,
                          uint64_t now)
{
	struct proxy_exec *ex = proxy_table_find(p, t->thing, t->execution_id);
	if (!ex)
		ex = proxy_table_add(p, t->thing, t->execution_id, now, -1);
	struct proxy_update *u =
	    proxy_update_new(e->payload.ptr, e->payload.len, (enum proxy_status)e->qos, now);
	u->spool_seq = e->seq;
	u->sent_before = 1; /* it may have left before the restart */
	proxy_exec_answer(ex, u, now);
	p->n.waiting++;
	proxy_touch(p, ex, now);
}

int proxy_resume(struct proxy *p, struct spool *spool, const struct spool_entry *e, uint64_t now,
                 int64_t wall_now)
{
	if (e->token.len < 6 || memcmp(e->token.ptr, "proxy:", 6) != 0)
		return 0;
	char token[32], topic[512];
	snprintf(token, sizeof(token), "%.*s", (int)e->token.len, e->token.ptr);
	snprintf(topic, sizeof(topic), "%.*s", (int)e->topic.len, e->topic.ptr);
	struct proxy_topic t;
	enum proxy_topic_kind k = proxy_topic_parse(PROXY_AWS_PREFIX, topic, &t);
	if (!p || k == PROXY_T_NONE) {
		log_warn("proxy: spool record %s for %s dropped (%s)", token, topic,
		         p ? "not understood" : "no proxy section any more");
		spool_done(spool, e->seq);
		return 1;
	}
	if (strcmp(token, PROXY_TOKEN_ANSWER) == 0) {
		resume_answer(p, &t, e, now);
		return 1;
	}
	struct proxy_exec *ex = proxy_table_find(p, t.thing, t.execution_id);
	if (!ex)
		ex = proxy_table_add(p, t.thing, t.execution_id, now, -1);
	if (strcmp(token, PROXY_TOKEN_SEEN) == 0) {
		int64_t left = e->deadline_ms - wall_now;
		ex->forget_ms = now + (uint64_t)(left > 0 ? left : 0);
		ex->spool_seq = e->seq;
		ex->delivered_ms = now;
		timer_arm(p->timers, &ex->task.timer, ex->forget_ms);
		return 1;
	}
	/* a request the local broker never took: forwarded now */
	struct message m = {0};
	m.payload = (char *)e->payload.ptr;
	m.len = e->payload.len;
	char ct[256];
	snprintf(ct, sizeof(ct), "%.*s", (int)e->response_topic.len, e->response_topic.ptr);
	m.content_type = e->response_topic.len ? ct : NULL;
	int64_t age = wall_now - e->received_ms;
	uint64_t received = now - (uint64_t)(age > 0 && (uint64_t)age < now ? age : 0);
	proxy_queue_forward(p, &t, &m, (long)e->deadline_ms, received, e->seq);
	return 1;
}

const struct stats_proxy *proxy_stats(struct proxy *p)
{
	if (!p)
		return NULL;
	p->n.configured = p->n_links;
	p->n.connected = p->n_up;
	return &p->n;
}

struct proxy_filters proxy_filters(const struct config *c)
{
	size_t np = c->proxy ? c->proxy->n_things : 0;
	struct proxy_filters f = {rt_calloc(c->n_routes + np + 1, sizeof(char *)),
	                          c->n_routes + np};
	for (size_t i = 0; i < c->n_routes; i++)
		f.v[i] = rt_strdup(c->routes[i].filter);
	for (size_t i = 0; i < np; i++)
		f.v[c->n_routes + i] =
		    proxy_topic_answer_filter(c->proxy->local_prefix, c->proxy->things[i]);
	return f;
}

void proxy_free_filters(struct proxy_filters *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i]);
	free(f->v);
}

void proxy_free(struct proxy *p, int timeout_ms)
{
	if (!p)
		return;
	proxy_links_remove_all(p, timeout_ms);
	timer_disarm(p->timers, &p->fwd_wake.timer);
	timer_disarm(p->timers, &p->links_wake.timer);
	for (size_t i = 0; i < p->n_buckets; i++)
		while (p->buckets[i]) {
			struct proxy_exec *ex = p->buckets[i];
			p->buckets[i] = ex->next;
			timer_disarm(p->timers, &ex->task.timer);
			proxy_exec_clean_up(ex);
			free(ex);
		}
	free(p->buckets);
	config_proxy_free(p->links_pc);
	while (p->fwd_head) {
		struct proxy_fwd *f = p->fwd_head;
		p->fwd_head = f->next;
		proxy_free_fwd(f);
	}
	free(p);
}

/* Local publishes go through the engine's outbox: they wait there while
 * the local broker is away, and a forwarded request's spool record ends
 * when the broker has it. */
static void local_via_outbox(void *ctx, const struct proxy_local_msg *m)
{
	struct mqtt_out out = {.topic = m->topic,
	                       .payload = view_of(m->payload, m->len),
	                       .qos = 1,
	                       .content_type = m->content_type,
	                       .expiry_s = m->expiry_s > 0 ? (uint32_t)m->expiry_s : 0};
	char err[ERR_LEN];
	if (outbox_put(ctx, &out, m->cookie, err) < 0)
		log_error("proxy: %s", err);
}

void proxy_reload(struct proxy **pp, const struct proxy_config *pc, struct inbox *ib,
                  struct spool *spool, struct outbox *o, struct timer_heap *timers)
{
	if (!pc) {
		if (*pp)
			log_info("proxy: closing %zu link(s)", (*pp)->n_links);
		proxy_free(*pp, 1000);
		*pp = NULL;
	} else if (!*pp) {
		*pp = proxy_new(pc, ib, spool, timers, local_via_outbox, o, rt_now_ms());
	} else {
		struct sbuf diff;
		sbuf_init(&diff);
		config_proxy_restart_needed((*pp)->links_pc, pc, &diff);
		if (diff.len)
			log_warn("reload: changes to %s take effect after a restart", diff.data);
		sbuf_clean_up(&diff);
		proxy_reconfigure(*pp, pc);
	}
}
