/*
 * engine: the loop of the one thread that owns requests.
 *
 *   inbox --request_admit()--> waiting --call_start()--> flight
 *                              (fairq:    (call.c)          |
 *                               per target,                 | done
 *                               in order)                   v
 *      answer_*() <--accept / reject-- attempt_decide() --retry / resign /
 *      (answer.c: reply via the outbox)   (attempt.c)       refresh / throttle
 *                                                              |
 *                                    held (keeps its target's slot) <--+
 *
 * waiting holds a FIFO per target ARN served round-robin; a target has at
 * most gateway.per_target_inflight requests started and not answered, so
 * its calls start in arrival order and a request being retried holds back
 * the later ones of that target only. Every request leaves through
 * answer.c, whose reply goes through the outbox: replies the MQTT client
 * cannot take yet wait there, and while they wait, admission counts them
 * against gateway.queue_size.
 *
 * Each loop turn, Mosquitto-style, is a flat list of steps: take what other
 * threads handed over (inbox), make spool entries durable, expire, start
 * calls and polls, publish waiting replies, wait on libcurl's sockets and the
 * inbox's eventfd. Only libcurl calls back in here (on_done).
 */
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "answer.h"
#include "attempt.h"
#include "ratectl.h"
#include "call.h"
#include "fairq.h"
#include "inbox.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "report.h"
#include "request.h"
#include "runtime.h"
#include "settler.h"
#include "spool.h"
#include "stats.h"

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS  5000
/* While replies wait for the MQTT client, look again this often. */
#define OUTBOX_POLL_MS 20

struct engine {
	struct config *cfg;
	struct cred_provider *creds;
	struct http_client *http;
	struct mqtt *mqtt;
	struct inbox *inbox;
	struct fairq *waiting; /* RS_QUEUED: per target, round-robin */
	struct reqlist flight; /* RS_FLIGHT: calls on the wire */
	struct reqlist held;   /* RS_HELD: to be called again at next_try_ms */
	struct outbox outbox;
	struct sigv4_key_cache keys;
	long skew_s;         /* server clock minus ours */
	struct ratectl rate; /* the adaptive send rate (account quota) */
	int draining;
	uint64_t drain_until_ms;
	struct stats stats;
	struct spool *spool; /* NULL without gateway.spool_dir */
	struct call_endpoint endpoint;
	struct answer_sink sink; /* where the outbox publishes */
	struct follower *follower;
	struct stats_follow follow_stats;
	struct settle_env settle; /* calls of unknown fate (settler.h) */
};

/* ---- answers ------------------------------------------------------------ */

static struct answer_env answer_env(struct engine *e)
{
	struct answer_env a = {&e->outbox,  &e->stats,   e->spool,
	                       rt_now_ms(), e->follower, e->cfg->gateway.follow_max_s};
	return a;
}

static void finish_gateway(struct engine *e, struct request *r, enum gw_code c, const char *msg)
{
	struct answer_env a = answer_env(e);
	if (!settler_on_answer(&e->settle, r, e->draining)) /* releases the target's slot */
		answer_gateway(&a, r, c, msg);
}

static void finish_aws(struct engine *e, struct request *r, const struct awserr *ae)
{
	struct answer_env a = answer_env(e);
	if (!settler_on_answer(&e->settle, r, e->draining))
		answer_aws(&a, r, ae);
}

/* ---- admission ---------------------------------------------------------- */

static void admit(struct engine *e, struct message *m, const struct resume *res)
{
	uint64_t now = rt_now_ms();
	struct admit_env env = {e->cfg, now, e->draining && !e->spool,
	                        fairq_len(e->waiting) + outbox_len(&e->outbox), e->waiting};
	struct request *r;
	enum gw_code code = GW_INTERNAL_ERROR;
	char err[ERR_LEN] = "";
	switch (request_admit(&env, m, res, &r, &code, err)) {
	case ADMIT_DROP:
		log_warn("no route for topic %s; dropped", m->topic);
		if (e->spool && r->spool_seq)
			spool_done(e->spool, r->spool_seq);
		request_free(r);
		return;
	case ADMIT_ANSWER:
		if (!settler_unadmitted(&e->settle, r, res))
			finish_gateway(e, r, code, err);
		return;
	case ADMIT_QUEUE:
		break;
	}
	if (e->spool && !r->spool_seq) {
		if (spool_live(e->spool) >= (size_t)e->cfg->gateway.spool_max) {
			finish_gateway(e, r, GW_OVERLOADED, "the spool is full");
			return;
		}
		struct spool_entry se;
		request_spool_entry(r, e->cfg->gateway.deadline_ms, &se);
		spool_add(e->spool, &se);
		r->spool_seq = se.seq;
	}
	if (e->draining) { /* kept in the spool for the next start */
		fairq_release(e->waiting, &r->fq);
		request_free(r);
		return;
	}
	r->state = RS_QUEUED;
	r->fq.deadline_ms = r->deadline_ms;
	settler_queued(&e->settle, r, res);
	fairq_push(e->waiting, r->target, &r->fq);
}

/* late: the MQTT client has stopped; what it still handed over goes to the
 * spool for the next start, or is left to the device's retry. */
static void admit_inbox(struct engine *e, int late)
{
	struct message *m = inbox_take(e->inbox);
	while (m) {
		struct message *next = m->next;
		m->next = NULL;
		if (late && !e->spool) {
			log_warn("stopping: too late to answer a request on %s", m->topic);
			message_free(m);
		} else {
			admit(e, m, NULL);
		}
		m = next;
	}
}

/* The MQTT client confirmed a reply: delivered (its request leaves the
 * spool) or given back (the outbox sends it again). */
static void on_confirmed(uint64_t id, int ok, void *ctx)
{
	struct engine *e = ctx;
	int known;
	uint64_t seq = outbox_confirm(&e->outbox, id, ok, &known);
	if (e->spool && seq)
		spool_done(e->spool, seq);
}

/* Record DONE for delivered replies and make this turn's ADDs durable. */
static void sync_spool(struct engine *e)
{
	inbox_take_delivered(e->inbox, on_confirmed, e);
	if (!e->spool)
		return;
	char err[ERR_LEN];
	if (spool_flush(e->spool, 1, err) != CG_OK)
		log_error("%s", err);
}

/* A live spool entry found at start: admitted again with its original
 * token and deadline. */
static void resume_entry(const struct spool_entry *s, void *ctx)
{
	struct engine *e = ctx;
	struct resume res;
	struct message *m = request_message_from_spool(s, rt_wall_ms(), rt_now_ms(), &res);
	admit(e, m, &res);
}

/* ---- calls -------------------------------------------------------------- */

static void launch(struct engine *e, struct request *r, uint64_t now)
{
	if (settler_due(r, now)) {
		finish_gateway(e, r, GW_EXPIRED, "the deadline passed before AWS answered");
		return;
	}
	struct call_env env = {e->http,
	                       e->creds,
	                       &e->keys,
	                       &e->endpoint,
	                       e->cfg->aws.region,
	                       e->skew_s,
	                       e->cfg->aws.request_timeout_ms};
	char err[ERR_LEN] = "";
	enum cg_err rc = call_start(&env, r, now, err);
	if (rc == CG_OK) {
		r->sent_ms = now;
		r->state = RS_FLIGHT;
		reqlist_push(&e->flight, r);
	} else if (rc == CG_CREDENTIALS) {
		finish_gateway(e, r, GW_CREDENTIALS_UNAVAILABLE, err);
	} else {
		log_error("cannot start call: %s", err);
		finish_gateway(e, r, GW_INTERNAL_ERROR, err);
	}
}

/* Carry out attempt_decide's decision for r, whose call finished. */
static void after_call(struct engine *e, struct request *r, uint64_t now)
{
	struct awserr ae;
	struct call_result res;
	call_read(r, &ae, &res);
	/* settling calls are bounded by gateway.settle_max_ms alone */
	struct attempt_policy p = {r->settle.active ? ~0u : (unsigned)e->cfg->aws.max_attempts,
	                           RETRY_BASE_MS, RETRY_CAP_MS, e->draining};
	struct attempt_decision d;
	attempt_decide(&r->at, &p, &res, now, r->deadline_ms, rt_random_u32(), &d);
	int throttled = res.aws && res.aws->throttled;
	if (res.transport == CG_OK && ratectl_on_answer(&e->rate, now, throttled, r->sent_ms) &&
	    ratectl_log_due(&e->rate, now))
		log_warn("AWS is throttling: send rate cut to %.1f calls/s",
		         ratectl_rate(&e->rate));
	if (settler_after_call(&e->settle, r, &res, &d, e->draining))
		return;
	char exec_id[256], err[ERR_LEN];
	switch (d.kind) {
	case AT_ACCEPT:
		if (awserr_execution_id(r->call.body.data, r->call.body.len, exec_id,
		                        sizeof(exec_id), err) != CG_OK) {
			finish_gateway(e, r, GW_INTERNAL_ERROR, err);
			return;
		}
		struct answer_env a = answer_env(e);
		fairq_release(e->waiting, &r->fq);
		answer_accepted(&a, r, exec_id);
		return;
	case AT_ANSWER_AWS:
		finish_aws(e, r, d.aws);
		return;
	case AT_ANSWER_GATEWAY:
		finish_gateway(e, r, d.code, d.message);
		return;
	case AT_RESIGN:
		e->skew_s = d.skew_s;
		log_warn("clock skew: AWS is %+lds from local time; re-signing", e->skew_s);
		break;
	case AT_REFRESH:
		cred_provider_invalidate(e->creds, r->cred_generation);
		break;
	case AT_THROTTLE:
		break;
	case AT_RETRY:
		e->stats.retries++;
		break;
	}
	request_hold(&e->held, r, d.at_ms);
}

static void on_done(struct http_call *call, void *ctx)
{
	struct engine *e = ctx;
	struct request *r = call->user;
	reqlist_remove(&e->flight, r);
	after_call(e, r, rt_now_ms());
}

/* ---- the loop ----------------------------------------------------------- */

static void expire(struct engine *e, uint64_t now)
{
	struct fq_item *it;
	while ((it = fairq_pop_expired(e->waiting, now)) != NULL)
		finish_gateway(e, (struct request *)it, GW_EXPIRED,
		               "the deadline passed while the request waited");
	for (struct request *r = e->held.head, *next; r; r = next) {
		next = r->next;
		if (r->deadline_ms > now)
			continue;
		reqlist_remove(&e->held, r);
		if (r->at.last_was_aws) /* e.g. still throttled at the deadline */
			finish_aws(e, r, &r->at.last_aws);
		else
			finish_gateway(e, r, GW_EXPIRED, "the deadline passed before AWS answered");
	}
}

/* Start what may start: held requests first (they are older), then the
 * waiting ones round-robin. Returns ms until the rate limiter allows more. */
static uint64_t start_ready(struct engine *e, uint64_t now)
{
	size_t max = (size_t)e->cfg->gateway.max_inflight;
	for (struct request *r = e->held.head, *next; r && e->flight.n < max; r = next) {
		next = r->next;
		if (r->next_try_ms > now)
			continue;
		uint64_t wait = ratectl_take(&e->rate, now);
		if (wait)
			return wait;
		reqlist_remove(&e->held, r);
		launch(e, r, now);
	}
	while (fairq_can_pop(e->waiting) && e->flight.n < max) {
		uint64_t wait = ratectl_take(&e->rate, now);
		if (wait)
			return wait;
		launch(e, (struct request *)fairq_pop(e->waiting), now);
	}
	return 0;
}

static int next_timeout(struct engine *e, uint64_t now, uint64_t rate_wait)
{
	uint64_t t = follower_next_ms(e->follower, now); /* UINT64_MAX: nothing to follow */
	if (t > 1000)
		t = 1000;
	if (rate_wait && rate_wait < t)
		t = rate_wait;
	if (outbox_waiting(&e->outbox) && t > OUTBOX_POLL_MS)
		t = OUTBOX_POLL_MS;
	/* A held request that is due but has no free call slot waits for a
	 * call to finish (libcurl wakes us), not for a timer. */
	int slot = !rate_wait && e->flight.n < (size_t)e->cfg->gateway.max_inflight;
	for (struct request *r = e->held.head; r; r = r->next) {
		uint64_t due =
		    slot && r->next_try_ms < r->deadline_ms ? r->next_try_ms : r->deadline_ms;
		t = due <= now ? 0 : (due - now < t ? due - now : t);
	}
	uint64_t d = fairq_next_deadline(e->waiting);
	if (d != UINT64_MAX)
		t = d <= now ? 0 : (d - now < t ? d - now : t);
	return (int)t;
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
	char **f = request_filters(n);
	mqtt_set_filters(e->mqtt, f, n->n_routes);
	free(f);
	log_configure(n->log.level, n->log.format);
	fairq_set_limit(e->waiting, (unsigned)n->gateway.per_target_inflight);
	ratectl_set_max(&e->rate, n->aws.max_rate, rt_now_ms());
	if (cred_config_differ(&old->aws.credentials, &n->aws.credentials)) {
		cred_provider_free(e->creds);
		e->creds = cred_provider_new(&n->aws.credentials);
		cred_provider_wait_first(e->creds, 2000);
		sigv4_key_cache_clean_up(&e->keys);
		follower_set_credentials(e->follower, e->creds);
	}
	struct follower_options fo = follower_options_of(n);
	follower_reconfigure(e->follower, &fo);
	call_endpoint_set(&e->endpoint, e->cfg->endpoint_url);
	config_free(old);
	log_info("configuration reloaded from %s (%zu routes)", n->path, n->n_routes);
}

/* At shutdown: r stays in the spool for the next start (1), or is
 * answered Unavailable without one (0). */
static int keep_or_refuse(struct engine *e, struct request *r, const char *why)
{
	if (settler_stop(&e->settle, r))
		return 1;
	if (e->spool && r->spool_seq) {
		log_debug("stopping: token=%s stays in the spool", r->tr.client_token);
		fairq_release(e->waiting, &r->fq);
		request_free(r);
		return 1;
	}
	finish_gateway(e, r, GW_UNAVAILABLE, why);
	return 0;
}

static void drop_waiting(struct engine *e)
{
	size_t kept = 0;
	struct request *r;
	while ((r = (struct request *)fairq_pop_expired(e->waiting, UINT64_MAX)) ||
	       (r = e->held.head)) {
		if (r->state == RS_HELD)
			reqlist_remove(&e->held, r);
		kept += (size_t)keep_or_refuse(e, r, "the gateway is shutting down");
	}
	if (kept)
		log_info("stopping: %zu waiting request(s) stay in the spool", kept);
}

static void begin_drain(struct engine *e, uint64_t now)
{
	e->draining = 1;
	e->drain_until_ms = now + (uint64_t)e->cfg->gateway.drain_ms;
	log_info("stopping: %zu in flight, %zu waiting; draining up to %ld ms", e->flight.n,
	         fairq_len(e->waiting) + e->held.n, e->cfg->gateway.drain_ms);
	notify_send("STOPPING=1");
	/* The subscriptions stay: requests that arrive from now on are kept in
	 * the spool, or answered Unavailable without one, and those published
	 * while the gateway is down wait in the broker's session. */
	drop_waiting(e);
}

static void abort_flight(struct engine *e)
{
	while (e->flight.head) {
		struct request *r = e->flight.head;
		reqlist_remove(&e->flight, r);
		http_abort(e->http, &r->call);
		keep_or_refuse(e, r, "stopped before AWS answered; retry with the same id");
	}
	drop_waiting(e); /* retries scheduled while draining */
}

static struct stats_gauges gauges(struct engine *e)
{
	struct stats_gauges g = {
	    .queue = fairq_len(e->waiting) + e->held.n,
	    .inflight = e->flight.n,
	    .replies_waiting = outbox_waiting(&e->outbox),
	    .allowed_rate = ratectl_rate(&e->rate),
	    .throttled = ratectl_throttles(&e->rate),
	    .spool = e->spool ? spool_live(e->spool) : 0,
	    .mqtt_connected = e->mqtt ? mqtt_connected(e->mqtt) : 0,
	};
	follower_stats(e->follower, &e->follow_stats);
	g.follow = follower_configured(e->cfg) ? &e->follow_stats : NULL;
	return g;
}

/* READY after every (re)subscription; WATCHDOG, STATUS and stats when due. */
static void tend(struct engine *e, struct report_clock *rc, uint64_t now)
{
	if (inbox_take_ready(e->inbox)) {
		log_info("ready: subscribed to %zu filter(s)", e->cfg->n_routes);
		notify_send("READY=1");
		rc->last_status_ms = 0;
	}
	struct stats_gauges g = gauges(e);
	if (report_tick(rc, now, e->cfg, e->mqtt, e->creds, &e->stats, &g))
		fairq_sweep(e->waiting, e->cfg->gateway.per_thing_rate, now);
}

int engine_run(struct engine *e)
{
	char err[ERR_LEN];
	struct mqtt_hooks hooks = {inbox_on_message, inbox_on_ready, inbox_on_delivered, e->inbox};
	char **f = request_filters(e->cfg);
	e->mqtt = mqtt_start(&MQTT_OPTIONS_OF(e->cfg), f, e->cfg->n_routes, &hooks, err);
	free(f);
	if (!e->mqtt) {
		log_error("%s", err);
		return 1;
	}
	e->sink.mqtt = e->mqtt;
	if (e->spool)
		spool_on_follow(e->spool, follower_resume, e->follower);
	if (e->spool && spool_recover(e->spool, resume_entry, e, err) != CG_OK) {
		log_error("%s", err);
		mqtt_stop(e->mqtt, 0);
		e->mqtt = NULL;
		return 1;
	}
	struct report_clock rc;
	report_clock_init(&rc, notify_watchdog_interval_ms(), rt_now_ms());
	for (;;) {
		uint64_t now = rt_now_ms();
		int sig = inbox_take_signals(e->inbox);
		if ((sig & INBOX_STOP) && !e->draining)
			begin_drain(e, now);
		if (sig & INBOX_RELOAD) {
			notify_send("RELOADING=1");
			reload(e);
			notify_send("READY=1");
		}
		admit_inbox(e, 0);
		sync_spool(e); /* before any call of a request admitted this turn starts */
		expire(e, now);
		if (e->draining && (e->flight.n == 0 || now >= e->drain_until_ms)) {
			abort_flight(e);
			follower_shutdown(e->follower);
			break;
		}
		uint64_t rate_wait = start_ready(e, now);
		if (!e->draining)
			follower_run(e->follower, now);
		e->outbox.window = (size_t)mqtt_send_window(e->mqtt);
		outbox_flush(&e->outbox);
		tend(e, &rc, now);
		mqtt_tick(e->mqtt, now);
		fflush(stderr); /* log lines are written once per loop turn, not per line */
		http_client_run(e->http, inbox_fd(e->inbox), next_timeout(e, now, rate_wait),
		                on_done, e);
		inbox_clear_wake(e->inbox);
	}
	admit_inbox(e, 0); /* arrivals during the drain: spooled, or answered Unavailable */
	/* Replies still waiting get until the end of the drain to leave. */
	while (outbox_waiting(&e->outbox) && rt_now_ms() < e->drain_until_ms + 5000) {
		sync_spool(e); /* confirmations open the window */
		if (outbox_flush(&e->outbox) == 0)
			usleep(10000);
	}
	if (outbox_waiting(&e->outbox))
		log_error("stopping: %zu replies not published", outbox_waiting(&e->outbox));
	struct stats_gauges g = gauges(e);
	report_stats(e->cfg, e->mqtt, e->creds, &e->stats, &g);
	/* Replies already queued in Paho go out before the DISCONNECT. */
	mqtt_stop(e->mqtt, 5000);
	e->mqtt = e->sink.mqtt = NULL;
	admit_inbox(e, 1);
	sync_spool(e); /* DONE for the replies the broker took while stopping */
	log_info("stopped: %lu accepted, %lu rejected", (unsigned long)e->stats.accepted,
	         (unsigned long)stats_rejected(&e->stats));
	return 0;
}

struct engine *engine_new(struct config *cfg, char *err)
{
	struct engine *e = rt_calloc(1, sizeof(*e));
	e->cfg = cfg;
	e->inbox = inbox_new();
	if (!e->inbox) {
		cg_fail(err, CG_INTERNAL, "eventfd: %s", strerror(errno));
		free(e);
		return NULL;
	}
	int failed;
	e->spool =
	    spool_open_configured(cfg->gateway.spool_dir, getenv("STATE_DIRECTORY"), err, &failed);
	if (failed) {
		inbox_free(e->inbox);
		free(e);
		return NULL;
	}
	e->sink.spool = e->spool;
	inbox_listen_for_signals(e->inbox);
	e->creds = cred_provider_new(&cfg->aws.credentials);
	cred_provider_wait_first(e->creds, 3000);
	struct http_options ho = {cfg->aws.ca_file, cfg->aws.connect_timeout_ms};
	e->http = http_client_new(&ho);
	ratectl_init(&e->rate, cfg->aws.max_rate, rt_now_ms());
	e->waiting = fairq_new();
	fairq_set_limit(e->waiting, (unsigned)cfg->gateway.per_target_inflight);
	outbox_init(&e->outbox, 1, answer_publish, &e->sink); /* window: each turn */
	stats_init(&e->stats, rt_wall_s());
	e->settle = (struct settle_env){e->waiting, &e->held, e->spool, &e->stats, &e->cfg};
	call_endpoint_set(&e->endpoint, e->cfg->endpoint_url);
	struct follower_options fo = follower_options_of(cfg);
	e->follower = follower_new(&fo, e->http, e->creds, e->spool, answer_follow_publish,
	                           &e->outbox, rt_now_ms());
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	inbox_free(e->inbox);
	follower_free(e->follower);
	outbox_clean_up(&e->outbox);
	http_client_free(e->http);
	cred_provider_free(e->creds);
	spool_close(e->spool);
	fairq_free(e->waiting);
	sigv4_key_cache_clean_up(&e->keys);
	config_free(e->cfg);
	call_endpoint_clean_up(&e->endpoint);
	free(e);
}
