/* report: see report.h. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "route.h"
#include "runtime.h"

static void publish_json(const struct config *c, struct mqtt *m, const struct stats *s,
                         const struct stats_gauges *g)
{
	struct route_vars v = {0};
	route_vars_set(&v, "client_id", c->mqtt.client_id);
	struct sbuf topic, b;
	sbuf_init(&topic);
	sbuf_init(&b);
	char err[ERR_LEN] = "";
	if (route_template_expand(c->stats.topic, &v, &topic, err) != CG_OK) {
		log_warn("stats not published: %s", err);
	} else {
		stats_render_json(s, g, &b);
		struct mqtt_out out = {
		    .topic = topic.data, .payload = view_of(b.data, b.len), .qos = 1, .retain = 1};
		if (!m || mqtt_publish(m, &out, 0, err) != MQTT_OUT_TAKEN)
			log_warn("stats not published: %s", m ? err : "not connected");
	}
	sbuf_clean_up(&topic);
	sbuf_clean_up(&b);
}

static void write_textfile(const struct config *c, const struct stats *s,
                           const struct stats_gauges *g)
{
	struct sbuf b, tmp;
	sbuf_init(&b);
	sbuf_init(&tmp);
	stats_render_prometheus(s, g, &b);
	sbuf_printf(&tmp, "%s.tmp.%d", c->stats.file, (int)getpid());
	/* a planted file or symlink under the temporary name is removed, never
	 * followed: O_EXCL|O_NOFOLLOW make a new file or fail */
	unlink(tmp.data);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	int ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len;
	if (fd >= 0 && close(fd) != 0)
		ok = 0;
	if (!ok || rename(tmp.data, c->stats.file) != 0) {
		log_warn("stats file %s not written: %s", c->stats.file, strerror(errno));
		unlink(tmp.data);
	}
	sbuf_clean_up(&tmp);
	sbuf_clean_up(&b);
}

void report_stats(const struct config *c, struct mqtt *m, struct cred_provider *creds,
                  struct stats *s, struct stats_gauges *g)
{
	if (!*c->stats.topic && !*c->stats.file)
		return;
	g->now = rt_wall_s();
	g->client_id = c->mqtt.client_id;
	cred_provider_info(creds, &g->cred_source, &g->cred_expiry);
	if (*c->stats.topic)
		publish_json(c, m, s, g);
	if (*c->stats.file)
		write_textfile(c, s, g);
	stats_new_interval(s);
}

void report_status(const struct stats *s, const struct stats_gauges *g)
{
	char line[320], proxy[80] = "";
	if (g->proxy)
		snprintf(proxy, sizeof(proxy), "; proxy links %llu/%llu up",
		         (unsigned long long)g->proxy->connected,
		         (unsigned long long)g->proxy->configured);
	snprintf(line, sizeof(line),
	         "STATUS=mqtt %s; %llu in flight, %llu waiting, %llu replies waiting; %llu "
	         "accepted, %llu rejected, %llu retries%s",
	         g->mqtt_connected ? "connected" : "disconnected", (unsigned long long)g->inflight,
	         (unsigned long long)g->queue, (unsigned long long)g->replies_waiting,
	         (unsigned long long)s->accepted, (unsigned long long)stats_rejected(s),
	         (unsigned long long)s->retries, proxy);
	notify_send(line);
}

void report_clock_init(struct report_clock *rc, uint64_t watchdog_ms, uint64_t now_ms)
{
	rc->watchdog_ms = watchdog_ms;
	rc->last_watchdog_ms = rc->last_status_ms = 0;
	rc->last_stats_ms = now_ms;
}

int report_tick(struct report_clock *rc, uint64_t now_ms, const struct config *c, struct mqtt *m,
                struct cred_provider *creds, struct stats *s, struct stats_gauges *g)
{
	int status = 0;
	if (rc->watchdog_ms && now_ms - rc->last_watchdog_ms >= rc->watchdog_ms) {
		notify_send("WATCHDOG=1");
		rc->last_watchdog_ms = now_ms;
	}
	if (now_ms - rc->last_status_ms >= 2000) {
		report_status(s, g);
		rc->last_status_ms = now_ms;
		status = 1;
	}
	if (now_ms - rc->last_stats_ms >= (uint64_t)c->stats.interval * 1000) {
		report_stats(c, m, creds, s, g);
		rc->last_stats_ms = now_ms;
	}
	return status;
}
