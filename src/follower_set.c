/*
 * follower_set: the set of follows (see follower.h): configuration, adding a
 * follow (and its FOLLOW record), resuming one from the spool, counters.
 * What happens to a follow each loop turn is in follower_run.c.
 */
#include "follower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "follower_priv.h"
#include "log.h"
#include "runtime.h"

/* A NUL-terminated copy of v ("" for none). */
static char *dup_view(struct view v)
{
	return rt_memdup(v.ptr ? v.ptr : "", v.ptr ? v.len : 0);
}

/* ---- configuration ------------------------------------------------------ */

struct follower_options follower_options_of(const struct config *c)
{
	struct follower_options o = {
	    .control_url = c->control_url,
	    .region = c->aws.region,
	    .max_rate = c->aws.follow_max_rate,
	    .request_timeout_ms = c->aws.request_timeout_ms,
	    .max_inflight = (size_t)c->gateway.max_inflight,
	    .poll_ms = c->gateway.follow_poll_ms,
	};
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
	aws_endpoint_set(&f->ep, o->control_url, o->region, FOLLOW_SERVICE);
	f->o = *o;
	f->o.control_url = NULL; /* f->ep holds them */
	f->o.region = f->ep.region;
	if (f->o.max_inflight < 1)
		f->o.max_inflight = 1;
}

struct follower *follower_new(const struct follower_options *o, struct aws_client *aws,
                              struct spool *spool, struct timer_heap *timers,
                              follower_publish_fn publish, void *ctx, uint64_t now_ms)
{
	struct follower *f = rt_calloc(1, sizeof(*f));
	set_options(f, o);
	f->aws = aws;
	f->spool = spool;
	f->timers = timers;
	timer_task_init(&f->rate_wake, timer_wake_only);
	f->publish = publish;
	f->ctx = ctx;
	ratectl_init(&f->rate, o->max_rate, now_ms);
	return f;
}

void follower_reconfigure(struct follower *f, const struct follower_options *o)
{
	set_options(f, o);
	ratectl_set_max(&f->rate, o->max_rate, rt_now_ms());
}

void follower_credentials_changed(struct follower *f)
{
	aws_endpoint_forget_keys(&f->ep);
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

void follower_free_follow(struct follower *f, struct follow *w)
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
	timer_disarm(f->timers, &w->wake.timer);
	if (w->in_flight)
		f->inflight--;
	aws_call_free(f->aws, w->call); /* aborted if in flight */
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
	if (in->correlation.ptr) {
		w->corr = rt_memdup(in->correlation.ptr, in->correlation.len);
		w->corr_len = in->correlation.len;
	}
	w->target = target_ref(f, in->target_arn);
	w->call = aws_call_new(follower_on_poll_done, f, w);
	attempt_init(&w->at);
	sbuf_init(&w->pending);
	timer_task_init(&w->wake, timer_wake_only); /* follower_run finds what is due */
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
	follower_set_due(f, w,
	                 started_ms + follow_poll_delay_ms(0, w->st.poll_ms, rt_random_u32()));
	if (f->spool) {
		int64_t wall = rt_wall_ms();
		struct spool_follow rec = {.started_ms = wall,
		                           .deadline_ms = wall + (int64_t)max_s * 1000,
		                           .qos = (uint8_t)in->qos,
		                           .thing = view_of_str(w->thing),
		                           .command = view_of_str(w->command),
		                           .execution_id = view_of_str(w->execution_id),
		                           .target_arn = view_of_str(w->target->arn),
		                           .topic = view_of_str(w->topic),
		                           .id_json = view_of_str(w->id_json),
		                           .correlation = view_of(w->corr, w->corr_len),
		                           .has_correlation = w->corr != NULL};
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
	/* the record's views as strings (not NUL-terminated in the file) */
	char *thing = dup_view(rec->thing), *command = dup_view(rec->command);
	char *execution_id = dup_view(rec->execution_id), *target_arn = dup_view(rec->target_arn);
	char *topic = dup_view(rec->topic), *id_json = dup_view(rec->id_json);
	struct follow_info in = {
	    .thing = thing,
	    .command = command,
	    .execution_id = execution_id,
	    .target_arn = target_arn,
	    .topic = topic,
	    .id_json = id_json,
	    .qos = rec->qos,
	    .correlation = rec->has_correlation
	                       ? view_of(rec->correlation.ptr ? rec->correlation.ptr : "",
	                                 rec->correlation.len)
	                       : view_of(NULL, 0),
	};
	/* two records of one execution are one follow; a bad id is dropped */
	struct follow *w = find(f, execution_id) ? NULL : make_follow(f, &in);
	char *copies[] = {thing, command, execution_id, target_arn, topic, id_json};
	for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]); i++)
		free(copies[i]);
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
	follower_set_due(f, w, now + follow_poll_delay_ms(0, w->st.poll_ms, rt_random_u32()));
	w->spool_seq = rec->seq;
	link_follow(f, w);
	log_info("follow thing=%s command=%s execution=%s resumed from the spool", w->thing,
	         w->command, w->execution_id);
}

/* ---- the end ------------------------------------------------------------ */

void follower_free(struct follower *f)
{
	if (!f)
		return;
	while (f->head)
		follower_free_follow(f, f->head);
	timer_disarm(f->timers, &f->rate_wake.timer);
	aws_endpoint_clean_up(&f->ep);
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
