/*
 * proxy_links: the set of links, one per proxied thing: adding and
 * removing them (start and SIGHUP), pacing connects with a token bucket at
 * proxy.connect_rate (ratectl without throttle feedback is exactly that,
 * with a one-second burst), and the link events from the inbox.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqtt.h"
#include "proxy_priv.h"
#include "runtime.h"

struct proxy_link *proxy_find_link(const struct proxy *p, const char *thing)
{
	for (struct proxy_link *l = p->links; l; l = l->next)
		if (strcmp(l->thing, thing) == 0)
			return l;
	return NULL;
}

struct proxy_link *proxy_link_by_id(const struct proxy *p, uint64_t id)
{
	for (struct proxy_link *l = p->links; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

void proxy_links_add(struct proxy *p, const char *thing)
{
	char err[ERR_LEN];
	struct proxy_link *l = proxy_link_new(p->links_pc, thing, ++p->next_link_id, p->inbox, err);
	if (!l) {
		log_error("%s", err);
		return;
	}
	l->next = p->links;
	p->links = l;
	p->n_links++;
}

static void remove_link(struct proxy *p, struct proxy_link *l, int timeout_ms)
{
	struct proxy_link **pp = &p->links;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	p->n_links--;
	if (l->state == LINK_UP)
		p->n_up--;
	proxy_link_free(l, timeout_ms);
}

void proxy_links_remove_all(struct proxy *p, int timeout_ms)
{
	for (struct proxy_link *l = p->links; l; l = l->next)
		proxy_link_begin_disconnect(l, timeout_ms);
	while (p->links)
		remove_link(p, p->links, timeout_ms);
}

static uint64_t connect_due(struct proxy *p, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	for (struct proxy_link *l = p->links; l; l = l->next) {
		if (l->state != LINK_IDLE)
			continue;
		if (!proxy_link_due(l, now)) {
			uint64_t d = l->retry_at_ms - now;
			next = d < next ? d : next;
			continue;
		}
		uint64_t wait = ratectl_take(&p->connects, now);
		if (wait)
			return wait < next ? wait : next;
		proxy_link_connect(l, now);
	}
	return next;
}

void proxy_reconfigure(struct proxy *p, const struct proxy_config *pc)
{
	p->pc = pc;
	for (struct proxy_link *l = p->links, *next; l; l = next) {
		next = l->next;
		if (!config_proxy_has_thing(pc, l->thing)) {
			log_info("proxy: %s is no longer proxied; its link closes", l->thing);
			remove_link(p, l, 1000);
		}
	}
	for (size_t i = 0; i < pc->n_things; i++)
		if (!proxy_find_link(p, pc->things[i])) {
			log_info("proxy: %s is proxied from now on", pc->things[i]);
			proxy_links_add(p, pc->things[i]);
		}
	timer_arm(p->timers, &p->links_wake.timer, rt_now_ms());
	p->n.configured = p->n_links;
	ratectl_set_max(&p->connects, pc->connect_rate, rt_now_ms());
}

static void link_event(struct proxy *p, struct proxy_link *l, struct message *m, uint64_t now)
{
	int was_up = l->state == LINK_UP;
	proxy_link_on_event(l, m->link_event, now, rt_random_u32());
	int up = l->state == LINK_UP;
	timer_arm(p->timers, &p->links_wake.timer, now);
	if (up && !was_up) {
		p->n_up++;
		p->link_came_up = 1;
		log_info("proxy: %s: link up%s%s", l->thing, m->len ? "; " : "", m->payload);
		proxy_link_came_up(p, l->thing, now);
	} else if (!up && was_up) {
		p->n_up--;
		log_warn("proxy: %s: link lost (%s); reconnecting", l->thing, m->payload);
		proxy_link_went_down(p, l->thing, now);
	} else if (m->link_event == PROXY_LINK_FAILED) {
		/* hundreds of links failing together (AWS away) must not flood
		 * the log: the first failure, then every tenth */
		enum log_level lvl =
		    l->failures == 1 || l->failures % 10 == 0 ? CG_LOG_WARN : CG_LOG_DEBUG;
		if (atomic_load_explicit(&log_threshold, memory_order_relaxed) >= (int)lvl)
			log_msg(lvl,
			        "proxy: %s: connect failed (%u in a row): %s; next try in %llu ms",
			        l->thing, l->failures, m->payload,
			        (unsigned long long)(l->retry_at_ms - now));
	}
}

void proxy_links_on_event(struct proxy *p, struct message *m, uint64_t now)
{
	struct proxy_link *l = proxy_link_by_id(p, m->link);
	if (l)
		link_event(p, l, m, now);
}

void proxy_links_due(struct timer_task *k, uint64_t now, void *ctx)
{
	(void)ctx;
	struct proxy *p = container_of(k, struct proxy, links_wake);
	if (p->link_came_up)
		mqtt_tcp_nodelay_all();
	p->link_came_up = 0;
	uint64_t wait = connect_due(p, now);
	if (wait != UINT64_MAX)
		timer_arm(p->timers, &k->timer, now + wait);
}
