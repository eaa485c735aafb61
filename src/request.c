/*
 * request: admission. A message becomes a request (route bound, payload
 * validated and translated, reply topics and deadline set) or an immediate
 * answer. See request.h.
 */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "follow.h"
#include "log.h"
#include "runtime.h"
#include "sigv4.h"

/* A random UUIDv4 text; -1 when the random source failed. */
static int uuid_v4(char out[CLIENT_TOKEN_MAX + 1])
{
	unsigned char b[16];
	if (rt_random(b, sizeof(b)) != 0)
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char hex[33];
	sbuf_hex_encode(b, 16, hex);
	snprintf(out, CLIENT_TOKEN_MAX + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
	         hex + 16, hex + 20);
	return 0;
}

struct token_ctx {
	const struct resume *res;
	int failed;
};

/* The token of a request without id or clientToken: the one it had before a
 * restart when resumed from the spool, else a fresh UUIDv4. */
static void new_token(char out[CLIENT_TOKEN_MAX + 1], void *ctx)
{
	struct token_ctx *t = ctx;
	if (t->res && t->res->token[0]) {
		memcpy(out, t->res->token, sizeof(t->res->token));
	} else if (uuid_v4(out) != 0) {
		t->failed = 1;
		out[0] = '\0';
	}
}

void request_free(struct request *r)
{
	if (!r)
		return;
	message_free(r->msg);
	free(r->target);
	free(r->reply_accepted);
	free(r->follow_topic);
	free(r->reply_rejected);
	translate_result_clean_up(&r->tr);
	free(r);
}

void reqlist_push(struct reqlist *l, struct request *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

void reqlist_remove(struct reqlist *l, struct request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->next = r->prev = NULL;
	l->n--;
}

static char *expand_or_null(const char *tmpl, const struct route_vars *v)
{
	struct sbuf b;
	sbuf_init(&b);
	if (route_template_expand(tmpl, v, &b, NULL) != CG_OK) {
		sbuf_clean_up(&b);
		return NULL;
	}
	return sbuf_steal(&b);
}

/* Find the route; fill r's names, vars and reply topics. NULL when none. */
static const struct route *bind_route(const struct config *c, struct request *r,
                                      struct route_vars *v, char **storage)
{
	const struct route *rt = NULL;
	for (size_t i = 0; i < c->n_routes && !rt; i++)
		if (route_match(&c->routes[i], r->msg->topic, storage, v))
			rt = &c->routes[i];
	if (!rt)
		return NULL;
	route_vars_set(v, "region", c->aws.region);
	route_vars_set(v, "account", c->aws.account);
	route_vars_set(v, "client_id", c->mqtt.client_id);
	if (rt->thing)
		route_vars_set(v, "thing", rt->thing);
	if (rt->command)
		route_vars_set(v, "command", rt->command);
	snprintf(r->thing, sizeof(r->thing), "%.128s", route_vars_get(v, "thing"));
	snprintf(r->command, sizeof(r->command), "%.64s", route_vars_get(v, "command"));
	/* cut on a character boundary: the names go into log lines and replies */
	r->thing[log_utf8_boundary(r->thing, strlen(r->thing))] = '\0';
	r->command[log_utf8_boundary(r->command, strlen(r->command))] = '\0';
	route_vars_set(v, "status", "accepted");
	r->reply_accepted = expand_or_null(rt->reply_topic, v);
	route_vars_set(v, "status", "rejected");
	r->reply_rejected = expand_or_null(rt->reply_topic, v);
	return rt;
}

/* SPEC 4: the Response Topic is honoured only inside the route's
 * response_topics and outside every request filter, so a device cannot make
 * the gateway write, with its rights, into another thing's topics or its
 * own. Called once the captured values are valid. 0: refused. */
static int take_response_topic(const struct config *c, const struct route *rt,
                               const struct route_vars *v, struct request *r)
{
	const char *t = r->msg->response_topic;
	if (!t)
		return 1;
	if (!route_response_allowed(rt, v, t))
		return 0;
	for (size_t i = 0; i < c->n_routes; i++)
		if (route_filter_matches(c->routes[i].filter, t))
			return 0;
	free(r->reply_accepted);
	free(r->reply_rejected);
	r->reply_accepted = rt_strdup(t);
	r->reply_rejected = rt_strdup(t);
	return 1;
}

static struct request *request_new(const struct admit_env *env, struct message *m,
                                   const struct resume *res)
{
	struct request *r = rt_calloc(1, sizeof(*r));
	r->msg = m;
	translate_result_init(&r->tr);
	attempt_init(&r->at);
	timer_task_init(&r->wake, NULL); /* the engine sets what to do */
	r->deadline_ms = m->received_ms + (uint64_t)env->cfg->gateway.deadline_ms;
	if (res) { /* resumed: keep the original deadline */
		int64_t left = res->deadline_wall_ms - m->received_wall_ms;
		r->deadline_ms = m->received_ms + (uint64_t)(left > 0 ? left : 0);
		r->spool_seq = res->seq;
	}
	return r;
}

/* The values captured from the topic against their rules. */
static enum cg_err captures_check(const struct route *rt, const struct route_vars *v, char *err)
{
	enum cg_err rc = CG_OK;
	for (size_t i = 0; rc == CG_OK && i < v->n; i++)
		for (size_t k = 0; k < rt->n_ph; k++)
			if (strcmp(v->name[i], rt->ph_names[k]) == 0)
				rc = route_check_capture(v->name[i], v->value[i], err);
	return rc;
}

#define ADMITTED (-1)

/* Validate and apply the limits: ADMITTED, or the gw_code to answer with. */
static int check(const struct admit_env *env, const struct route *rt, struct route_vars *v,
                 struct request *r, const struct resume *res, char *err)
{
	const struct config *c = env->cfg;
	/* decided first, so that every answer, even an early one, goes where
	 * it may */
	int response_ok = captures_check(rt, v, NULL) == CG_OK && take_response_topic(c, rt, v, r);
	if (env->draining) {
		snprintf(err, ERR_LEN, "the gateway is shutting down");
		return (int)GW_UNAVAILABLE;
	}
	size_t size = r->msg->oversize ? r->msg->oversize : r->msg->len;
	if (r->msg->oversize || size > (size_t)c->gateway.max_payload) {
		snprintf(err, ERR_LEN, "payload is %zu bytes; the limit is %ld", size,
		         c->gateway.max_payload);
		return (int)GW_PAYLOAD_TOO_LARGE;
	}
	struct token_ctx tc = {.res = res};
	enum cg_err rc = translate_request(rt, v, view_of(r->msg->payload, r->msg->len), new_token,
	                                   &tc, &r->tr, err);
	if (rc == CG_OK)
		rc = captures_check(rt, v, err);
	if (rc == CG_OK && tc.failed) {
		r->tr.client_token[0] = '\0';
		snprintf(err, ERR_LEN,
		         "no idempotency token could be made: the random source failed");
		return (int)GW_INTERNAL_ERROR;
	}
	if (rc != CG_OK) {
		r->tr.client_token[0] = '\0'; /* none was assigned to an invalid request */
		return (int)GW_INVALID_REQUEST;
	}
	if (!response_ok) {
		snprintf(err, ERR_LEN,
		         "the Response Topic is outside this route's response_topics");
		r->tr.client_token[0] = '\0';
		return (int)GW_FORBIDDEN;
	}
	if (!route_command_allowed(rt, r->command)) {
		snprintf(err, ERR_LEN, "command '%s' is not allowed on this route", r->command);
		r->tr.client_token[0] = '\0';
		return (int)GW_FORBIDDEN;
	}
	r->target = expand_or_null(rt->target_arn, v);
	if (!r->target) {
		snprintf(err, ERR_LEN, "the route's target_arn cannot be expanded");
		return (int)GW_INTERNAL_ERROR;
	}
	struct sbuf ft; /* followed: the execution topic but {execution} */
	sbuf_init(&ft);
	if (rt->follow && follow_topic_prepare(rt->execution_topic, v, &ft, NULL) == CG_OK)
		r->follow_topic = sbuf_steal(&ft);
	sbuf_clean_up(&ft);
	if (res) { /* resumed: it was admitted before the restart */
		fairq_hold(env->buckets, r->thing, &r->fq, 0, env->now_ms);
		return ADMITTED;
	}
	if (env->queued >= (size_t)c->gateway.queue_size) {
		snprintf(err, ERR_LEN, "too many requests are waiting");
		return (int)GW_OVERLOADED;
	}
	if (!fairq_admit(env->buckets, r->thing, c->gateway.per_thing_rate, env->now_ms)) {
		snprintf(err, ERR_LEN, "this thing exceeded gateway.per_thing_rate");
		return (int)GW_OVERLOADED;
	}
	if (!fairq_hold(env->buckets, r->thing, &r->fq, (unsigned)c->gateway.per_thing_queue,
	                env->now_ms)) {
		snprintf(err, ERR_LEN, "this thing holds gateway.per_thing_queue requests");
		return (int)GW_OVERLOADED;
	}
	return ADMITTED;
}

enum admit_verdict request_admit(const struct admit_env *env, struct message *m,
                                 const struct resume *res, struct request **out, enum gw_code *code,
                                 char *err)
{
	struct request *r = request_new(env, m, res);
	*out = r;
	struct route_vars v = {0};
	char *storage = NULL;
	enum admit_verdict verdict = ADMIT_QUEUE;
	const struct route *rt = bind_route(env->cfg, r, &v, &storage);
	if (!rt) { /* no route confines a Response Topic: nowhere to answer */
		free(storage);
		return ADMIT_DROP;
	}
	int c = check(env, rt, &v, r, res, err);
	if (c != ADMITTED) {
		*code = (enum gw_code)c;
		verdict = ADMIT_ANSWER;
	}
	free(storage);
	return verdict;
}

void request_spool_entry(const struct request *r, long deadline_ms, struct spool_entry *out)
{
	const struct message *m = r->msg;
	memset(out, 0, sizeof(*out));
	out->received_ms = m->received_wall_ms;
	out->deadline_ms = m->received_wall_ms + deadline_ms;
	out->qos = (uint8_t)m->qos;
	out->token = view_of_str(r->tr.client_token);
	out->topic = view_of_str(m->topic);
	out->response_topic = view_of_str(m->response_topic);
	out->correlation = view_of(m->correlation, m->correlation_len);
	out->has_correlation = m->correlation != NULL;
	out->payload = view_of(m->payload, m->len);
}

struct message *request_message_from_spool(const struct spool_entry *s, int64_t now_wall_ms,
                                           uint64_t now_ms, struct resume *res)
{
	struct message *m = rt_calloc(1, sizeof(*m));
	m->topic = rt_memdup(s->topic.ptr, s->topic.len);
	m->payload = rt_memdup(s->payload.ptr, s->payload.len);
	m->len = s->payload.len;
	m->qos = s->qos;
	if (s->response_topic.len)
		m->response_topic = rt_memdup(s->response_topic.ptr, s->response_topic.len);
	if (s->has_correlation) {
		m->correlation = rt_memdup(s->correlation.ptr, s->correlation.len);
		m->correlation_len = s->correlation.len;
	}
	m->received_wall_ms = now_wall_ms;
	m->received_ms = now_ms;
	memset(res, 0, sizeof(*res));
	res->seq = s->seq;
	res->answered = s->answered;
	res->deadline_wall_ms = s->deadline_ms > now_wall_ms ? s->deadline_ms : now_wall_ms;
	snprintf(res->token, sizeof(res->token), "%.*s", (int)s->token.len, s->token.ptr);
	return m;
}
