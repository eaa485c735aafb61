/*
 * engine: the loop of the one thread that owns requests.
 *
 *   inbox --request_admit()--> waiting --aws_call_start()-> flight
 *                              (fairq:    (aws_call.c)      |
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
 * threads handed over (inbox), make spool entries durable, run the timers
 * that are due (deadlines, retries, polls), start calls and polls, publish
 * waiting replies, wait on libcurl's sockets and the inbox's eventfd. How
 * long to wait is computed in one place: the loop's timer heap (timer.h)
 * holds every time anything waits for. Only libcurl calls back in
 * (engine_on_done, the follower's polls).
 *
 * This file is the loop, reload, start and stop; the steps live in
 * engine_admit.c, engine_calls.c and engine_stop.c (engine_priv.h).
 */
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "engine_priv.h"
#include "log.h"
#include "notify.h"
#include "report.h"
#include "runtime.h"

/* While replies wait for the MQTT client, look again this often. */
#define OUTBOX_POLL_MS 20
/* The loop turns at least this often: MQTT reconnects, watchdog, stats. */
#define TICK_MS 1000

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
	struct proxy_filters f = proxy_filters(n);
	mqtt_set_filters(e->mqtt, f.v, f.n);
	mqtt_set_max_payload(e->mqtt, n->gateway.max_payload);
	proxy_free_filters(&f);
	proxy_reload(&e->proxy, n->proxy, e->inbox, e->spool, &e->outbox, &e->timers);
	log_configure(n->log.level, n->log.format);
	fairq_set_limit(e->waiting, (unsigned)n->gateway.per_target_inflight);
	ratectl_set_max(&e->rate, n->aws.max_rate, rt_now_ms());
	if (cred_config_differ(&old->aws.credentials, &n->aws.credentials)) {
		cred_provider_free(e->aws.creds);
		e->aws.creds = cred_provider_new(&n->aws.credentials);
		cred_provider_wait_first(e->aws.creds, 2000);
		aws_endpoint_forget_keys(&e->start_ep);
		follower_credentials_changed(e->follower);
	}
	struct follower_options fo = follower_options_of(n);
	follower_reconfigure(e->follower, &fo);
	aws_endpoint_set(&e->start_ep, n->endpoint_url, n->aws.region, START_SERVICE);
	config_free(old);
	log_info("configuration reloaded from %s (%zu routes)", n->path, n->n_routes);
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
	g.proxy = proxy_stats(e->proxy);
	if (e->mqtt) /* the status topic: links up / configured, republished on change */
		mqtt_set_proxy_links(e->mqtt, g.proxy ? (int)g.proxy->connected : 0,
		                     g.proxy ? (int)g.proxy->configured : -1);
	return g;
}

/* READY after every (re)subscription; WATCHDOG, STATUS and stats when due. */
static void tend(struct engine *e, struct report_clock *rc, uint64_t now)
{
	if (inbox_take_ready(e->inbox)) {
		log_info("ready: subscribed to %zu filter(s)",
		         e->cfg->n_routes + (e->cfg->proxy ? e->cfg->proxy->n_things : 0));
		notify_send("READY=1");
		rc->last_status_ms = 0;
	}
	struct stats_gauges g = gauges(e);
	if (report_tick(rc, now, e->cfg, e->mqtt, e->aws.creds, &e->stats, &g))
		fairq_sweep(e->waiting, e->cfg->gateway.per_thing_rate, now);
}

int engine_run(struct engine *e)
{
	char err[ERR_LEN];
	struct mqtt_hooks hooks = {.on_message = inbox_on_message,
	                           .on_ready = inbox_on_ready,
	                           .on_delivered = inbox_on_delivered,
	                           .ctx = e->inbox};
	struct proxy_filters f = proxy_filters(e->cfg);
	struct mqtt_options mo = mqtt_options_of(e->cfg);
	e->mqtt = mqtt_start(&mo, f.v, f.n, &hooks, err);
	proxy_free_filters(&f);
	if (!e->mqtt) {
		log_error("%s", err);
		return 1;
	}
	e->outbox.ctx = e->mqtt; /* the outbox publishes through it (mqtt_outbox_publish) */
	proxy_reload(&e->proxy, e->cfg->proxy, e->inbox, e->spool, &e->outbox, &e->timers);
	if (e->spool)
		spool_on_follow(e->spool, follower_resume, e->follower);
	if (e->spool && spool_recover(e->spool, engine_resume_entry, e, err) != CG_OK) {
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
			engine_begin_drain(e, now);
		if (sig & INBOX_RELOAD) {
			notify_send("RELOADING=1");
			reload(e);
			notify_send("READY=1");
		}
		engine_admit_inbox(e, 0);
		engine_sync_spool(e); /* before any call of a request admitted this turn starts */
		timer_run_due(&e->timers, now, e);
		if (e->draining && (e->flight.n == 0 || now >= e->drain_until_ms)) {
			engine_abort_flight(e);
			follower_shutdown(e->follower);
			break;
		}
		engine_start_ready(e, now);
		if (!e->draining)
			follower_run(e->follower, now);
		e->outbox.window = (size_t)mqtt_send_window(e->mqtt);
		outbox_flush(&e->outbox);
		if (outbox_waiting(&e->outbox))
			timer_arm(&e->timers, &e->outbox_wake.timer, now + OUTBOX_POLL_MS);
		tend(e, &rc, now);
		mqtt_tick(e->mqtt, now);
		fflush(stderr); /* log lines are written once per loop turn, not per line */
		/* the one place the loop's wait is computed */
		int wait = (int)timer_wait_ms(&e->timers, now, TICK_MS);
		http_client_run(e->aws.http, inbox_fd(e->inbox), wait);
		inbox_clear_wake(e->inbox);
	}
	engine_admit_inbox(e, 0); /* arrivals during the drain: spooled, or answered Unavailable */
	/* Replies still waiting get until the end of the drain to leave. */
	while (outbox_waiting(&e->outbox) && rt_now_ms() < e->drain_until_ms + 5000) {
		engine_sync_spool(e); /* confirmations open the window */
		if (outbox_flush(&e->outbox) == 0)
			usleep(10000);
	}
	if (outbox_waiting(&e->outbox))
		log_error("stopping: %zu replies not published", outbox_waiting(&e->outbox));
	struct stats_gauges g = gauges(e);
	report_stats(e->cfg, e->mqtt, e->aws.creds, &e->stats, &g);
	/* Replies already queued in Paho go out before the DISCONNECT. */
	mqtt_stop(e->mqtt, 5000);
	e->mqtt = e->outbox.ctx = NULL;
	proxy_reload(&e->proxy, NULL, NULL, NULL, NULL, NULL); /* the links close */
	engine_admit_inbox(e, 1);
	engine_sync_spool(e); /* DONE for the replies the broker took while stopping */
	log_info("stopped: %lu accepted, %lu rejected", (unsigned long)e->stats.accepted,
	         (unsigned long)stats_rejected(&e->stats));
	return 0;
}

/* A message the MQTT client will never take (an invalid topic): its
 * request or follow leaves the spool, as if it had been delivered. */
static void reply_refused(void *ctx, uint64_t cookie)
{
	struct engine *e = ctx;
	if (e->spool)
		spool_done(e->spool, cookie);
}

/* The follower's publish function (ctx: the outbox): a message waiting in
 * the outbox is taken. */
static int follow_publish(void *ctx, const struct mqtt_out *m, uint64_t cookie)
{
	char err[ERR_LEN] = "";
	int rc = outbox_put(ctx, m, cookie, err);
	if (rc == MQTT_OUT_NEVER) {
		log_error("follow message to %s cannot be published: %s", m->topic, err);
		return MQTT_OUT_NEVER;
	}
	return MQTT_OUT_TAKEN;
}

struct engine *engine_new(struct config *cfg, char *err)
{
	struct engine *e = rt_calloc(1, sizeof(*e));
	e->cfg = cfg;
	timer_heap_init(&e->timers);
	timer_task_init(&e->rate_wake, timer_wake_only);
	timer_task_init(&e->outbox_wake, timer_wake_only);
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
	inbox_listen_for_signals(e->inbox);
	e->aws.creds = cred_provider_new(&cfg->aws.credentials);
	cred_provider_wait_first(e->aws.creds, 3000);
	struct http_options ho = {.ca_file = cfg->aws.ca_file,
	                          .connect_timeout_ms = cfg->aws.connect_timeout_ms};
	e->aws.http = http_client_new(&ho);
	ratectl_init(&e->rate, cfg->aws.max_rate, rt_now_ms());
	e->waiting = fairq_new();
	fairq_set_limit(e->waiting, (unsigned)cfg->gateway.per_target_inflight);
	/* window: each turn; the MQTT client once it is started */
	outbox_init(&e->outbox, 1, mqtt_outbox_publish, NULL);
	e->outbox.on_refused = reply_refused;
	e->outbox.refused_ctx = e;
	stats_init(&e->stats, rt_wall_s());
	e->settle = (struct settle_env){e->spool, &e->stats, &e->cfg};
	aws_endpoint_set(&e->start_ep, cfg->endpoint_url, cfg->aws.region, START_SERVICE);
	struct follower_options fo = follower_options_of(cfg);
	e->follower = follower_new(&fo, &e->aws, e->spool, &e->timers, follow_publish, &e->outbox,
	                           rt_now_ms());
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	inbox_free(e->inbox);
	follower_free(e->follower);
	outbox_clean_up(&e->outbox);
	http_client_free(e->aws.http);
	cred_provider_free(e->aws.creds);
	spool_close(e->spool);
	fairq_free(e->waiting);
	config_free(e->cfg);
	aws_endpoint_clean_up(&e->start_ep);
	timer_heap_clean_up(&e->timers);
	free(e);
}
