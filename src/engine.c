/*
 * engine: request life cycle.
 *
 *   inbound --admit()--> queue --start_call()--> flight --on_done()--> reply
 *                                    ^                 |
 *                                    +---- retry <-----+ (throttle, 5xx,
 *                                                         transport, skew)
 *
 * queue is FIFO in arrival order, so per-target start order is arrival
 * order and the oldest deadline is at its head. retry and flight are short
 * lists (bounded by max_inflight). Every request leaves through finish(),
 * which publishes its one reply, logs its one line and frees it.
 */
#include "engine.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "awserr.h"
#include "backoff.h"
#include "credentials.h"
#include "fairq.h"
#include "http.h"
#include "jsonw.h"
#include "log.h"
#include "notify.h"
#include "reply.h"
#include "sigv4.h"
#include "spool.h"
#include "stats.h"
#include "translate.h"

#define SERVICE       "iot-jobs-data"
#define RETRY_BASE_MS 100
#define RETRY_CAP_MS  5000

enum req_state { RS_QUEUED, RS_FLIGHT, RS_RETRY };

/* fq is the first member: a struct fq_item * from the fair queue is the
 * request itself. */
struct request {
	struct fq_item fq; /* while waiting for its first call (RS_QUEUED) */
	struct request *next, *prev;
	enum req_state state;
	struct inbound *in; /* owned */
	char thing[130], command[66];
	char *reply_accepted, *reply_rejected; /* owned topics */
	struct translated tr;
	uint64_t deadline_ms, next_try_ms;
	unsigned attempts;
	int skew_retried, token_retried;
	unsigned waits; /* retries that used no attempt (endpoint unreachable) */
	uint64_t cred_generation;
	struct http_call call;
	/* the last failure, for the final reply when retries run out */
	struct aws_error last_aws;
	int last_was_aws;
	char last_err[ERR_LEN];
};

struct list {
	struct request *head, *tail;
	size_t n;
};

struct engine {
	struct config *cfg;
	struct cred_provider *creds;
	struct http_client *http;
	struct mqtt *mqtt;
	int wake_fd;
	pthread_mutex_t lock; /* guards inbox */
	struct inbound *inbox, **inbox_tail;
	struct fairq *waiting; /* RS_QUEUED: per thing, round-robin */
	struct list retry, flight;
	struct sigv4_key_cache keys;
	long skew_s; /* server clock minus ours */
	struct rate_limiter rate;
	int ready, draining;
	uint64_t drain_until_ms;
	unsigned long n_accepted, n_rejected, n_retries;
	struct stats stats;
	uint64_t last_stats_ms;
	struct spool *spool; /* NULL without gateway.spool_dir */
	uint64_t *delivered; /* spool seqs whose reply the broker has; guarded by lock */
	size_t n_delivered, cap_delivered;
	char *host;     /* "host[:port]" of the endpoint */
	char *url;      /* endpoint + "/command-executions" */
	char *url_path; /* path part of url */
};

static volatile sig_atomic_t stop_flag, reload_flag;
static int signal_wake_fd = -1;

static void wake(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof(one));
	(void)r;
}

void engine_signal_stop(void)
{
	stop_flag = 1;
	if (signal_wake_fd >= 0)
		wake(signal_wake_fd);
}

void engine_signal_reload(void)
{
	reload_flag = 1;
	if (signal_wake_fd >= 0)
		wake(signal_wake_fd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t random_u32(void)
{
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)rand();
	return r;
}

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

static void list_push(struct list *l, struct request *r)
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

static void list_remove(struct list *l, struct request *r)
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

static void request_free(struct request *r)
{
	inbound_free(r->in);
	free(r->reply_accepted);
	free(r->reply_rejected);
	translated_clean_up(&r->tr);
	http_call_free(&r->call);
	free(r);
}

/* Publish r's reply, log its line, free it. r must not be on any list. */
static void finish(struct engine *e, struct request *r, const struct outcome *o)
{
	o->accepted ? e->n_accepted++ : e->n_rejected++;
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

static void finish_gateway(struct engine *e, struct request *r, enum gw_code c, const char *msg)
{
	struct outcome o = {0};
	outcome_gateway(&o, c, msg);
	o.id = r->tr.id;
	o.client_token = r->tr.client_token;
	finish(e, r, &o);
}

static void finish_aws(struct engine *e, struct request *r, const struct aws_error *ae)
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
static void finish_last_error(struct engine *e, struct request *r)
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

static char *expand_or_null(const char *tmpl, const struct vars *v)
{
	struct sbuf b;
	sbuf_init(&b);
	if (template_expand(tmpl, v, &b, NULL) != CG_OK) {
		sbuf_clean_up(&b);
		return NULL;
	}
	return sbuf_steal(&b);
}

/* Find the route; fill r's names, vars and reply topics. 0 when none. */
static const struct route *bind_route(struct engine *e, struct request *r, struct vars *v,
                                      char **storage)
{
	const struct config *c = e->cfg;
	const struct route *rt = NULL;
	for (size_t i = 0; i < c->n_routes && !rt; i++)
		if (route_match(&c->routes[i], r->in->topic, storage, v))
			rt = &c->routes[i];
	if (!rt)
		return NULL;
	vars_set(v, "region", c->aws.region);
	vars_set(v, "account", c->aws.account);
	vars_set(v, "client_id", c->mqtt.client_id);
	if (rt->thing)
		vars_set(v, "thing", rt->thing);
	if (rt->command)
		vars_set(v, "command", rt->command);
	snprintf(r->thing, sizeof(r->thing), "%.128s", vars_get(v, "thing"));
	snprintf(r->command, sizeof(r->command), "%.64s", vars_get(v, "command"));
	if (topic_name_valid(r->in->response_topic)) {
		r->reply_accepted = strdup(r->in->response_topic);
		r->reply_rejected = strdup(r->in->response_topic);
	} else {
		vars_set(v, "status", "accepted");
		r->reply_accepted = expand_or_null(rt->reply_topic, v);
		vars_set(v, "status", "rejected");
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
	struct vars v = {0};
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

static void drain_inbox(struct engine *e)
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

static void on_inbound(struct inbound *in, void *ctx)
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

static void on_delivered(uint64_t seq, void *ctx)
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
static void sync_spool(struct engine *e)
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
static void resume_entry(const struct spool_entry *s, void *ctx)
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

static void on_ready(void *ctx)
{
	struct engine *e = ctx;
	__atomic_store_n(&e->ready, 1, __ATOMIC_RELEASE);
	wake(e->wake_fd);
}

/* ---- calls -------------------------------------------------------------- */

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, name);
	sbuf_puts(&b, ": ");
	sbuf_puts(&b, value);
	l = curl_slist_append(l, b.data);
	sbuf_wipe(&b);
	return l;
}

/* Sign r's body and hand the POST to libcurl. */
static enum cg_err start_call(struct engine *e, struct request *r, uint64_t now, char *err)
{
	struct sigv4_credentials cred;
	enum cg_err rc = cred_provider_get(e->creds, &cred, err);
	if (rc != CG_OK)
		return rc;
	r->cred_generation = cred.generation;
	char amz_date[SIGV4_DATE_LEN + 1];
	sigv4_format_date(time(NULL) + e->skew_s, amz_date);
	char hash[65];
	sigv4_sha256_hex(r->tr.body.data, r->tr.body.len, hash);
	struct sigv4_header h[4] = {
	    {"content-type", "application/json"},
	    {"host", e->host},
	    {"x-amz-date", amz_date},
	    {"x-amz-security-token", cred.session_token},
	};
	size_t nh = cred.session_token && *cred.session_token ? 4 : 3;
	struct sigv4_request sr = {"POST", e->url_path, NULL, h, nh, hash};
	struct sbuf authz;
	sbuf_init(&authz);
	sigv4_authorize(&sr, &cred, e->cfg->aws.region, SERVICE, amz_date, &e->keys, &authz);

	struct curl_slist *hl = NULL;
	for (size_t i = 0; i < nh; i++)
		hl = add_header(hl, h[i].name, h[i].value);
	hl = add_header(hl, "authorization", authz.data);
	hl = curl_slist_append(hl, "Expect:");
	hl = curl_slist_append(hl, "Accept: application/json");
	sbuf_wipe(&authz);

	uint64_t left = r->deadline_ms > now ? r->deadline_ms - now : 1;
	long timeout = e->cfg->aws.request_timeout_ms;
	if ((uint64_t)timeout > left)
		timeout = (long)left;
	r->call.user = r;
	r->attempts++;
	log_debug("call token=%s attempt=%u thing=%s", r->tr.client_token, r->attempts, r->thing);
	return http_post(e->http, &r->call, e->url, hl, r->tr.body.data, r->tr.body.len, timeout,
	                 err);
}

/* Try to start r now; on a local failure it is answered. */
static void launch(struct engine *e, struct request *r, uint64_t now)
{
	char err[ERR_LEN] = "";
	enum cg_err rc = start_call(e, r, now, err);
	if (rc == CG_OK) {
		r->state = RS_FLIGHT;
		list_push(&e->flight, r);
	} else if (rc == CG_CREDENTIALS) {
		finish_gateway(e, r, GW_CREDENTIALS_UNAVAILABLE, err);
	} else {
		log_error("cannot start call: %s", err);
		finish_gateway(e, r, GW_INTERNAL_ERROR, err);
	}
}

/* Schedule a retry of r if attempts and deadline allow; else answer it.
 * A call that never reached the endpoint does not use up an attempt: while
 * AWS is unreachable, requests wait (with backoff) until their deadline. */
static void retry_or_finish(struct engine *e, struct request *r, uint64_t now, int not_sent)
{
	if (not_sent) {
		r->attempts--;
		r->waits++;
	}
	unsigned step = r->attempts + r->waits;
	uint64_t delay =
	    backoff_full_jitter(step ? step : 1, RETRY_BASE_MS, RETRY_CAP_MS, random_u32());
	if (not_sent && now + delay >= r->deadline_ms && now + 50 < r->deadline_ms)
		delay = r->deadline_ms - now - 50; /* one last try just before the deadline */
	if (r->attempts >= (unsigned)e->cfg->aws.max_attempts || now + delay >= r->deadline_ms ||
	    e->draining) {
		finish_last_error(e, r);
		return;
	}
	e->n_retries++;
	e->stats.retries++;
	http_call_free(&r->call);
	r->next_try_ms = now + delay;
	r->state = RS_RETRY;
	list_push(&e->retry, r);
}

static void on_response(struct engine *e, struct request *r, uint64_t now)
{
	struct http_call *c = &r->call;
	if (c->status >= 200 && c->status < 300) {
		char exec_id[256], err[ERR_LEN];
		rate_on_success(&e->rate);
		if (aws_parse_execution_id(c->body.data, c->body.len, exec_id, sizeof(exec_id),
		                           err) != CG_OK) {
			finish_gateway(e, r, GW_INTERNAL_ERROR, err);
			return;
		}
		struct outcome o = {.accepted = 1,
		                    .execution_id = exec_id,
		                    .id = r->tr.id,
		                    .client_token = r->tr.client_token};
		finish(e, r, &o);
		return;
	}
	struct aws_error ae;
	aws_error_parse((int)c->status, c->error_type, c->body.data, c->body.len, &ae);
	time_t server;
	if (ae.clock_skew && !r->skew_retried && aws_parse_http_date(c->date, &server) == 0) {
		e->skew_s = (long)(server - time(NULL));
		r->skew_retried = 1;
		r->attempts--; /* a re-signed call is not a new attempt */
		http_call_free(c);
		log_warn("clock skew: AWS is %+lds from local time; re-signing", e->skew_s);
		r->next_try_ms = now;
		r->state = RS_RETRY;
		list_push(&e->retry, r);
		return;
	}
	if (ae.expired_token && !r->token_retried) {
		/* One refresh and one re-signed attempt (not counted as an attempt). */
		cred_provider_invalidate(e->creds, r->cred_generation);
		r->token_retried = 1;
		r->attempts--;
		http_call_free(c);
		r->next_try_ms = now + 300;
		r->state = RS_RETRY;
		list_push(&e->retry, r);
		return;
	}
	if (ae.throttled)
		rate_on_throttle(&e->rate, now);
	if (!ae.retryable) {
		finish_aws(e, r, &ae);
		return;
	}
	r->last_aws = ae;
	r->last_was_aws = 1;
	retry_or_finish(e, r, now, 0);
}

static void on_done(struct http_call *call, void *ctx)
{
	struct engine *e = ctx;
	struct request *r = call->user;
	uint64_t now = now_ms();
	list_remove(&e->flight, r);
	if (call->result == CG_OK) {
		on_response(e, r, now);
	} else if (now >= r->deadline_ms) {
		finish_gateway(e, r, GW_EXPIRED, "the deadline passed before AWS answered");
	} else {
		snprintf(r->last_err, sizeof(r->last_err), "endpoint unreachable: %.180s (%s)",
		         call->errbuf, cg_strerror(call->result));
		r->last_was_aws = 0;
		log_debug("call token=%s failed: %s", r->tr.client_token, r->last_err);
		retry_or_finish(e, r, now, call->not_sent);
	}
}

/* ---- the loop ----------------------------------------------------------- */

static void expire_waiting(struct engine *e, uint64_t now)
{
	struct fq_item *it;
	while ((it = fairq_pop_expired(e->waiting, now)) != NULL)
		finish_gateway(e, (struct request *)it, GW_EXPIRED,
		               "the deadline passed while the request waited");
	for (struct request *r = e->retry.head, *next; r; r = next) {
		next = r->next;
		if (r->deadline_ms <= now) {
			list_remove(&e->retry, r);
			finish_gateway(e, r, GW_EXPIRED, "the deadline passed before AWS answered");
		}
	}
}

/* Start what may start; returns ms until the rate limiter allows more. */
static uint64_t start_ready(struct engine *e, uint64_t now)
{
	size_t max = (size_t)e->cfg->gateway.max_inflight;
	for (struct request *r = e->retry.head, *next; r && e->flight.n < max; r = next) {
		next = r->next;
		if (r->next_try_ms > now)
			continue;
		uint64_t wait = rate_take(&e->rate, now);
		if (wait)
			return wait;
		list_remove(&e->retry, r);
		launch(e, r, now);
	}
	while (fairq_len(e->waiting) && e->flight.n < max) {
		uint64_t wait = rate_take(&e->rate, now);
		if (wait)
			return wait;
		launch(e, (struct request *)fairq_pop(e->waiting), now);
	}
	return 0;
}

static int next_timeout(struct engine *e, uint64_t now, uint64_t rate_wait)
{
	uint64_t t = 1000;
	if (rate_wait && rate_wait < t)
		t = rate_wait;
	for (struct request *r = e->retry.head; r; r = r->next)
		if (r->next_try_ms > now && r->next_try_ms - now < t)
			t = r->next_try_ms - now;
		else if (r->next_try_ms <= now)
			t = 0;
	uint64_t d = fairq_next_deadline(e->waiting);
	if (d != UINT64_MAX)
		t = d <= now ? 0 : (d - now < t ? d - now : t);
	return (int)t;
}

static void set_endpoint(struct engine *e)
{
	free(e->host);
	free(e->url);
	free(e->url_path);
	const char *u = e->cfg->endpoint_url;
	const char *auth = strstr(u, "://") + 3;
	size_t n = strcspn(auth, "/?#");
	e->host = strndup(auth, n);
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s/command-executions", auth[n] == '/' ? auth + n : "");
	e->url_path = sbuf_steal(&b);
	sbuf_init(&b);
	sbuf_printf(&b, "%.*s%s", (int)(auth - u + (long)n), u, e->url_path);
	e->url = sbuf_steal(&b);
}

static char **route_filters(const struct config *c)
{
	char **f = calloc(c->n_routes + 1, sizeof(char *));
	if (!f)
		abort();
	for (size_t i = 0; i < c->n_routes; i++)
		f[i] = c->routes[i].filter;
	return f;
}

static int cred_config_differs(const struct cred_config *a, const struct cred_config *b)
{
	const char *x[] = {a->source,         a->access_key_id, a->secret_access_key_file,
	                   a->profile,        a->iot.endpoint,  a->iot.role_alias,
	                   a->iot.thing_name, a->iot.cert_file, a->iot.key_file,
	                   a->iot.ca_file};
	const char *y[] = {b->source,         b->access_key_id, b->secret_access_key_file,
	                   b->profile,        b->iot.endpoint,  b->iot.role_alias,
	                   b->iot.thing_name, b->iot.cert_file, b->iot.key_file,
	                   b->iot.ca_file};
	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		if (strcmp(x[i], y[i]) != 0)
			return 1;
	return 0;
}

static void reload(struct engine *e)
{
	char err[ERR_LEN];
	struct config *n = config_load(e->cfg->path, err);
	if (!n) {
		log_error("reload failed, keeping the current configuration: %s", err);
		return;
	}
	struct sbuf diff;
	sbuf_init(&diff);
	config_restart_needed(e->cfg, n, &diff);
	if (diff.len)
		log_warn("reload: changes to %s take effect after a restart", diff.data);
	sbuf_clean_up(&diff);
	struct config *old = e->cfg;
	e->cfg = n;
	char **f = route_filters(n);
	mqtt_set_filters(e->mqtt, f, n->n_routes);
	free(f);
	if (!getenv("CMDGATE_LOG_LEVEL_OVERRIDE"))
		log_configure(n->log.level, n->log.format);
	else
		log_configure(NULL, n->log.format);
	e->rate.max_rate = n->aws.max_rate;
	if (n->aws.max_rate > 0 && (e->rate.rate <= 0 || e->rate.rate > n->aws.max_rate))
		e->rate.rate = n->aws.max_rate;
	if (cred_config_differs(&old->aws.credentials, &n->aws.credentials)) {
		cred_provider_free(e->creds);
		e->creds = cred_provider_new(&n->aws.credentials);
		cred_provider_wait_first(e->creds, 2000);
		sigv4_key_cache_clean_up(&e->keys);
	}
	set_endpoint(e);
	config_free(old);
	log_info("configuration reloaded from %s (%zu routes)", n->path, n->n_routes);
}

static void begin_drain(struct engine *e, uint64_t now)
{
	e->draining = 1;
	e->drain_until_ms = now + (uint64_t)e->cfg->gateway.drain_ms;
	log_info("stopping: %zu in flight, %zu waiting; draining up to %ld ms", e->flight.n,
	         fairq_len(e->waiting) + e->retry.n, e->cfg->gateway.drain_ms);
	notify_send("STOPPING=1");
	mqtt_set_filters(e->mqtt, NULL, 0); /* take no new requests */
	size_t kept = 0;
	for (;;) {
		struct request *r = (struct request *)fairq_pop(e->waiting);
		if (!r && (r = e->retry.head) != NULL)
			list_remove(&e->retry, r);
		if (!r)
			break;
		if (e->spool && r->in->spool_seq) { /* resumed at the next start */
			request_free(r);
			kept++;
		} else {
			finish_gateway(e, r, GW_UNAVAILABLE, "the gateway is shutting down");
		}
	}
	if (kept)
		log_info("stopping: %zu waiting request(s) stay in the spool", kept);
}

static void abort_flight(struct engine *e)
{
	while (e->flight.head) {
		struct request *r = e->flight.head;
		list_remove(&e->flight, r);
		http_abort(e->http, &r->call);
		if (e->spool && r->in->spool_seq) {
			log_info("stopping: token=%s stays in the spool", r->tr.client_token);
			request_free(r);
			continue;
		}
		finish_gateway(e, r, GW_UNAVAILABLE,
		               "the gateway stopped before AWS answered; retry with the same id");
	}
}

/* Publish the stats JSON (retained) and rewrite the Prometheus textfile. */
static void emit_stats(struct engine *e)
{
	const struct config *c = e->cfg;
	if (!*c->stats.topic && !*c->stats.file)
		return;
	struct stats_gauges g = {.queue = fairq_len(e->waiting) + e->retry.n,
	                         .inflight = e->flight.n,
	                         .mqtt_connected = mqtt_connected(e->mqtt),
	                         .now = time(NULL),
	                         .client_id = c->mqtt.client_id};
	cred_provider_info(e->creds, &g.cred_source, &g.cred_expiry);
	struct sbuf b;
	sbuf_init(&b);
	if (*c->stats.topic) {
		struct vars v = {0};
		vars_set(&v, "client_id", c->mqtt.client_id);
		struct sbuf topic;
		sbuf_init(&topic);
		template_expand(c->stats.topic, &v, &topic, NULL);
		stats_render_json(&e->stats, &g, &b);
		char err[ERR_LEN];
		if (mqtt_publish(e->mqtt, topic.data, b.data, b.len, 1, 1, NULL, 0, err) != CG_OK)
			log_warn("stats not published: %s", err);
		sbuf_clean_up(&topic);
	}
	if (*c->stats.file) {
		sbuf_reset(&b);
		stats_render_prometheus(&e->stats, &g, &b);
		struct sbuf tmp;
		sbuf_init(&tmp);
		sbuf_printf(&tmp, "%s.tmp.%d", c->stats.file, (int)getpid());
		FILE *f = fopen(tmp.data, "w");
		int ok = f && fwrite(b.data, 1, b.len, f) == b.len;
		if (f && fclose(f) != 0)
			ok = 0;
		if (!ok || rename(tmp.data, c->stats.file) != 0) {
			log_warn("stats file %s not written: %s", c->stats.file, strerror(errno));
			unlink(tmp.data);
		}
		sbuf_clean_up(&tmp);
	}
	sbuf_clean_up(&b);
	stats_new_interval(&e->stats);
}

static void report_status(struct engine *e)
{
	char s[200];
	snprintf(s, sizeof(s),
	         "STATUS=mqtt %s; %zu in flight, %zu waiting; %lu accepted, %lu rejected, %lu "
	         "retries",
	         mqtt_connected(e->mqtt) ? "connected" : "disconnected", e->flight.n,
	         fairq_len(e->waiting) + e->retry.n, e->n_accepted, e->n_rejected, e->n_retries);
	fairq_sweep(e->waiting, e->cfg->gateway.per_thing_rate, now_ms());
	notify_send(s);
}

int engine_run(struct engine *e)
{
	char err[ERR_LEN];
	struct mqtt_hooks hooks = {on_inbound, on_ready, on_delivered, e};
	char **f = route_filters(e->cfg);
	e->mqtt = mqtt_start(e->cfg, f, e->cfg->n_routes, &hooks, err);
	free(f);
	if (!e->mqtt) {
		log_error("%s", err);
		return 1;
	}
	if (e->spool && spool_recover(e->spool, resume_entry, e, err) != CG_OK) {
		log_error("%s", err);
		mqtt_stop(e->mqtt, 0);
		e->mqtt = NULL;
		return 1;
	}
	uint64_t wd = notify_watchdog_interval_ms(), last_wd = 0, last_status = 0;
	int announced = 0;
	uint64_t rate_wait = 0;
	for (;;) {
		uint64_t now = now_ms();
		if (stop_flag && !e->draining)
			begin_drain(e, now);
		if (reload_flag) {
			reload_flag = 0;
			notify_send("RELOADING=1");
			reload(e);
			notify_send("READY=1");
		}
		drain_inbox(e);
		sync_spool(e); /* before any call of a request admitted this turn starts */
		expire_waiting(e, now);
		if (e->draining && (e->flight.n == 0 || now >= e->drain_until_ms)) {
			abort_flight(e);
			break;
		}
		rate_wait = start_ready(e, now);
		if (!announced && __atomic_load_n(&e->ready, __ATOMIC_ACQUIRE)) {
			announced = 1;
			log_info("ready: subscribed to %zu filter(s)", e->cfg->n_routes);
			notify_send("READY=1");
			report_status(e);
			last_status = now;
		}
		if (wd && now - last_wd >= wd) {
			notify_send("WATCHDOG=1");
			last_wd = now;
		}
		if (now - last_status >= 2000) {
			report_status(e);
			last_status = now;
		}
		if (now - e->last_stats_ms >= (uint64_t)e->cfg->stats.interval * 1000) {
			emit_stats(e);
			e->last_stats_ms = now;
		}
		mqtt_tick(e->mqtt, now);
		fflush(stderr); /* log lines are written once per loop turn, not per line */
		http_client_run(e->http, e->wake_fd, next_timeout(e, now, rate_wait), on_done, e);
		uint64_t drained;
		while (read(e->wake_fd, &drained, sizeof(drained)) > 0)
			;
	}
	drain_inbox(e); /* late arrivals are answered Unavailable */
	emit_stats(e);
	/* Replies already queued in Paho go out before the DISCONNECT. */
	mqtt_stop(e->mqtt, 5000);
	e->mqtt = NULL;
	sync_spool(e); /* DONE for the replies the broker took while stopping */
	log_info("stopped: %lu accepted, %lu rejected", e->n_accepted, e->n_rejected);
	return 0;
}

struct engine *engine_new(struct config *cfg, char *err)
{
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		abort();
	e->cfg = cfg;
	e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->wake_fd < 0) {
		cg_fail(err, CG_INTERNAL, "eventfd: %s", strerror(errno));
		free(e);
		return NULL;
	}
	signal_wake_fd = e->wake_fd;
	pthread_mutex_init(&e->lock, NULL);
	e->inbox_tail = &e->inbox;
	/* Under systemd the unit's StateDirectory is the spool's default home. */
	const char *spool_dir = cfg->gateway.spool_dir;
	char state_dir[512] = "";
	const char *sd = getenv("STATE_DIRECTORY");
	if (!*spool_dir && sd && *sd) {
		snprintf(state_dir, sizeof(state_dir), "%.*s/spool", (int)strcspn(sd, ":"), sd);
		spool_dir = state_dir;
	}
	if (*spool_dir) {
		e->spool = spool_open(spool_dir, err);
		if (e->spool)
			log_info("spool: %s", spool_dir);
		if (!e->spool) {
			pthread_mutex_destroy(&e->lock);
			close(e->wake_fd);
			free(e);
			return NULL;
		}
	}
	e->creds = cred_provider_new(&cfg->aws.credentials);
	cred_provider_wait_first(e->creds, 3000);
	struct http_options ho = {cfg->aws.ca_file, cfg->aws.connect_timeout_ms};
	e->http = http_client_new(&ho);
	rate_init(&e->rate, cfg->aws.max_rate, now_ms());
	e->waiting = fairq_new();
	stats_init(&e->stats, time(NULL));
	e->last_stats_ms = now_ms();
	set_endpoint(e);
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	signal_wake_fd = -1;
	pthread_mutex_lock(&e->lock);
	struct inbound *in = e->inbox;
	e->inbox = NULL;
	pthread_mutex_unlock(&e->lock);
	while (in) {
		struct inbound *next = in->next;
		inbound_free(in);
		in = next;
	}
	http_client_free(e->http);
	cred_provider_free(e->creds);
	spool_close(e->spool);
	free(e->delivered);
	fairq_free(e->waiting);
	sigv4_key_cache_clean_up(&e->keys);
	config_free(e->cfg);
	free(e->host);
	free(e->url);
	free(e->url_path);
	pthread_mutex_destroy(&e->lock);
	close(e->wake_fd);
	free(e);
}
