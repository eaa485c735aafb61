/*
 * request: the life of a request inside the engine, except its calls to AWS:
 * admission (route, validation, limits, spool), the waiting lists, and the
 * one answer every request gets (finish), published, logged and counted.
 */
#include "engine_priv.h"

#include <openssl/rand.h>

static void uuid_v4(char out[CLIENT_TOKEN_MAX + 1])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)rand();
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char hex[33];
	hex_encode(b, 16, hex);
	/* 8-4-4-4-12 */
	memcpy(out, hex, 8);
	out[8] = '-';
	memcpy(out + 9, hex + 8, 4);
	out[13] = '-';
	memcpy(out + 14, hex + 12, 4);
	out[18] = '-';
	memcpy(out + 19, hex + 16, 4);
	out[23] = '-';
	memcpy(out + 24, hex + 20, 12);
	out[36] = '\0';
}

/* The token of a request without id or clientToken: the one it had before a
 * restart when resumed from the spool, else a fresh UUIDv4. */
static void new_token(char out[CLIENT_TOKEN_MAX + 1], void *ctx)
{
	const struct inbound *in = ctx;
	if (in->resume_token[0])
		memcpy(out, in->resume_token, sizeof(in->resume_token));
	else
		uuid_v4(out);
}

/* ---- lists ------------------------------------------------------------ */

void list_push(struct list *l, struct request *r)
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

void list_remove(struct list *l, struct request *r)
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

/* ---- replies ------------------------------------------------------------ */

void request_free(struct request *r)
{
	inbound_free(r->in);
	free(r->reply_accepted);
	free(r->reply_rejected);
	translated_clean_up(&r->tr);
	http_call_free(&r->call);
	free(r);
}

/* Publish r's reply, log its line, free it. r must not be on any list. */
void finish(struct engine *e, struct request *r, const struct outcome *o)
{
	uint64_t latency_ms = now_ms() - r->in->received_ms;
	stats_record(&e->stats, o->accepted ? NULL : o->code, latency_ms * 1000);
	const char *topic = o->accepted ? r->reply_accepted : r->reply_rejected;
	struct sbuf json;
	sbuf_init(&json);
	reply_render(o, &json);
	char err[ERR_LEN] = "";
	/* A spooled request leaves the spool once the broker has its reply. */
	if (topic && mqtt_publish_tracked(e->mqtt, topic, json.data, json.len, r->in->qos,
	                                  r->in->correlation, r->in->correlation_len,
	                                  e->spool ? r->in->spool_seq : 0, err) != CG_OK)
		log_error("reply to %s not published: %s", topic, err);
	if (!topic && e->spool && r->in->spool_seq)
		spool_done(e->spool, r->in->spool_seq); /* nowhere to answer: do not resume it */
	struct sbuf idtext;
	sbuf_init(&idtext);
	if (r->tr.id)
		jsonw_value(&idtext, r->tr.id);
	const char *id = r->tr.id ? idtext.data : NULL;
	log_info("request thing=%s command=%s id=%s token=%s outcome=%s%s%s attempts=%u "
	         "latency_ms=%llu",
	         r->thing[0] ? r->thing : "-", r->command[0] ? r->command : "-", id ? id : "-",
	         r->tr.client_token[0] ? r->tr.client_token : "-",
	         o->accepted ? "accepted" : "rejected",
	         o->accepted ? "" : " code=", o->accepted ? "" : o->code, r->attempts,
	         (unsigned long long)(now_ms() - r->in->received_ms));
	if (!o->accepted && o->message)
		log_debug("request token=%s message=%s", r->tr.client_token, o->message);
	sbuf_clean_up(&idtext);
	sbuf_clean_up(&json);
	request_free(r);
}

void finish_gateway(struct engine *e, struct request *r, enum gw_code c, const char *msg)
{
	struct outcome o = {0};
	outcome_gateway(&o, c, msg);
	o.id = r->tr.id;
	o.client_token = r->tr.client_token;
	finish(e, r, &o);
}

void finish_aws(struct engine *e, struct request *r, const struct awserr *ae)
{
	struct outcome o = {0};
	o.code = ae->code;
	o.message = ae->message;
	o.aws = 1;
	o.http_status = ae->http_status;
	o.retryable = ae->retryable;
	o.id = r->tr.id;
	o.client_token = r->tr.client_token;
	finish(e, r, &o);
}

/* The final answer when a retryable failure cannot be retried any more. */
void finish_last_error(struct engine *e, struct request *r)
{
	if (r->last_was_aws)
		finish_aws(e, r, &r->last_aws);
	else
		finish_gateway(e, r, GW_UNAVAILABLE, r->last_err);
}

/* ---- admission ---------------------------------------------------------- */

static int topic_name_valid(const char *t)
{
	return t && *t && !strpbrk(t, "+#") && strlen(t) <= 65535;
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

/* Find the route; fill r's names, vars and reply topics. 0 when none. */
static const struct route *bind_route(struct engine *e, struct request *r, struct route_vars *v,
                                      char **storage)
{
	const struct config *c = e->cfg;
	const struct route *rt = NULL;
	for (size_t i = 0; i < c->n_routes && !rt; i++)
		if (route_match(&c->routes[i], r->in->topic, storage, v))
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
	if (topic_name_valid(r->in->response_topic)) {
		r->reply_accepted = strdup(r->in->response_topic);
		r->reply_rejected = strdup(r->in->response_topic);
	} else {
		route_vars_set(v, "status", "accepted");
		r->reply_accepted = expand_or_null(rt->reply_topic, v);
		route_vars_set(v, "status", "rejected");
		r->reply_rejected = expand_or_null(rt->reply_topic, v);
	}
	return rt;
}

/* Queue r's ADD record; it becomes durable at the end of this loop turn,
 * before r's first call starts. */
static void spool_request(struct engine *e, struct request *r)
{
	struct inbound *in = r->in;
	struct spool_entry s = {
	    .received_ms = in->received_wall_ms,
	    .deadline_ms = in->received_wall_ms + e->cfg->gateway.deadline_ms,
	    .qos = (uint8_t)in->qos,
	    .token = r->tr.client_token,
	    .token_len = strlen(r->tr.client_token),
	    .topic = in->topic,
	    .topic_len = strlen(in->topic),
	    .response_topic = in->response_topic,
	    .response_topic_len = in->response_topic ? strlen(in->response_topic) : 0,
	    .correlation = in->correlation,
	    .correlation_len = in->correlation_len,
	    .has_correlation = in->correlation != NULL,
	    .payload = in->payload,
	    .payload_len = in->len,
	};
	spool_add(e->spool, &s);
	in->spool_seq = s.seq;
}

/* Validate and either queue r or answer it. */
static void admit(struct engine *e, struct inbound *in)
{
	struct request *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->in = in;
	translated_init(&r->tr);
	r->deadline_ms = in->received_ms + (uint64_t)e->cfg->gateway.deadline_ms;
	if (in->deadline_wall_ms) { /* resumed: keep the original deadline */
		int64_t left = in->deadline_wall_ms - in->received_wall_ms;
		r->deadline_ms = in->received_ms + (uint64_t)(left > 0 ? left : 0);
	}
	struct route_vars v = {0};
	char *storage = NULL;
	const struct route *rt = bind_route(e, r, &v, &storage);
	char err[ERR_LEN] = "";
	if (!rt) {
		if (topic_name_valid(in->response_topic)) {
			r->reply_rejected = strdup(in->response_topic);
			finish_gateway(e, r, GW_INVALID_REQUEST, "no route for this topic");
		} else {
			log_warn("no route for topic %s; dropped", in->topic);
			request_free(r);
		}
		return;
	}
	if (e->draining) {
		finish_gateway(e, r, GW_UNAVAILABLE, "the gateway is shutting down");
		goto out;
	}
	if (in->len > (size_t)e->cfg->gateway.max_payload) {
		snprintf(err, sizeof(err), "payload is %zu bytes; the limit is %ld", in->len,
		         e->cfg->gateway.max_payload);
		finish_gateway(e, r, GW_PAYLOAD_TOO_LARGE, err);
		goto out;
	}
	enum cg_err rc =
	    translate_request(rt, &v, in->payload, in->len, new_token, in, &r->tr, err);
	for (size_t i = 0; rc == CG_OK && i < v.n; i++)
		for (size_t k = 0; k < rt->n_ph; k++)
			if (strcmp(v.name[i], rt->ph_names[k]) == 0)
				rc = route_check_capture(v.name[i], v.value[i], err);
	if (rc != CG_OK) {
		r->tr.client_token[0] = '\0'; /* none was assigned to an invalid request */
		finish_gateway(e, r, GW_INVALID_REQUEST, err);
		goto out;
	}
	if (!route_command_allowed(rt, r->command)) {
		snprintf(err, sizeof(err), "command '%s' is not allowed on this route", r->command);
		r->tr.client_token[0] = '\0';
		finish_gateway(e, r, GW_FORBIDDEN, err);
		goto out;
	}
	if (fairq_len(e->waiting) >= (size_t)e->cfg->gateway.queue_size) {
		finish_gateway(e, r, GW_OVERLOADED, "too many requests are waiting");
		goto out;
	}
	if (!in->spool_seq &&
	    !fairq_admit(e->waiting, r->thing, e->cfg->gateway.per_thing_rate, now_ms())) {
		finish_gateway(e, r, GW_OVERLOADED, "this thing exceeded gateway.per_thing_rate");
		goto out;
	}
	if (e->spool && !in->spool_seq) {
		if (spool_live(e->spool) >= (size_t)e->cfg->gateway.spool_max) {
			finish_gateway(e, r, GW_OVERLOADED, "the spool is full");
			goto out;
		}
		spool_request(e, r);
	}
	r->state = RS_QUEUED;
	r->fq.deadline_ms = r->deadline_ms;
	fairq_push(e->waiting, r->thing, &r->fq);
out:
	free(storage);
}

void drain_inbox(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	struct inbound *in = e->inbox;
	e->inbox = NULL;
	e->inbox_tail = &e->inbox;
	pthread_mutex_unlock(&e->lock);
	while (in) {
		struct inbound *next = in->next;
		in->next = NULL;
		admit(e, in);
		in = next;
	}
}

void on_inbound(struct inbound *in, void *ctx)
{
	struct engine *e = ctx;
	pthread_mutex_lock(&e->lock);
	int was_empty = e->inbox == NULL;
	*e->inbox_tail = in;
	e->inbox_tail = &in->next;
	pthread_mutex_unlock(&e->lock);
	/* One wake-up per batch: the engine drains the whole inbox after every
	 * wake, so a non-empty inbox already has one pending. */
	if (was_empty)
		wake(e->wake_fd);
}

void on_delivered(uint64_t seq, void *ctx)
{
	struct engine *e = ctx;
	pthread_mutex_lock(&e->lock);
	if (e->n_delivered == e->cap_delivered) {
		e->cap_delivered = e->cap_delivered ? 2 * e->cap_delivered : 256;
		e->delivered = realloc(e->delivered, e->cap_delivered * sizeof(*e->delivered));
		if (!e->delivered)
			abort();
	}
	e->delivered[e->n_delivered++] = seq;
	pthread_mutex_unlock(&e->lock);
}

/* Record DONE for delivered replies and make this turn's ADDs durable. */
void sync_spool(struct engine *e)
{
	if (!e->spool)
		return;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->n_delivered; i++)
		spool_done(e->spool, e->delivered[i]);
	e->n_delivered = 0;
	pthread_mutex_unlock(&e->lock);
	char err[ERR_LEN];
	if (spool_flush(e->spool, 1, err) != CG_OK)
		log_error("%s", err);
}

/* A live spool entry found at start: back into the inbox as if it had just
 * arrived, with its original token and deadline. */
void resume_entry(const struct spool_entry *s, void *ctx)
{
	struct engine *e = ctx;
	struct inbound *in = calloc(1, sizeof(*in));
	if (!in)
		abort();
	in->topic = strndup(s->topic, s->topic_len);
	in->payload = malloc(s->payload_len + 1);
	if (!in->topic || !in->payload)
		abort();
	memcpy(in->payload, s->payload, s->payload_len);
	in->payload[s->payload_len] = '\0';
	in->len = s->payload_len;
	in->qos = s->qos;
	if (s->response_topic_len)
		in->response_topic = strndup(s->response_topic, s->response_topic_len);
	if (s->has_correlation) {
		in->correlation = malloc(s->correlation_len + 1);
		memcpy(in->correlation, s->correlation, s->correlation_len);
		in->correlation_len = s->correlation_len;
	}
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	int64_t now_wall = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
	in->received_wall_ms = now_wall;
	in->received_ms = now_ms();
	/* past its deadline: the deadline becomes "now" and it is answered Expired */
	in->deadline_wall_ms = s->deadline_ms > now_wall ? s->deadline_ms : now_wall;
	in->spool_seq = s->seq;
	snprintf(in->resume_token, sizeof(in->resume_token), "%.*s", (int)s->token_len, s->token);
	on_inbound(in, e);
}

void on_ready(void *ctx)
{
	struct engine *e = ctx;
	__atomic_store_n(&e->ready, 1, __ATOMIC_RELEASE);
	wake(e->wake_fd);
}
