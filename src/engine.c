/*
 * engine: the loop of the one thread that owns requests.
 *
 *   inbound --admit()--> waiting --launch()--> flight --on_done()--> reply
 *   (request.c)          (fairq)   (call.c)       ^          |
 *                                                  +- retry <-+ (throttle, 5xx,
 *                                                               transport, skew)
 *
 * waiting holds a FIFO per thing served round-robin, so per-thing start
 * order is arrival order and no thing starves another. retry and flight are
 * short lists (bounded by max_inflight). Every request leaves through
 * finish() (request.c), which publishes its one reply, logs its one line
 * and frees it. Each turn of the loop: take what the MQTT thread handed
 * over, make new spool entries durable, expire, start calls, then wait on
 * libcurl's sockets and the wake-up eventfd.
 */
#include "engine_priv.h"

static volatile sig_atomic_t stop_flag, reload_flag;
static int signal_wake_fd = -1;

void wake(int fd)
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

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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
	log_configure(n->log.level, n->log.format);
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
	         fairq_len(e->waiting) + e->retry.n, (unsigned long)e->stats.accepted,
	         (unsigned long)stats_rejected(&e->stats), (unsigned long)e->stats.retries);
	fairq_sweep(e->waiting, e->cfg->gateway.per_thing_rate, now_ms());
	notify_send(s);
}

int engine_run(struct engine *e)
{
	char err[ERR_LEN];
	struct mqtt_hooks hooks = {on_inbound, on_ready, on_delivered, e};
	char **f = route_filters(e->cfg);
	e->mqtt = mqtt_start(&MQTT_OPTIONS_OF(e->cfg), f, e->cfg->n_routes, &hooks, err);
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
	log_info("stopped: %lu accepted, %lu rejected", (unsigned long)e->stats.accepted,
	         (unsigned long)stats_rejected(&e->stats));
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
