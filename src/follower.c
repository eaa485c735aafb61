/*
 * follower: follows live in one doubly linked list (a follower holds a few
 * thousand at most: one per execution started in the last follow_max_s),
 * scanned per run; targets are a small list with reference counts, each
 * remembering when one of its follows was last polled, which is what makes
 * the choice among due polls round-robin across targets.
 */
#include "follower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "follow_poll.h"
#include "log.h"
#include "ratectl.h"
#include "runtime.h"

#define PUBLISH_RETRY_MS 1000

struct target {
	struct target *next;
	char *arn;
	size_t refs;
	uint64_t last_ms; /* last poll started for one of its follows */
};

struct follow {
	struct follow *next, *prev;
	struct target *target;
	char *thing, *command, *execution_id, *topic, *id_json; /* owned */
	void *corr;
	size_t corr_len;
	int has_corr, qos;
	char *path, *query; /* path without the endpoint's prefix; canonical query */
	struct follow_state st;
	uint64_t due_ms, sent_ms;
	int in_flight;
	struct http_call call;
	uint64_t spool_seq; /* 0: not spooled */
	uint64_t cred_generation;
	int skew_retried, token_retried;
	/* a message publish refused, offered again; final: the follow ends after it */
	struct sbuf pending;
	int pending_final;
	enum follow_status pending_status;
	const char *end_label; /* for the log line */
};

struct follower {
	struct follower_options o;
	char *region; /* owned copy */
	struct follow_endpoint ep;
	struct http_client *http;
	struct cred_provider *creds;
	struct spool *spool;
	follower_publish_fn publish;
	void *ctx;
	struct follow *head, *tail;
	size_t n, inflight;
	struct target *targets;
	struct ratectl rate; /* the same controller as for starts, its own budget */
	uint64_t rate_wait_until;
	struct sigv4_key_cache keys;
	long skew_s;
	struct follower_counters counters;
};

static char *dup_n(const char *s, size_t n)
{
	return rt_memdup(s ? s : "", s ? n : 0);
}

/* ---- configuration ------------------------------------------------------ */

struct follower_options follower_options_of(const struct config *c)
{
	struct follower_options o = {c->control_url,
	                             c->aws.region,
	                             c->aws.follow_max_rate,
	                             c->aws.request_timeout_ms,
	                             (size_t)c->gateway.max_inflight,
	                             c->gateway.follow_poll_ms};
	return o;
}

int follower_configured(const struct config *c)
{
	for (size_t i = 0; i < c->n_routes; i++)
		if (c->routes[i].follow)
			return 1;
	return 0;
}

static void set_options(struct follower *f, const struct follower_options *o)
{
	free(f->region);
	f->region = rt_strdup(o->region);
	follow_endpoint_set(&f->ep, o->control_url);
	f->o = *o;
	f->o.control_url = NULL; /* f->ep holds it */
	f->o.region = f->region;
	if (f->o.max_inflight < 1)
		f->o.max_inflight = 1;
}

struct follower *follower_new(const struct follower_options *o, struct http_client *http,
                              struct cred_provider *creds, struct spool *spool,
                              follower_publish_fn publish, void *ctx, uint64_t now_ms)
{
	struct follower *f = rt_calloc(1, sizeof(*f));
	set_options(f, o);
	f->http = http;
	f->creds = creds;
	f->spool = spool;
	f->publish = publish;
	f->ctx = ctx;
	ratectl_init(&f->rate, o->max_rate, now_ms);
	return f;
}

void follower_reconfigure(struct follower *f, const struct follower_options *o)
{
	set_options(f, o);
	ratectl_set_max(&f->rate, o->max_rate, rt_now_ms());
	sigv4_key_cache_clean_up(&f->keys);
}

void follower_set_credentials(struct follower *f, struct cred_provider *creds)
{
	f->creds = creds;
	sigv4_key_cache_clean_up(&f->keys);
}

/* ---- the set of follows ------------------------------------------------- */

static struct target *target_ref(struct follower *f, const char *arn)
{
	for (struct target *t = f->targets; t; t = t->next)
		if (strcmp(t->arn, arn) == 0) {
			t->refs++;
			return t;
		}
	struct target *t = rt_calloc(1, sizeof(*t));
	t->arn = rt_strdup(arn);
	t->refs = 1;
	t->next = f->targets;
	f->targets = t;
	return t;
}

static void target_unref(struct follower *f, struct target *t)
{
	if (--t->refs)
		return;
	for (struct target **p = &f->targets; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	free(t->arn);
	free(t);
}

static void link_follow(struct follower *f, struct follow *w)
{
	w->prev = f->tail;
	w->next = NULL;
	if (f->tail)
		f->tail->next = w;
	else
		f->head = w;
	f->tail = w;
	f->n++;
}

static void free_follow(struct follower *f, struct follow *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		f->tail = w->prev;
	f->n--;
	if (w->in_flight) {
		http_abort(f->http, &w->call);
		f->inflight--;
	} else {
		http_call_free(&w->call);
	}
	target_unref(f, w->target);
	void *owned[] = {w->thing,   w->command, w->execution_id, w->topic,
	                 w->id_json, w->corr,    w->path,         w->query};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		free(owned[i]);
	sbuf_clean_up(&w->pending);
	free(w);
}

/* A follow from its parts (copied); NULL when the execution id is bad. */
static struct follow *make_follow(struct follower *f, const struct follow_info *in)
{
	struct sbuf path;
	sbuf_init(&path);
	if (follow_request_path(&path, "", in->execution_id) != 0) {
		sbuf_clean_up(&path);
		return NULL;
	}
	struct follow *w = rt_calloc(1, sizeof(*w));
	w->path = sbuf_steal(&path);
	struct sbuf q;
	sbuf_init(&q);
	follow_request_query(&q, in->target_arn);
	w->query = sbuf_steal(&q);
	w->thing = rt_strdup(in->thing);
	w->command = rt_strdup(in->command);
	w->execution_id = rt_strdup(in->execution_id);
	w->topic = rt_strdup(in->topic);
	w->id_json = in->id_json && *in->id_json ? rt_strdup(in->id_json) : NULL;
	w->qos = in->qos;
	if (in->correlation) {
		w->corr = rt_memdup(in->correlation, in->correlation_len);
		w->corr_len = in->correlation_len;
		w->has_corr = 1;
	}
	w->target = target_ref(f, in->target_arn);
	sbuf_init(&w->pending);
	return w;
}

static struct follow *find(struct follower *f, const char *execution_id)
{
	for (struct follow *w = f->head; w; w = w->next)
		if (strcmp(w->execution_id, execution_id) == 0)
			return w;
	return NULL;
}

enum cg_err follower_add(struct follower *f, const struct follow_info *in, uint64_t started_ms,
                         long max_s, char *err)
{
	/* A repeated request (same id, so the same execution) or one resumed
	 * from the spool whose follow was resumed too: followed once. */
	if (find(f, in->execution_id)) {
		log_debug("follow execution=%s: already followed", in->execution_id);
		return CG_OK;
	}
	struct follow *w = make_follow(f, in);
	if (!w)
		return cg_fail(err, CG_INVALID, "executionId '%.140s' cannot be followed",
		               in->execution_id);
	follow_state_init(&w->st, started_ms, max_s);
	w->st.poll_ms = (uint64_t)f->o.poll_ms;
	w->due_ms = started_ms + follow_poll_delay_ms(0, w->st.poll_ms, rt_random_u32());
	if (f->spool) {
		int64_t wall = rt_wall_ms();
		struct spool_follow rec = {.started_ms = wall,
		                           .deadline_ms = wall + (int64_t)max_s * 1000,
		                           .qos = (uint8_t)in->qos,
		                           .thing = w->thing,
		                           .command = w->command,
		                           .execution_id = w->execution_id,
		                           .target_arn = w->target->arn,
		                           .topic = w->topic,
		                           .id_json = w->id_json ? w->id_json : "",
		                           .correlation = w->corr,
		                           .correlation_len = w->corr_len,
		                           .has_correlation = w->has_corr};
		rec.thing_len = strlen(rec.thing), rec.command_len = strlen(rec.command);
		rec.execution_id_len = strlen(rec.execution_id), rec.topic_len = strlen(rec.topic);
		rec.target_arn_len = strlen(rec.target_arn), rec.id_json_len = strlen(rec.id_json);
		spool_add_follow(f->spool, &rec);
		w->spool_seq = rec.seq;
	}
	link_follow(f, w);
	log_debug("follow thing=%s command=%s execution=%s started", w->thing, w->command,
	          w->execution_id);
	return CG_OK;
}

void follower_resume(const struct spool_follow *rec, void *ctx)
{
	struct follower *f = ctx;
	const char *src[6] = {rec->thing,      rec->command, rec->execution_id,
	                      rec->target_arn, rec->topic,   rec->id_json};
	size_t len[6] = {rec->thing_len,      rec->command_len, rec->execution_id_len,
	                 rec->target_arn_len, rec->topic_len,   rec->id_json_len};
	char *v[6];
	for (size_t i = 0; i < 6; i++)
		v[i] = dup_n(src[i], len[i]);
	const void *corr = rec->has_correlation ? (rec->correlation ? rec->correlation : "") : NULL;
	struct follow_info in = {
	    v[0], v[1], v[2], v[3], v[4], v[5], rec->qos, corr, rec->correlation_len};
	/* two records of one execution are one follow; a bad id is dropped */
	struct follow *w = find(f, v[2]) ? NULL : make_follow(f, &in);
	for (size_t i = 0; i < 6; i++)
		free(v[i]);
	if (!w) {
		if (f->spool)
			spool_done(f->spool, rec->seq);
		return;
	}
	/* wall-clock times -> this run's monotonic clock */
	uint64_t now = rt_now_ms();
	int64_t wall = rt_wall_ms();
	int64_t age = wall - rec->started_ms, left = rec->deadline_ms - wall;
	uint64_t started = age > 0 && (uint64_t)age < now ? now - (uint64_t)age : now;
	uint64_t deadline = left > 0 ? now + (uint64_t)left : now;
	enum follow_status last = rec->last_status <= FOLLOW_TIMED_OUT
	                              ? (enum follow_status)rec->last_status
	                              : FOLLOW_NONE;
	follow_state_resume(&w->st, started, deadline, last);
	w->st.poll_ms = (uint64_t)f->o.poll_ms;
	w->due_ms = now + follow_poll_delay_ms(0, w->st.poll_ms, rt_random_u32());
	w->spool_seq = rec->seq;
	link_follow(f, w);
	log_info("follow thing=%s command=%s execution=%s resumed from the spool", w->thing,
	         w->command, w->execution_id);
}

/* ---- messages ----------------------------------------------------------- */

/* One line per final outcome, counted; then the follow is gone. */
static void finished(struct follower *f, struct follow *w, uint64_t now)
{
	int idx = w->end_label ? FOLLOW_NONE : (int)w->st.last;
	f->counters.finished[idx]++;
	log_info("follow thing=%s command=%s id=%s execution=%s outcome=%s%s%s polls=%u "
	         "duration_ms=%llu",
	         w->thing, w->command, w->id_json ? w->id_json : "-", w->execution_id,
	         w->end_label ? "ended" : follow_status_name(w->st.last),
	         w->end_label ? " code=" : "", w->end_label ? w->end_label : "", w->st.polls,
	         (unsigned long long)(now - w->st.started_ms));
	free_follow(f, w);
}

/* Offer the pending message; 1 when it is done with (taken, or refused for
 * good: logged, and a final one still ends the follow). */
static int flush_pending(struct follower *f, struct follow *w, uint64_t now)
{
	uint64_t cookie = w->pending_final ? w->spool_seq : 0;
	int rc = f->publish(f->ctx, w->topic, w->pending.data, w->pending.len, w->qos,
	                    w->has_corr ? w->corr : NULL, w->corr_len, cookie);
	if (rc > 0) {
		w->due_ms = now + PUBLISH_RETRY_MS;
		return 0;
	}
	if (rc < 0)
		log_error("follow execution=%s: message to %s refused for good", w->execution_id,
		          w->topic);
	else
		f->counters.messages++;
	sbuf_reset(&w->pending);
	if (!w->pending_final && f->spool && w->spool_seq)
		spool_follow_status(f->spool, w->spool_seq, (uint8_t)w->pending_status);
	return 1;
}

/* Render and publish what step asks for; frees w when it was the end.
 * Returns 1 when w is gone. */
static int apply(struct follower *f, struct follow *w, const struct follow_step *step,
                 const struct follow_answer *a, uint64_t now)
{
	if (!step->final)
		w->due_ms = step->next_poll_ms;
	if (!step->publish)
		return 0;
	sbuf_reset(&w->pending);
	if (step->code) {
		follow_render_end(&w->pending, w->id_json, w->execution_id, step->status,
		                  step->code, step->retryable);
		w->end_label = step->code; /* a literal or text in w->st: lives as long as w */
	} else {
		follow_render_status(&w->pending, w->id_json, w->execution_id, a, step->final);
	}
	w->pending_final = step->final;
	w->pending_status = step->status;
	if (!flush_pending(f, w, now))
		return 0;
	if (!step->final)
		return 0;
	finished(f, w, now);
	return 1;
}

/* ---- polls -------------------------------------------------------------- */

static void on_poll_done(struct http_call *call, void *ctx);

static enum cg_err start_poll(struct follower *f, struct follow *w, uint64_t now, char *err)
{
	struct follow_poll_env env = {
	    f->http, f->creds, &f->keys, &f->ep, f->region, f->skew_s, f->o.request_timeout_ms};
	w->call.user = w;
	enum cg_err rc = follow_poll_start(&env, &w->call, w->path, w->query, on_poll_done, f,
	                                   &w->cred_generation, err);
	if (rc == CG_OK) {
		w->in_flight = 1;
		w->sent_ms = now;
		f->inflight++;
		w->target->last_ms = now;
	}
	return rc;
}

/* A failure of w's poll; gateway codes for what never reached AWS. */
static void failed(struct follower *f, struct follow *w, int http_status, const char *code,
                   int retryable, uint64_t now)
{
	struct follow_step step;
	follow_on_failure(&w->st, http_status, code, retryable, now, rt_random_u32(), &step);
	log_debug("follow execution=%s poll failed: %s (HTTP %d)", w->execution_id, code,
	          http_status);
	apply(f, w, &step, NULL, now);
}

/* w may be gone when this returns. */
static void on_result(struct follower *f, struct follow *w, struct follow_poll_result *res,
                      uint64_t now)
{
	if (res->http_status)
		ratectl_on_answer(&f->rate, now, res->throttled, w->sent_ms);
	if (res->answered) {
		w->skew_retried = w->token_retried = 0;
		struct follow_step step;
		follow_on_answer(&w->st, &res->answer, now, rt_random_u32(), &step);
		apply(f, w, &step, &res->answer, now);
		return;
	}
	f->counters.poll_errors++;
	if (res->clock_skew && !w->skew_retried) {
		f->skew_s = (long)(res->server_date - rt_wall_s());
		w->skew_retried = 1;
		w->due_ms = now; /* re-signed at once: not a step of the schedule */
		return;
	}
	if (res->expired_token && !w->token_retried) {
		cred_provider_invalidate(f->creds, w->cred_generation);
		w->token_retried = 1;
		w->due_ms = now + 300;
		return;
	}
	failed(f, w, res->http_status, res->code, res->retryable, now);
}

static void on_poll_done(struct http_call *call, void *ctx)
{
	struct follower *f = ctx;
	struct follow *w = call->user;
	uint64_t now = rt_now_ms();
	w->in_flight = 0;
	f->inflight--;
	f->counters.polls++;
	/* the answer's body, taken from the call: w may be freed below */
	struct sbuf body = call->body;
	memset(&call->body, 0, sizeof(call->body)); /* http_get initialises it again */
	struct follow_poll_result res;
	follow_poll_read(call, &body, &res);
	sbuf_clean_up(&body);
	on_result(f, w, &res, now);
	follow_poll_result_clean_up(&res);
}

/* The due follow whose target was served least recently; NULL: none due. */
static struct follow *pick_due(struct follower *f, uint64_t now)
{
	struct follow *best = NULL;
	for (struct follow *w = f->head; w; w = w->next) {
		if (w->in_flight || w->pending.len || w->due_ms > now)
			continue;
		if (!best || w->target->last_ms < best->target->last_ms ||
		    (w->target->last_ms == best->target->last_ms && w->due_ms < best->due_ms))
			best = w;
	}
	return best;
}

void follower_run(struct follower *f, uint64_t now)
{
	struct follow_step step;
	for (struct follow *w = f->head, *next; w; w = next) {
		next = w->next;
		if (w->in_flight)
			continue;
		if (w->pending.len) {
			if (w->due_ms <= now && flush_pending(f, w, now) && w->pending_final)
				finished(f, w, now);
			continue;
		}
		if (follow_check_deadline(&w->st, now, &step))
			apply(f, w, &step, NULL, now);
	}
	f->rate_wait_until = 0;
	while (f->inflight < f->o.max_inflight) {
		struct follow *w = pick_due(f, now);
		if (!w)
			break;
		uint64_t wait = ratectl_take(&f->rate, now);
		if (wait) {
			f->rate_wait_until = now + wait;
			break;
		}
		char err[ERR_LEN] = "";
		enum cg_err rc = start_poll(f, w, now, err);
		if (rc == CG_OK)
			continue;
		/* no credentials, or curl refused: a failed poll on the schedule
		 * (not counted as a poll: nothing was sent) */
		w->target->last_ms = now;
		if (rc == CG_CREDENTIALS)
			failed(f, w, 0, "CredentialsUnavailable", 1, now);
		else
			failed(f, w, 0, "InternalError", 1, now);
	}
}

uint64_t follower_next_ms(const struct follower *f, uint64_t now)
{
	uint64_t t = UINT64_MAX;
	for (const struct follow *w = f->head; w; w = w->next) {
		if (w->in_flight)
			continue;
		uint64_t due = w->due_ms;
		if (!w->pending.len && w->st.deadline_ms < due)
			due = w->st.deadline_ms;
		uint64_t d = due > now ? due - now : 0;
		if (d < t)
			t = d;
	}
	if (t == 0 && f->rate_wait_until > now)
		t = f->rate_wait_until - now;
	if (t == 0 && f->inflight >= f->o.max_inflight)
		t = UINT64_MAX; /* a completion wakes the loop */
	return t;
}

void follower_shutdown(struct follower *f)
{
	uint64_t now = rt_now_ms();
	size_t kept = 0;
	while (f->head) {
		struct follow *w = f->head;
		if (w->in_flight) {
			http_abort(f->http, &w->call);
			w->in_flight = 0;
			f->inflight--;
		}
		if (f->spool && w->spool_seq && !w->pending_final) {
			kept++;
			free_follow(f, w);
			continue;
		}
		if (!w->pending_final) {
			sbuf_reset(&w->pending);
			follow_render_end(&w->pending, w->id_json, w->execution_id, w->st.last,
			                  "Unavailable", 1);
			w->pending_final = 1;
			w->end_label = "Unavailable";
		}
		flush_pending(f, w, now);
		finished(f, w, now);
	}
	if (kept)
		log_info("stopping: %zu follow(s) stay in the spool", kept);
}

void follower_free(struct follower *f)
{
	if (!f)
		return;
	while (f->head)
		free_follow(f, f->head);
	sigv4_key_cache_clean_up(&f->keys);
	follow_endpoint_clean_up(&f->ep);
	free(f->region);
	free(f);
}

size_t follower_active(const struct follower *f)
{
	return f->n;
}

const struct follower_counters *follower_counters(const struct follower *f)
{
	return &f->counters;
}

void follower_stats(const struct follower *f, struct stats_follow *out)
{
	const struct follower_counters *c = &f->counters;
	out->active = f->n;
	out->polls = c->polls;
	out->poll_errors = c->poll_errors;
	out->succeeded = c->finished[FOLLOW_SUCCEEDED];
	out->failed = c->finished[FOLLOW_FAILED];
	out->rejected = c->finished[FOLLOW_REJECTED];
	out->timed_out = c->finished[FOLLOW_TIMED_OUT];
	out->ended = c->finished[FOLLOW_NONE];
}
