/*
 * proxy: requests from AWS to the machines and answers back (SPEC 9), on
 * the engine thread: the message flow. Executions live in a hash table
 * keyed by thing and executionId; their rules are proxy_exec's, this file
 * carries them out. Starting, resuming from the spool and stopping are
 * proxy_life.c's; the spool records both use are in proxy_priv.h.
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

static void forget(struct proxy *p, struct proxy_exec *ex)
{
	proxy_table_remove(p, ex);
	timer_disarm(p->timers, &ex->task.timer);
	if (p->spool && ex->spool_seq)
		spool_done(p->spool, ex->spool_seq);
	p->n.waiting -= ex->n_updates;
	proxy_exec_clean_up(ex);
	free(ex);
}

/* ex is looked at in this turn's timers (after the spool's sync). */
void proxy_touch(struct proxy *p, struct proxy_exec *ex, uint64_t now)
{
	timer_arm(p->timers, &ex->task.timer, now);
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
	e.token = view_of_str(token);
	e.topic = view_of_str(topic);
	e.response_topic = view_of_str(rt);
	e.payload = view_of(payload, len);
	spool_add(p->spool, &e);
	*seq = e.seq;
}

/* ---- requests from AWS -------------------------------------------------- */

void proxy_queue_forward(struct proxy *p, const struct proxy_topic *t, const struct message *m,
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
	timer_arm(p->timers, &p->fwd_wake.timer, 0); /* after this turn's spool sync */
}

static void on_request(struct proxy *p, const struct proxy_topic *t, struct message *m,
                       uint64_t now)
{
	if (proxy_table_find(p, t->thing, t->execution_id)) {
		log_debug("proxy: %s: execution %s delivered again by AWS; not forwarded again",
		          t->thing, t->execution_id);
		return;
	}
	long expiry = m->has_expiry ? (long)m->expiry_s : -1;
	struct proxy_exec *ex = proxy_table_add(p, t->thing, t->execution_id, now, expiry);
	ex->delivered_ms = m->received_ms;
	timer_arm(p->timers, &ex->task.timer, ex->forget_ms);
	int64_t wall = rt_wall_ms();
	int64_t forget_wall = wall + (int64_t)(ex->forget_ms - now);
	spool_record(p, PROXY_TOKEN_SEEN, m->topic, wall, forget_wall, 0, NULL, "", 0, &ex->spool_seq);
	uint64_t seq;
	spool_record(p, PROXY_TOKEN_REQUEST, m->topic, m->received_wall_ms, expiry, 1, m->content_type,
	             m->payload, m->len, &seq);
	proxy_queue_forward(p, t, m, expiry, m->received_ms, seq);
}

void proxy_free_fwd(struct proxy_fwd *f)
{
	free(f->topic);
	free(f->payload);
	free(f->content_type);
	free(f);
}

/* The forwarding timer, run after the spool sync: hand the requests to
 * the local broker. */
void proxy_forward_ready(struct timer_task *k, uint64_t now, void *ctx)
{
	(void)ctx;
	struct proxy *p = container_of(k, struct proxy, fwd_wake);
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
			log_debug("proxy: %s: execution %s forwarded to %s (%llu ms after it came)",
			          f->thing, f->id, f->topic,
			          (unsigned long long)(now - f->received_ms));
		}
		proxy_free_fwd(f);
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
	struct proxy_answer_error why = {"InvalidRequest",
	                                 "payload: larger than gateway.max_payload"};
	if (m->oversize || proxy_answer_check(m->payload, m->len, &body, &st, &why) != CG_OK) {
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
	struct proxy_exec *ex = proxy_table_find(p, t->thing, t->execution_id);
	if (!ex) /* a late answer, or one for an execution delivered before a restart */
		ex = proxy_table_add(p, t->thing, t->execution_id, now, -1);
	struct proxy_update *u = proxy_update_new(body.data, body.len, st, now);
	struct sbuf aws;
	sbuf_init(&aws);
	proxy_topic_build(&aws, PROXY_AWS_PREFIX, t->thing, t->execution_id, "response/json");
	spool_record(p, PROXY_TOKEN_ANSWER, aws.data, rt_wall_ms(), 0, (uint8_t)st, NULL, body.data,
	             body.len, &u->spool_seq);
	sbuf_clean_up(&aws);
	sbuf_clean_up(&body);
	proxy_exec_answer(ex, u, now);
	p->n.waiting++;
	proxy_touch(p, ex, now);
	log_debug("proxy: %s: execution %s: answer taken", t->thing, t->execution_id);
}

static int on_local_message(struct proxy *p, struct message *m, uint64_t now)
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
	struct proxy_exec *ex = proxy_table_find(p, t->thing, t->execution_id);
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
		timer_arm(p->timers, &ex->task.timer, ex->next_ms);
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
		proxy_touch(p, ex, now); /* the next update may go */
}

static void on_link_message(struct proxy *p, struct message *m, uint64_t now)
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

int proxy_take_message(struct proxy *p, struct message *m, uint64_t now)
{
	if (m->link && p)
		on_link_message(p, m, now);
	else if (m->link)
		message_free(m);
	else
		return p ? on_local_message(p, m, now) : 0;
	return 1;
}

/* ---- the turn ----------------------------------------------------------- */

void proxy_link_went_down(struct proxy *p, const char *thing, uint64_t now)
{
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct proxy_exec *ex = p->buckets[i]; ex; ex = ex->next)
			if (strcmp(ex->thing, thing) == 0)
				proxy_exec_link_lost(ex, now);
}

void proxy_link_came_up(struct proxy *p, const char *thing, uint64_t now)
{
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct proxy_exec *ex = p->buckets[i]; ex; ex = ex->next)
			if (strcmp(ex->thing, thing) == 0 && ex->head)
				proxy_touch(p, ex, now);
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

/* An execution's timer: send its update when due, forget it when it
 * ended, else wait for its next time. An update due while its link is down
 * waits unarmed: the link's return looks again (proxy_link_came_up). */
void proxy_exec_due(struct timer_task *k, uint64_t now, void *ctx)
{
	(void)ctx;
	struct proxy_exec *ex = container_of(k, struct proxy_exec, task);
	struct proxy *p = ex->owner;
	if (proxy_exec_send_due(ex, now))
		send_update(p, ex, now);
	if (proxy_exec_forgettable(ex, now)) {
		if (ex->final_accepted) {
			ended(p, ex, now);
		} else {
			log_info("proxy: thing=%s execution=%s status=%s ended without a final "
			         "answer (timeout)",
			         ex->thing, ex->id, proxy_status_name(ex->last_status));
			forget(p, ex);
		}
		return;
	}
	uint64_t t = proxy_exec_next_ms(ex);
	if (t > now)
		timer_arm(p->timers, &k->timer, t);
}
