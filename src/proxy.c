/*
 * proxy: requests from AWS to the machines and answers back (SPEC 9), on
 * the engine thread. Executions live in a hash table keyed by thing and
 * executionId; their rules are proxy_exec's, this file carries them out.
 *
 * Spool records (the spool's ADD/DONE, told apart by their token):
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
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outbox.h"
#include "proxy_priv.h"
#include "runtime.h"

#define TOKEN_SEEN    "proxy:seen"
#define TOKEN_REQUEST "proxy:request"
#define TOKEN_ANSWER  "proxy:answer"
/* The whole table is looked at when something there comes due, but at
 * most every SCAN_MIN_MS and at least every SCAN_MAX_MS; what a message
 * touched is looked at in the same turn. */
#define SCAN_MIN_MS 50
#define SCAN_MAX_MS 1000

/* ---- the table ---------------------------------------------------------- */

static size_t hash(const char *thing, const char *id, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const char *s = thing; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h = (h ^ '/') * 1099511628211ull;
	for (const char *s = id; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h % n);
}

static struct proxy_exec *find(const struct proxy *p, const char *thing, const char *id)
{
	for (struct proxy_exec *ex = p->buckets[hash(thing, id, p->n_buckets)]; ex; ex = ex->next)
		if (strcmp(ex->thing, thing) == 0 && strcmp(ex->id, id) == 0)
			return ex;
	return NULL;
}

static void grow(struct proxy *p)
{
	size_t n = p->n_buckets * 2;
	struct proxy_exec **b = rt_calloc(n, sizeof(*b));
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct proxy_exec *ex = p->buckets[i], *next; ex; ex = next) {
			next = ex->next;
			size_t h = hash(ex->thing, ex->id, n);
			ex->next = b[h];
			b[h] = ex;
		}
	free(p->buckets);
	p->buckets = b;
	p->n_buckets = n;
}

static struct proxy_exec *add(struct proxy *p, const char *thing, const char *id, uint64_t now,
                              long timeout_s)
{
	if (p->n_execs >= p->n_buckets)
		grow(p);
	struct proxy_exec *ex = rt_malloc(sizeof(*ex));
	proxy_exec_init(ex, thing, id, now, timeout_s);
	size_t h = hash(thing, id, p->n_buckets);
	ex->next = p->buckets[h];
	p->buckets[h] = ex;
	p->n_execs++;
	return ex;
}

static void forget(struct proxy *p, struct proxy_exec *ex)
{
	struct proxy_exec **pp = &p->buckets[hash(ex->thing, ex->id, p->n_buckets)];
	while (*pp != ex)
		pp = &(*pp)->next;
	*pp = ex->next;
	p->n_execs--;
	if (ex->dirty)
		for (size_t i = 0; i < p->n_dirty; i++)
			if (p->dirty[i] == ex)
				p->dirty[i] = NULL;
	if (p->spool && ex->spool_seq)
		spool_done(p->spool, ex->spool_seq);
	p->n.waiting -= ex->n_updates;
	proxy_exec_clean_up(ex);
	free(ex);
}

/* ex is to be looked at in this turn's proxy_run. */
static void touch(struct proxy *p, struct proxy_exec *ex)
{
	if (ex->dirty)
		return;
	if (p->n_dirty == p->cap_dirty) {
		p->cap_dirty = p->cap_dirty ? 2 * p->cap_dirty : 64;
		p->dirty = rt_realloc(p->dirty, p->cap_dirty * sizeof(*p->dirty));
	}
	ex->dirty = 1;
	p->dirty[p->n_dirty++] = ex;
}

/* ---- local publishes ---------------------------------------------------- */

static void publish_local(struct proxy *p, const char *thing, const char *id, const char *suffix,
                          const char *payload, size_t len)
{
	struct sbuf t;
	sbuf_init(&t);
	proxy_topic_build(&t, p->pc->local_prefix, thing, id, suffix);
	struct proxy_local_msg m = {t.data, payload, len, NULL, -1, 0};
	p->local(p->local_ctx, &m);
	sbuf_clean_up(&t);
}

static void spool_record(struct proxy *p, const char *token, const char *topic, int64_t received,
                         int64_t deadline, uint8_t qos, const char *rt, const void *payload,
                         size_t len, uint64_t *seq)
{
	*seq = 0;
	if (!p->spool)
		return;
	struct spool_entry e = {0};
	e.received_ms = received;
	e.deadline_ms = deadline;
	e.qos = qos;
	e.token = token;
	e.token_len = strlen(token);
	e.topic = topic;
	e.topic_len = strlen(topic);
	e.response_topic = rt ? rt : "";
	e.response_topic_len = rt ? strlen(rt) : 0;
	e.payload = payload;
	e.payload_len = len;
	spool_add(p->spool, &e);
	*seq = e.seq;
}

/* ---- requests from AWS -------------------------------------------------- */

static void queue_forward(struct proxy *p, const struct proxy_topic *t, const struct message *m,
                          long expiry_s, uint64_t received_ms, uint64_t seq)
{
	struct proxy_fwd *f = rt_calloc(1, sizeof(*f));
	struct sbuf topic;
	sbuf_init(&topic);
	proxy_topic_build(&topic, p->pc->local_prefix, t->thing, t->execution_id,
	                  proxy_topic_request_suffix(t->format));
	f->topic = sbuf_steal(&topic);
	f->payload = rt_memdup(m->payload, m->len);
	f->len = m->len;
	f->content_type = m->content_type ? rt_strdup(m->content_type) : NULL;
	f->expiry_s = expiry_s;
	f->received_ms = received_ms;
	f->seq = seq;
	snprintf(f->thing, sizeof(f->thing), "%s", t->thing);
	snprintf(f->id, sizeof(f->id), "%s", t->execution_id);
	if (p->fwd_tail)
		p->fwd_tail->next = f;
	else
		p->fwd_head = f;
	p->fwd_tail = f;
}

static void on_request(struct proxy *p, const struct proxy_topic *t, struct message *m,
                       uint64_t now)
{
	if (find(p, t->thing, t->execution_id)) {
		log_debug("proxy: %s: execution %s delivered again by AWS; not forwarded again",
		          t->thing, t->execution_id);
		return;
	}
	long expiry = m->has_expiry ? (long)m->expiry_s : -1;
	struct proxy_exec *ex = add(p, t->thing, t->execution_id, now, expiry);
	ex->delivered_ms = m->received_ms;
	int64_t wall = rt_wall_ms();
	int64_t forget_wall = wall + (int64_t)(ex->forget_ms - now);
	spool_record(p, TOKEN_SEEN, m->topic, wall, forget_wall, 0, NULL, "", 0, &ex->spool_seq);
	uint64_t seq;
	spool_record(p, TOKEN_REQUEST, m->topic, m->received_wall_ms, expiry, 1, m->content_type,
	             m->payload, m->len, &seq);
	queue_forward(p, t, m, expiry, m->received_ms, seq);
}

static void free_fwd(struct proxy_fwd *f)
{
	free(f->topic);
	free(f->payload);
	free(f->content_type);
	free(f);
}

/* After the spool sync: hand the requests to the local broker. */
static void forward_ready(struct proxy *p, uint64_t now)
{
	struct proxy_fwd *f = p->fwd_head;
	p->fwd_head = p->fwd_tail = NULL;
	while (f) {
		struct proxy_fwd *next = f->next;
		long left = proxy_expiry_left(f->expiry_s, f->received_ms, now);
		if (left == 0) {
			log_warn("proxy: %s: execution %s expired before it could be forwarded "
			         "(less than 1 s left); not forwarded",
			         f->thing, f->id);
			if (p->spool && f->seq)
				spool_done(p->spool, f->seq);
		} else {
			struct proxy_local_msg m = {f->topic,        f->payload, f->len,
			                            f->content_type, left,       f->seq};
			p->local(p->local_ctx, &m);
			p->n.delivered++;
			log_debug("proxy: %s: execution %s forwarded to %s", f->thing, f->id,
			          f->topic);
		}
		free_fwd(f);
		f = next;
	}
}

/* ---- answers from the machine ------------------------------------------- */

static void take_answer(struct proxy *p, const struct proxy_topic *t, const struct message *m,
                        uint64_t now)
{
	struct sbuf body;
	sbuf_init(&body);
	enum proxy_status st;
	struct proxy_answer_error why;
	if (proxy_answer_check(m->payload, m->len, &body, &st, &why) != CG_OK) {
		log_warn("proxy: %s: execution %s: answer refused: %s: %s", t->thing,
		         t->execution_id, why.code, why.message);
		struct sbuf r;
		sbuf_init(&r);
		proxy_answer_rejection(&r, why.code, why.message, t->execution_id);
		publish_local(p, t->thing, t->execution_id, "response/rejected/json", r.data,
		              r.len);
		sbuf_clean_up(&r);
		sbuf_clean_up(&body);
		p->n.rejected++;
		return;
	}
	struct proxy_exec *ex = find(p, t->thing, t->execution_id);
	if (!ex) /* a late answer, or one for an execution delivered before a restart */
		ex = add(p, t->thing, t->execution_id, now, -1);
	struct proxy_update *u = proxy_update_new(body.data, body.len, st, now);
	struct sbuf aws;
	sbuf_init(&aws);
	proxy_topic_build(&aws, PROXY_AWS_PREFIX, t->thing, t->execution_id, "response/json");
	spool_record(p, TOKEN_ANSWER, aws.data, rt_wall_ms(), 0, (uint8_t)st, NULL, body.data,
	             body.len, &u->spool_seq);
	sbuf_clean_up(&aws);
	sbuf_clean_up(&body);
	proxy_exec_answer(ex, u, now);
	p->n.waiting++;
	touch(p, ex);
	log_debug("proxy: %s: execution %s: answer %s taken", t->thing, t->execution_id,
	          proxy_status_name(st));
}

int proxy_on_local_message(struct proxy *p, struct message *m, uint64_t now)
{
	struct proxy_topic t;
	if (proxy_topic_parse(p->pc->local_prefix, m->topic, &t) != PROXY_T_ANSWER ||
	    !proxy_find_link(p, t.thing))
		return 0;
	take_answer(p, &t, m, now);
	message_free(m);
	return 1;
}

/* ---- verdicts from AWS -------------------------------------------------- */

static void ended(struct proxy *p, struct proxy_exec *ex, uint64_t now)
{
	uint64_t since = ex->delivered_ms ? ex->delivered_ms : now;
	log_info("proxy: thing=%s execution=%s status=%s latency_ms=%llu", ex->thing, ex->id,
	         proxy_status_name(ex->last_status), (unsigned long long)(now - since));
	forget(p, ex);
}

static void on_verdict(struct proxy *p, const struct proxy_topic *t, const struct message *m,
                       uint64_t now)
{
	struct proxy_exec *ex = find(p, t->thing, t->execution_id);
	if (!ex) {
		log_debug("proxy: %s: a verdict on unknown execution %s; ignored", t->thing,
		          t->execution_id);
		return;
	}
	int accepted = t->kind == PROXY_T_ACCEPTED;
	char code[64] = "";
	if (!accepted)
		proxy_answer_error_code(m->payload, m->len, code, sizeof(code));
	struct proxy_update *done;
	enum proxy_verdict v = proxy_exec_verdict(ex, accepted, code, now, rt_random_u32(), &done);
	if (v == PXV_STRAY) {
		log_debug("proxy: %s: execution %s: a verdict with no update in flight; ignored",
		          t->thing, t->execution_id);
		return;
	}
	if (v == PXV_RETRY) {
		log_info("proxy: %s: execution %s: AWS says %s; sending again", t->thing,
		         t->execution_id, code);
		p->scan_at = p->scan_at < ex->next_ms ? p->scan_at : ex->next_ms;
		return;
	}
	if (v == PXV_RELAY_ACCEPTED) {
		struct sbuf a;
		sbuf_init(&a);
		proxy_answer_accepted(&a, t->execution_id);
		publish_local(p, t->thing, t->execution_id, "response/accepted/json", a.data,
		              a.len);
		sbuf_clean_up(&a);
	} else {
		publish_local(p, t->thing, t->execution_id,
		              accepted ? "response/accepted/json" : "response/rejected/json",
		              m->payload, m->len);
	}
	if (v == PXV_RELAY_ACCEPTED || accepted)
		p->n.accepted++;
	else {
		p->n.rejected++;
		log_warn("proxy: %s: execution %s: AWS rejected the %s answer: %s", t->thing,
		         t->execution_id, proxy_status_name(done->status), code);
	}
	if (p->spool && done->spool_seq)
		spool_done(p->spool, done->spool_seq);
	proxy_update_free(done);
	p->n.waiting--;
	if (proxy_exec_forgettable(ex, now) && ex->final_accepted)
		ended(p, ex, now);
	else
		touch(p, ex); /* the next update may go */
}

void proxy_on_link_message(struct proxy *p, struct message *m, uint64_t now)
{
	if (m->link_event != PROXY_LINK_MESSAGE) {
		proxy_links_on_event(p, m, now);
		message_free(m);
		return;
	}
	struct proxy_link *l = proxy_link_by_id(p, m->link);
	struct proxy_topic t;
	enum proxy_topic_kind k = proxy_topic_parse(PROXY_AWS_PREFIX, m->topic, &t);
	if (!l || k == PROXY_T_NONE || k == PROXY_T_ANSWER || strcmp(t.thing, l->thing) != 0) {
		if (l)
			log_warn("proxy: %s: unexpected publish on %s; ignored", l->thing,
			         m->topic);
	} else if (k == PROXY_T_REQUEST) {
		on_request(p, &t, m, now);
	} else {
		on_verdict(p, &t, m, now);
	}
	message_free(m);
}

/* ---- the turn ----------------------------------------------------------- */

void proxy_link_went_down(struct proxy *p, const char *thing, uint64_t now)
{
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct proxy_exec *ex = p->buckets[i]; ex; ex = ex->next)
			if (strcmp(ex->thing, thing) == 0)
				proxy_exec_link_lost(ex, now);
	p->scan = 1;
}

static void send_update(struct proxy *p, struct proxy_exec *ex, uint64_t now)
{
	struct proxy_link *l = proxy_find_link(p, ex->thing);
	if (!l || l->state != LINK_UP)
		return; /* waits for the link (a removed thing's answers wait for its return) */
	struct sbuf topic;
	sbuf_init(&topic);
	proxy_topic_build(&topic, PROXY_AWS_PREFIX, ex->thing, ex->id, "response/json");
	char err[ERR_LEN];
	struct proxy_update *u = ex->head;
	if (proxy_link_publish(l, topic.data, u->body, u->len, err) == CG_OK) {
		if (u->sends > 0 || u->sent_before)
			log_info("proxy: %s: execution %s: %s sent again", ex->thing, ex->id,
			         proxy_status_name(u->status));
		else
			p->n.sent++;
		proxy_exec_sent(ex, now, (uint64_t)p->pc->update_timeout_ms);
	} else {
		log_debug("%s", err);
	}
	sbuf_clean_up(&topic);
}

/* Send ex's update when due, forget ex when it ended; returns when ex
 * next needs a look (UINT64_MAX: forgotten, or waiting for its link,
 * whose return looks at everything). */
static uint64_t look(struct proxy *p, struct proxy_exec *ex, uint64_t now)
{
	if (proxy_exec_send_due(ex, now))
		send_update(p, ex, now);
	if (proxy_exec_forgettable(ex, now)) {
		if (ex->final_accepted)
			ended(p, ex, now);
		else {
			log_info("proxy: thing=%s execution=%s status=%s ended without a final "
			         "answer (timeout)",
			         ex->thing, ex->id, proxy_status_name(ex->last_status));
			forget(p, ex);
		}
		return UINT64_MAX;
	}
	uint64_t t = proxy_exec_next_ms(ex);
	return t <= now ? UINT64_MAX : t;
}

static uint64_t scan(struct proxy *p, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct proxy_exec *ex = p->buckets[i], *nx; ex; ex = nx) {
			nx = ex->next;
			uint64_t t = look(p, ex, now);
			next = t < next ? t : next;
		}
	return next;
}

uint64_t proxy_run(struct proxy *p, uint64_t now)
{
	forward_ready(p, now);
	uint64_t wait = proxy_links_tick(p, now);
	for (size_t i = 0; i < p->n_dirty; i++) {
		struct proxy_exec *ex = p->dirty[i];
		if (!ex)
			continue;
		ex->dirty = 0;
		uint64_t t = look(p, ex, now);
		p->scan_at = t < p->scan_at ? t : p->scan_at;
	}
	p->n_dirty = 0;
	if (p->scan || now >= p->scan_at) {
		p->scan = 0;
		uint64_t next = scan(p, now);
		uint64_t lo = now + SCAN_MIN_MS, hi = now + SCAN_MAX_MS;
		p->scan_at = next < lo ? lo : next > hi ? hi : next;
	}
	uint64_t until = p->scan_at > now ? p->scan_at - now : 0;
	return until < wait ? until : wait;
}

/* ---- start, resume, stop ------------------------------------------------ */

struct proxy *proxy_new(const struct proxy_config *pc, struct inbox *ib, struct spool *spool,
                        proxy_local_fn local, void *local_ctx, uint64_t now)
{
	struct proxy *p = rt_calloc(1, sizeof(*p));
	p->pc = pc;
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
	struct proxy_exec *ex = find(p, t->thing, t->execution_id);
	if (!ex)
		ex = add(p, t->thing, t->execution_id, now, -1);
	struct proxy_update *u =
	    proxy_update_new(e->payload, e->payload_len, (enum proxy_status)e->qos, now);
	u->spool_seq = e->seq;
	u->sent_before = 1; /* it may have left before the restart */
	proxy_exec_answer(ex, u, now);
	p->n.waiting++;
}

int proxy_resume(struct proxy *p, const struct spool_entry *e, uint64_t now, int64_t wall_now)
{
	if (e->token_len < 6 || memcmp(e->token, "proxy:", 6) != 0)
		return 0;
	char token[32], topic[512];
	snprintf(token, sizeof(token), "%.*s", (int)e->token_len, e->token);
	snprintf(topic, sizeof(topic), "%.*s", (int)e->topic_len, e->topic);
	struct proxy_topic t;
	enum proxy_topic_kind k = proxy_topic_parse(PROXY_AWS_PREFIX, topic, &t);
	if (!p || k == PROXY_T_NONE) {
		if (p)
			log_warn("proxy: spool record %s for %s dropped", token, topic);
		return -1; /* the caller ends it */
	}
	p->scan = 1;
	if (strcmp(token, TOKEN_ANSWER) == 0) {
		resume_answer(p, &t, e, now);
		return 1;
	}
	struct proxy_exec *ex = find(p, t.thing, t.execution_id);
	if (!ex)
		ex = add(p, t.thing, t.execution_id, now, -1);
	if (strcmp(token, TOKEN_SEEN) == 0) {
		int64_t left = e->deadline_ms - wall_now;
		ex->forget_ms = now + (uint64_t)(left > 0 ? left : 0);
		ex->spool_seq = e->seq;
		ex->delivered_ms = now;
		return 1;
	}
	/* a request the local broker never took: forwarded now */
	struct message m = {0};
	m.payload = (char *)e->payload;
	m.len = e->payload_len;
	char ct[256];
	snprintf(ct, sizeof(ct), "%.*s", (int)e->response_topic_len, e->response_topic);
	m.content_type = e->response_topic_len ? ct : NULL;
	int64_t age = wall_now - e->received_ms;
	uint64_t received = now - (uint64_t)(age > 0 && (uint64_t)age < now ? age : 0);
	queue_forward(p, &t, &m, (long)e->deadline_ms, received, e->seq);
	return 1;
}

void proxy_counts(const struct proxy *p, struct stats_proxy *out)
{
	*out = p->n;
	out->configured = p->n_links;
	out->connected = p->n_up;
}

char **proxy_local_filters(const struct proxy_config *pc, size_t *n)
{
	*n = pc ? pc->n_things : 0;
	char **f = rt_calloc(*n + 1, sizeof(char *));
	for (size_t i = 0; i < *n; i++)
		f[i] = proxy_topic_answer_filter(pc->local_prefix, pc->things[i]);
	return f;
}

void proxy_free(struct proxy *p, int timeout_ms)
{
	if (!p)
		return;
	proxy_links_remove_all(p, timeout_ms);
	for (size_t i = 0; i < p->n_buckets; i++)
		while (p->buckets[i]) {
			struct proxy_exec *ex = p->buckets[i];
			p->buckets[i] = ex->next;
			proxy_exec_clean_up(ex);
			free(ex);
		}
	free(p->buckets);
	free(p->dirty);
	while (p->fwd_head) {
		struct proxy_fwd *f = p->fwd_head;
		p->fwd_head = f->next;
		free_fwd(f);
	}
	free(p);
}

/* Local publishes go through the engine's outbox: they wait there while
 * the local broker is away, and a forwarded request's spool record ends
 * when the broker has it. */
static void local_via_outbox(void *ctx, const struct proxy_local_msg *m)
{
	char err[ERR_LEN];
	if (outbox_put(ctx, m->topic, m->payload, m->len, 1, NULL, 0, m->cookie, err) < 0)
		log_error("proxy: %s", err);
}

void proxy_reload(struct proxy **pp, const struct proxy_config *pc, struct inbox *ib,
                  struct spool *spool, struct outbox *o)
{
	if (!pc) {
		if (*pp)
			log_info("proxy: the proxy section is gone; closing every link");
		proxy_free(*pp, 1000);
		*pp = NULL;
	} else if (!*pp) {
		*pp = proxy_new(pc, ib, spool, local_via_outbox, o, rt_now_ms());
	} else {
		proxy_reconfigure(*pp, pc);
	}
}
