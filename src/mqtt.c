/*
 * mqtt: connection, subscriptions and publishing over Paho's async client.
 *
 * Paho 1.3 leaves Nagle's algorithm on; small QoS 1 exchanges then wait for
 * delayed ACKs (tens of ms per round trip). After every (re)connect all TCP
 * sockets of the process get TCP_NODELAY (harmless for libcurl's, which set
 * it already): Paho exposes no socket handle, /proc/self/fd is the way in.
 */
#include "mqtt.h"

#include <MQTTAsync.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jsonw.h"
#include "log.h"

#define SESSION_EXPIRY_S 300
#include "sbuf.h"

#ifndef CMDGATE_VERSION
#define CMDGATE_VERSION "0.0.0"
#endif

struct mqtt {
	MQTTAsync client;
	int version;
	int qos;
	char *shared_group;
	char *status_topic;
	char *client_id;
	char *password;
	char *owned[8]; /* copies of config strings Paho keeps pointers to */
	size_t n_owned;
	struct mqtt_hooks hooks;
	pthread_mutex_t lock; /* guards filters and subscribed */
	char **filters;
	size_t n_filters;
	size_t subscribed;
	atomic_int connected;
	atomic_int connecting;
	atomic_int send_window; /* publishes Paho can have in flight (Receive Maximum) */
	uint64_t retry_at_ms;
	unsigned failures;
	MQTTAsync_connectOptions conn;
	MQTTAsync_willOptions will;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties connect_props;
};

/* The one client of this process, for delivery callbacks whose context
 * carries the cookie itself (no allocation per publish). */
static struct mqtt *the_client;

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tcp_nodelay_all(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (fd <= 2)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM)
			continue;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	closedir(d);
}

static char *full_filter(const struct mqtt *m, const char *f)
{
	struct sbuf b;
	sbuf_init(&b);
	if (*m->shared_group)
		sbuf_printf(&b, "$share/%s/%s", m->shared_group, f);
	else
		sbuf_puts(&b, f);
	return sbuf_steal(&b);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	struct mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	int ready = ++m->subscribed == m->n_filters;
	pthread_mutex_unlock(&m->lock);
	if (ready && m->hooks.on_ready)
		m->hooks.on_ready(m->hooks.ctx);
}

static void on_subscribed5(void *ctx, MQTTAsync_successData5 *resp)
{
	if (resp->alt.sub.reasonCodeCount <= 1 && resp->reasonCode >= 0x80) {
		log_error("mqtt: subscription refused by the broker (reason %d)",
		          (int)resp->reasonCode);
		return;
	}
	on_subscribed(ctx, NULL);
}

static void on_sub_failed(void *ctx, MQTTAsync_failureData *resp)
{
	(void)ctx;
	log_error("mqtt: subscribe failed (%d)", resp ? resp->code : -1);
}

static void on_sub_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	(void)ctx;
	log_error("mqtt: subscribe failed (reason %d)", resp ? (int)resp->reasonCode : -1);
}

static void subscribe_one(struct mqtt *m, const char *filter)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.context = m;
	if (m->version == 5) {
		ro.onSuccess5 = on_subscribed5;
		ro.onFailure5 = on_sub_failed5;
	} else {
		ro.onSuccess = on_subscribed;
		ro.onFailure = on_sub_failed;
	}
	char *f = full_filter(m, filter);
	int rc = MQTTAsync_subscribe(m->client, f, m->qos, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		log_error("mqtt: subscribe %s: %s", f, MQTTAsync_strerror(rc));
	else
		log_info("mqtt: subscribing to %s (QoS %d)", f, m->qos);
	free(f);
}

static void publish_status(struct mqtt *m, const char *state)
{
	if (!*m->status_topic)
		return;
	struct sbuf p;
	sbuf_init(&p);
	if (strcmp(state, "online") == 0) {
		sbuf_puts(&p, "{\"state\":\"online\"");
		jsonw_key(&p, "client_id", 0);
		jsonw_string(&p, m->client_id, strlen(m->client_id));
		sbuf_printf(&p, ",\"version\":\"%s\",\"pid\":%d,\"since\":%lld}", CMDGATE_VERSION,
		            (int)getpid(), (long long)time(NULL));
	} else {
		sbuf_printf(&p, "{\"state\":\"%s\"}", state);
	}
	mqtt_publish(m, m->status_topic, p.data, p.len, 1, 1, NULL, 0, NULL);
	sbuf_clean_up(&p);
}

static void on_connected(void *ctx, char *cause)
{
	(void)cause;
	struct mqtt *m = ctx;
	tcp_nodelay_all();
	atomic_store(&m->connected, 1);
	atomic_store(&m->connecting, 0);
	m->failures = 0;
	log_info("mqtt: connected");
	publish_status(m, "online");
	pthread_mutex_lock(&m->lock);
	m->subscribed = 0;
	for (size_t i = 0; i < m->n_filters; i++)
		subscribe_one(m, m->filters[i]);
	pthread_mutex_unlock(&m->lock);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt *m = ctx;
	log_warn("mqtt: connect failed: %s", resp && resp->message ? resp->message : "no answer");
	m->failures++;
	unsigned shift = m->failures < 5 ? m->failures : 5;
	m->retry_at_ms = mono_ms() + (250u << shift) + (uint64_t)(rand() % 250);
	atomic_store(&m->connecting, 0);
}

/* MQTT 5: the broker's Receive Maximum bounds Paho's in-flight publishes. */
static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = ctx;
	int window = MQTT_SEND_WINDOW_MAX; /* no Receive Maximum: 65535 */
	if (resp && MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		window = MQTTProperties_getNumericValue(&resp->properties,
		                                        MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	if (window < 1 || window > MQTT_SEND_WINDOW_MAX)
		window = MQTT_SEND_WINDOW_MAX;
	atomic_store(&m->send_window, window);
}

static void on_connect_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	MQTTAsync_failureData d = {0};
	d.code = resp ? resp->code : -1;
	d.message = resp ? resp->message : NULL;
	on_connect_failed(ctx, &d);
}

static void on_connection_lost(void *ctx, char *cause)
{
	struct mqtt *m = ctx;
	atomic_store(&m->connected, 0);
	log_warn("mqtt: connection lost%s%s; reconnecting", cause ? ": " : "", cause ? cause : "");
}

static char *dup_mem(const void *p, size_t n)
{
	char *d = malloc(n + 1);
	if (!d)
		abort();
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = ctx;
	struct message *in = calloc(1, sizeof(*in));
	if (!in)
		abort();
	in->topic = dup_mem(topic, topic_len > 0 ? (size_t)topic_len : strlen(topic));
	in->payload = dup_mem(msg->payload, (size_t)msg->payloadlen);
	in->len = (size_t)msg->payloadlen;
	in->qos = msg->qos;
	in->received_ms = mono_ms();
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	in->received_wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
	if (m->version == 5) {
		MQTTProperty *p =
		    MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
		if (p)
			in->response_topic = dup_mem(p->value.data.data, (size_t)p->value.data.len);
		p = MQTTProperties_getProperty(&msg->properties,
		                               MQTTPROPERTY_CODE_CORRELATION_DATA);
		if (p) {
			in->correlation = dup_mem(p->value.data.data, (size_t)p->value.data.len);
			in->correlation_len = (size_t)p->value.data.len;
		}
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	m->hooks.on_message(in, m->hooks.ctx);
	return 1;
}

static void set_filters_locked(struct mqtt *m, char **filters, size_t n)
{
	for (size_t i = 0; i < m->n_filters; i++)
		free(m->filters[i]);
	free(m->filters);
	m->filters = calloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		m->filters[i] = dup_mem(filters[i], strlen(filters[i]));
	m->n_filters = n;
}

static char *read_password(const char *path, char *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		cg_fail(err, CG_CONFIG, "mqtt.password_file %s cannot be read", path);
		return NULL;
	}
	char buf[1024] = "";
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return dup_mem(buf, strlen(buf));
}

static const char *keep(struct mqtt *m, const char *s)
{
	if (!s || !*s)
		return NULL;
	char *d = dup_mem(s, strlen(s));
	m->owned[m->n_owned++] = d;
	return d;
}

static void begin_connect(struct mqtt *m)
{
	atomic_store(&m->connecting, 1);
	int rc = MQTTAsync_connect(m->client, &m->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		MQTTAsync_failureData d = {.code = rc, .message = MQTTAsync_strerror(rc)};
		on_connect_failed(m, &d);
	}
}

struct mqtt *mqtt_start(const struct config *cfg, char **filters, size_t n,
                        const struct mqtt_hooks *hooks, char *err)
{
	struct mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	m->version = (int)cfg->mqtt.version;
	m->qos = (int)cfg->mqtt.qos;
	/* MQTT 5 brokers announce their Receive Maximum in CONNACK; until then
	 * assume Mosquitto's default. Paho's own limit for 3.1.1 is 65535. */
	atomic_init(&m->send_window, m->version == 5 ? 20 : MQTT_SEND_WINDOW_MAX);
	m->hooks = *hooks;
	m->shared_group = dup_mem(cfg->mqtt.shared_group, strlen(cfg->mqtt.shared_group));
	m->client_id = dup_mem(cfg->mqtt.client_id, strlen(cfg->mqtt.client_id));
	pthread_mutex_init(&m->lock, NULL);
	set_filters_locked(m, filters, n);
	{
		struct route_vars v = {0};
		route_vars_set(&v, "client_id", m->client_id);
		struct sbuf st;
		sbuf_init(&st);
		route_template_expand(cfg->mqtt.status_topic, &v, &st, NULL);
		m->status_topic = sbuf_steal(&st);
	}

	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = m->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	co.sendWhileDisconnected = 1;
	co.maxBufferedMessages = (int)(cfg->gateway.queue_size + cfg->gateway.max_inflight + 16);
	co.deleteOldestMessages = 0;
	int rc = MQTTAsync_createWithOptions(&m->client, cfg->mqtt.uri, m->client_id,
	                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		cg_fail(err, CG_CONFIG, "mqtt: cannot create client for %s: %s", cfg->mqtt.uri,
		        MQTTAsync_strerror(rc));
		goto fail;
	}
	MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(m->client, m, on_connected);

	if (m->version == 5) {
		MQTTAsync_connectOptions c5 = MQTTAsync_connectOptions_initializer5;
		m->conn = c5;
		/* A session that outlives a short restart: the broker keeps the
		 * subscriptions and queues QoS 1 requests while the gateway is away. */
		m->conn.cleanstart = 0;
		MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
		expiry.value.integer4 = SESSION_EXPIRY_S;
		MQTTProperties_add(&m->connect_props, &expiry);
		m->conn.connectProperties = &m->connect_props;
		m->conn.onFailure5 = on_connect_failed5;
		m->conn.onSuccess5 = on_connect_ok5;
	} else {
		MQTTAsync_connectOptions c4 = MQTTAsync_connectOptions_initializer;
		m->conn = c4;
		m->conn.cleansession = 1;
		m->conn.onFailure = on_connect_failed;
	}
	m->conn.keepAliveInterval = (int)cfg->mqtt.keepalive;
	m->conn.automaticReconnect = 1;
	m->conn.minRetryInterval = 1;
	m->conn.maxRetryInterval = 30;
	m->conn.context = m;
	if (*m->status_topic) {
		MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
		m->will = w;
		m->will.topicName = m->status_topic;
		m->will.message = "{\"state\":\"offline\"}";
		m->will.retained = 1;
		m->will.qos = 1;
		m->conn.will = &m->will;
	}
	if (*cfg->mqtt.username)
		m->conn.username = keep(m, cfg->mqtt.username);
	if (*cfg->mqtt.password_file) {
		m->password = read_password(cfg->mqtt.password_file, err);
		if (!m->password)
			goto fail;
		m->conn.password = m->password;
	}
	if (strncmp(cfg->mqtt.uri, "ssl://", 6) == 0 || strncmp(cfg->mqtt.uri, "wss://", 6) == 0 ||
	    strncmp(cfg->mqtt.uri, "mqtts://", 8) == 0) {
		MQTTAsync_SSLOptions s = MQTTAsync_SSLOptions_initializer;
		m->ssl = s;
		m->ssl.enableServerCertAuth = 1;
		m->ssl.verify = 1;
		m->ssl.trustStore = keep(m, cfg->mqtt.ca_file);
		if (!m->ssl.trustStore)
			m->ssl.CApath = "/etc/ssl/certs";
		m->ssl.keyStore = keep(m, cfg->mqtt.cert_file);
		m->ssl.privateKey = keep(m, cfg->mqtt.key_file);
		m->conn.ssl = &m->ssl;
	}
	the_client = m;
	begin_connect(m);
	return m;
fail:
	if (m->client)
		MQTTAsync_destroy(&m->client);
	set_filters_locked(m, NULL, 0);
	free(m->filters);
	free(m->shared_group);
	free(m->client_id);
	free(m->status_topic);
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m);
	return NULL;
}

void mqtt_tick(struct mqtt *m, uint64_t now_ms)
{
	if (atomic_load(&m->connected) || atomic_load(&m->connecting) ||
	    MQTTAsync_isConnected(m->client))
		return;
	if (m->retry_at_ms && now_ms >= m->retry_at_ms) {
		m->retry_at_ms = 0;
		begin_connect(m);
	}
}

static int in_list(char **list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

void mqtt_set_filters(struct mqtt *m, char **filters, size_t n)
{
	pthread_mutex_lock(&m->lock);
	int live = atomic_load(&m->connected);
	for (size_t i = 0; live && i < m->n_filters; i++) {
		if (in_list(filters, n, m->filters[i]))
			continue;
		char *f = full_filter(m, m->filters[i]);
		MQTTAsync_unsubscribe(m->client, f, NULL);
		log_info("mqtt: unsubscribed from %s", f);
		free(f);
	}
	for (size_t i = 0; live && i < n; i++)
		if (!in_list(m->filters, m->n_filters, filters[i]))
			subscribe_one(m, filters[i]);
	set_filters_locked(m, filters, n);
	m->subscribed = n;
	pthread_mutex_unlock(&m->lock);
}

static void delivered(void *ctx, int ok)
{
	struct mqtt *m = the_client;
	if (m && m->hooks.on_delivered)
		m->hooks.on_delivered((uint64_t)(uintptr_t)ctx, ok, m->hooks.ctx);
}

static void on_published(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	delivered(ctx, 1);
}

static void on_published5(void *ctx, MQTTAsync_successData5 *resp)
{
	(void)resp;
	delivered(ctx, 1);
}

static void on_publish_failed(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	delivered(ctx, 0);
}

static void on_publish_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	(void)resp;
	delivered(ctx, 0);
}

static enum cg_err publish(struct mqtt *m, const char *topic, const char *payload, size_t len,
                           int qos, int retained, const void *correlation, size_t correlation_len,
                           uint64_t cookie, char *err)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retained;
	if (m->version == 5 && correlation) {
		MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
		p.value.data.data = (char *)correlation;
		p.value.data.len = (int)correlation_len;
		MQTTProperties_add(&msg.properties, &p);
	}
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	if (cookie) {
		ro.context = (void *)(uintptr_t)cookie;
		if (m->version == 5) {
			ro.onSuccess5 = on_published5;
			ro.onFailure5 = on_publish_failed5;
		} else {
			ro.onSuccess = on_published;
			ro.onFailure = on_publish_failed;
		}
	}
	int rc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS)
		return cg_fail(err, CG_TRANSPORT, "publish to %s: %s", topic,
		               MQTTAsync_strerror(rc));
	return CG_OK;
}

enum cg_err mqtt_publish(struct mqtt *m, const char *topic, const char *payload, size_t len,
                         int qos, int retained, const void *correlation, size_t correlation_len,
                         char *err)
{
	return publish(m, topic, payload, len, qos, retained, correlation, correlation_len, 0, err);
}

enum cg_err mqtt_publish_tracked(struct mqtt *m, const char *topic, const char *payload, size_t len,
                                 int qos, const void *correlation, size_t correlation_len,
                                 uint64_t cookie, char *err)
{
	return publish(m, topic, payload, len, qos, 0, correlation, correlation_len, cookie, err);
}

int mqtt_send_window(struct mqtt *m)
{
	return atomic_load(&m->send_window);
}

int mqtt_connected(const struct mqtt *m)
{
	return atomic_load(&m->connected);
}

void mqtt_stop(struct mqtt *m, int timeout_ms)
{
	if (!m)
		return;
	if (atomic_load(&m->connected)) {
		publish_status(m, "offline");
		/* Let queued replies go out before the DISCONNECT. */
		MQTTAsync_token *tokens = NULL;
		uint64_t until = mono_ms() + (uint64_t)timeout_ms;
		while (MQTTAsync_getPendingTokens(m->client, &tokens) == MQTTASYNC_SUCCESS &&
		       tokens && tokens[0] != -1 && mono_ms() < until) {
			MQTTAsync_free(tokens);
			tokens = NULL;
			usleep(2000);
		}
		if (tokens)
			MQTTAsync_free(tokens);
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		d.timeout = timeout_ms;
		MQTTAsync_disconnect(m->client, &d);
		for (int i = 0; i < 100 && MQTTAsync_isConnected(m->client); i++)
			usleep(10000);
	}
	MQTTAsync_destroy(&m->client);
	the_client = NULL;
	pthread_mutex_lock(&m->lock);
	set_filters_locked(m, NULL, 0);
	pthread_mutex_unlock(&m->lock);
	free(m->filters);
	pthread_mutex_destroy(&m->lock);
	free(m->shared_group);
	free(m->client_id);
	free(m->status_topic);
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	MQTTProperties_free(&m->connect_props);
	if (m->password) {
		memset(m->password, 0, strlen(m->password));
		free(m->password);
	}
	free(m);
}
