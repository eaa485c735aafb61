/*
 * mqtt: connection, subscriptions and publishing over Paho's async client.
 *
 * Paho 1.3 leaves Nagle's algorithm on; small QoS 1 exchanges then wait for
 * delayed ACKs (tens of ms per round trip). After every (re)connect all TCP
 * sockets of the process get TCP_NODELAY (harmless for libcurl's, which set
 * it already): Paho exposes no socket handle, /proc/self/fd is the way in.
 *
 * Reconnecting is ours, not Paho's (automaticReconnect off): every attempt
 * goes through begin_connect() from the engine thread (mqtt_tick), so each
 * failure reaches on_connect_failed with its reason, and the delay comes
 * from backoff_full_jitter. Paho's threads only record outcomes under
 * m->state_lock; they never take m->lock while the engine holds it and calls
 * Paho (mqtt_set_filters copies under the lock and calls Paho outside it).
 *
 * Threads: the engine thread calls mqtt_start/tick/set_filters/offer/stop;
 * Paho's threads call the on_* callbacks. Shared fields are either atomics
 * (<stdatomic.h>) or under one of the two mutexes, as marked below.
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
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "jsonw.h"
#include "log.h"
#include "route.h"
#include "sbuf.h"

#define SESSION_EXPIRY_S 300
#define CONNECT_TIMEOUT_S 10
#define RECONNECT_BASE_MS 1000
#define RECONNECT_CAP_MS 16000
#define RECONNECT_FLOOR_MS 100

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
	char *owned[8]; /* copies of option strings Paho keeps pointers to */
	size_t n_owned;
	struct mqtt_hooks hooks;
	_Atomic(void (*)(uint64_t, void *)) on_undelivered;

	pthread_mutex_t lock; /* guards filters, n_filters, subscribed, round */
	char **filters;
	size_t n_filters;
	size_t subscribed; /* SUBACKs of this round */
	size_t round;      /* filters subscribed by the last (re)connect */

	pthread_mutex_t state_lock; /* guards the reconnect schedule below */
	int connecting;             /* a CONNECT is under way */
	unsigned failures;          /* attempts since the last time ready */
	uint64_t retry_at_ms;       /* 0: no attempt scheduled */

	atomic_int connected;
	atomic_int stopping;

	/* read by Paho during MQTTAsync_connect, written only before the first */
	MQTTAsync_connectOptions conn;
	MQTTAsync_willOptions will;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties connect_props;
};

/* The one client of this process, for delivery callbacks whose context
 * carries the cookie itself (no allocation per publish). Set before the
 * first connect, cleared after MQTTAsync_destroy (no callback runs later). */
static _Atomic(struct mqtt *) the_client;

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

static uint32_t random32(void)
{
	uint32_t r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	/* jitter only spreads reconnects: the clock's low bits will do */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
}

/* After a failed attempt or a lost connection: when to try again. */
static void schedule_reconnect(struct mqtt *m)
{
	pthread_mutex_lock(&m->state_lock);
	m->connecting = 0;
	m->failures++;
	m->retry_at_ms = mono_ms() + RECONNECT_FLOOR_MS +
	                 backoff_full_jitter(m->failures, RECONNECT_BASE_MS, RECONNECT_CAP_MS,
	                                     random32());
	pthread_mutex_unlock(&m->state_lock);
}

static const char *shared_hint(const struct mqtt *m)
{
	return *m->shared_group ? "; mqtt.shared_group is set and this broker may not support "
	                          "shared subscriptions ($share): unset it or use a broker that does"
	                        : "";
}

/* A SUBACK for one filter of this round: the last one makes the client ready. */
static void on_subscribed(void *ctx, MQTTAsync_successData *resp)
{
	struct mqtt *m = ctx;
	if (m->version != 5 && resp && resp->alt.qos == 0x80) {
		log_error("mqtt: the broker refused a subscription (SUBACK 0x80)%s", shared_hint(m));
		return;
	}
	pthread_mutex_lock(&m->lock);
	int ready = ++m->subscribed == m->round;
	size_t n = m->round;
	pthread_mutex_unlock(&m->lock);
	if (!ready)
		return;
	pthread_mutex_lock(&m->state_lock);
	m->failures = 0;
	pthread_mutex_unlock(&m->state_lock);
	log_debug("mqtt: all %zu filter(s) subscribed", n);
	if (m->hooks.on_ready)
		m->hooks.on_ready(m->hooks.ctx);
}

static void on_subscribed5(void *ctx, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = ctx;
	if (resp->alt.sub.reasonCodeCount <= 1 && resp->reasonCode >= 0x80) {
		log_error("mqtt: the broker refused a subscription: reason %d (%s)%s",
		          (int)resp->reasonCode, MQTTReasonCode_toString(resp->reasonCode),
		          shared_hint(m));
		return;
	}
	on_subscribed(ctx, NULL);
}

static void on_sub_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt *m = ctx;
	int code = resp ? resp->code : -1;
	if (code == 0x80) /* SUBACK failure */
		log_error("mqtt: the broker refused a subscription (SUBACK 0x80)%s", shared_hint(m));
	else if (code != MQTTASYNC_OPERATION_INCOMPLETE) /* not just a lost connection */
		log_error("mqtt: subscribe failed: %s", MQTTAsync_strerror(code));
}

static void on_sub_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	struct mqtt *m = ctx;
	if (resp && resp->code == MQTTASYNC_OPERATION_INCOMPLETE)
		return;
	int rc = resp ? (int)resp->reasonCode : -1;
	log_error("mqtt: the broker refused a subscription: reason %d (%s)%s", rc,
	          resp ? MQTTReasonCode_toString(resp->reasonCode) : "no answer",
	          rc == MQTTREASONCODE_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED || rc == 0x80 ||
	                  rc == MQTTREASONCODE_TOPIC_FILTER_INVALID
	              ? shared_hint(m)
	              : "");
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
	char err[ERR_LEN];
	if (mqtt_publish(m, m->status_topic, p.data, p.len, 1, 1, NULL, 0, err) != CG_OK)
		log_warn("mqtt: status not published: %s", err);
	sbuf_clean_up(&p);
}

static char **copy_filters(char **filters, size_t n)
{
	char **c = calloc(n ? n : 1, sizeof(char *));
	if (!c)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(filters[i])))
			abort();
	return c;
}

static void free_filters(char **filters, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(filters[i]);
	free(filters);
}

/* CONNACK accepted (MQTT version, session present): publish status, subscribe. */
static void connected(struct mqtt *m, int session_present)
{
	tcp_nodelay_all();
	pthread_mutex_lock(&m->state_lock);
	m->connecting = 0;
	m->retry_at_ms = 0;
	pthread_mutex_unlock(&m->state_lock);
	atomic_store(&m->connected, 1);
	log_info("mqtt: connected (MQTT %s, %s)", m->version == 5 ? "5" : "3.1.1",
	         session_present ? "session resumed" : "new session");
	publish_status(m, "online");
	pthread_mutex_lock(&m->lock);
	size_t n = m->n_filters;
	char **f = copy_filters(m->filters, n);
	m->subscribed = 0;
	m->round = n;
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < n; i++)
		subscribe_one(m, f[i]);
	free_filters(f, n);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
	connected(ctx, resp ? resp->alt.connect.sessionPresent : 0);
}

static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = ctx;
	if (resp && *m->shared_group &&
	    MQTTProperties_hasProperty(&resp->properties,
	                               MQTTPROPERTY_CODE_SHARED_SUBSCRIPTION_AVAILABLE) &&
	    MQTTProperties_getNumericValue(&resp->properties,
	                                   MQTTPROPERTY_CODE_SHARED_SUBSCRIPTION_AVAILABLE) == 0)
		log_error("mqtt: the broker says it has no shared subscriptions, but "
		          "mqtt.shared_group = \"%s\": requests will not arrive; unset it",
		          m->shared_group);
	connected(m, resp ? resp->alt.connect.sessionPresent : 0);
}

static const char *connack_name(int code)
{
	switch (code) {
	case 1: return "unacceptable protocol version";
	case 2: return "client identifier rejected";
	case 3: return "server unavailable";
	case 4: return "bad user name or password";
	case 5: return "not authorized";
	default: return "refused";
	}
}

/* Log why a CONNECT failed; code is Paho's (a CONNACK return or reason code
 * when the message says so). */
static void log_connect_failure(const struct mqtt *m, int code, const char *message)
{
	const char *msg = message ? message : "no answer";
	int connack = message && strcmp(message, "CONNACK return code") == 0;
	/* the broker closed the connection after reading our CONNECT */
	int dropped = message && strcmp(message, "TCP connect completion failure") == 0;
	char why[160] = "";
	if (connack && m->version == 5)
		snprintf(why, sizeof(why), " %d (%s)", code,
		         code >= 0x80 ? MQTTReasonCode_toString((enum MQTTReasonCodes)code)
		                      : connack_name(code));
	else if (connack)
		snprintf(why, sizeof(why), " %d (%s)", code, connack_name(code));
	const char *hint = "";
	if (m->version == 5 &&
	    (dropped || (connack && (code == 1 || code == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION))))
		hint = "; the broker may not support MQTT 5: try mqtt.version = 4";
	else if (m->version != 5 && connack && code == 1)
		hint = "; the broker refused MQTT 3.1.1";
	log_warn("mqtt: connect failed: %s%s%s", msg, why, hint);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt *m = ctx;
	log_connect_failure(m, resp ? resp->code : -1, resp ? resp->message : NULL);
	schedule_reconnect(m);
}

static void on_connect_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	struct mqtt *m = ctx;
	int code = resp ? resp->code : -1;
	if (resp && resp->reasonCode >= 0x80)
		code = resp->reasonCode;
	log_connect_failure(m, code, resp ? resp->message : NULL);
	schedule_reconnect(m);
}

static void on_connection_lost(void *ctx, char *cause)
{
	struct mqtt *m = ctx;
	atomic_store(&m->connected, 0);
	if (atomic_load(&m->stopping))
		return;
	pthread_mutex_lock(&m->lock);
	int subscribing = m->subscribed < m->round;
	pthread_mutex_unlock(&m->lock);
	/* MQTT 3.1.1 has no DISCONNECT from the broker: a broker that rejects
	 * a $share filter just closes the connection while we subscribe. */
	if (subscribing && *m->shared_group)
		log_error("mqtt: the broker closed the connection while we subscribed%s",
		          shared_hint(m));
	log_warn("mqtt: connection lost%s%s; reconnecting", cause ? ": " : "", cause ? cause : "");
	schedule_reconnect(m);
}

/* MQTT 5: the broker sent DISCONNECT (Paho calls no connectionLost then). */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	struct mqtt *m = ctx;
	atomic_store(&m->connected, 0);
	const char *reason = "";
	int len = 0;
	MQTTProperty *p =
	    props ? MQTTProperties_getProperty(props, MQTTPROPERTY_CODE_REASON_STRING) : NULL;
	if (p) {
		reason = p->value.data.data;
		len = p->value.data.len;
	}
	log_error("mqtt: the broker disconnected us: reason %d (%s)%s%.*s%s", (int)rc,
	          MQTTReasonCode_toString(rc), len ? ": " : "", len, reason,
	          rc == MQTTREASONCODE_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED ? shared_hint(m) : "");
	if (!atomic_load(&m->stopping))
		schedule_reconnect(m);
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
	if (atomic_load(&m->stopping))
		log_warn("mqtt: a request on %s arrived while stopping; it is not answered "
		         "(a device's retry with the same id covers it)",
		         in->topic);
	m->hooks.on_message(in, m->hooks.ctx);
	return 1;
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
	char *p = dup_mem(buf, strlen(buf));
	memset(buf, 0, sizeof(buf));
	return p;
}

static const char *keep(struct mqtt *m, const char *s)
{
	if (!s || !*s)
		return NULL;
	char *d = dup_mem(s, strlen(s));
	m->owned[m->n_owned++] = d;
	return d;
}

/* Engine thread only. */
static void begin_connect(struct mqtt *m)
{
	pthread_mutex_lock(&m->state_lock);
	m->connecting = 1;
	m->retry_at_ms = 0;
	pthread_mutex_unlock(&m->state_lock);
	int rc = MQTTAsync_connect(m->client, &m->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		log_connect_failure(m, rc, MQTTAsync_strerror(rc));
		schedule_reconnect(m);
	}
}

static void free_client(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	free_filters(m->filters, m->n_filters);
	m->filters = NULL;
	m->n_filters = 0;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->state_lock);
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

static void set_connect_options(struct mqtt *m, const struct mqtt_options *o)
{
	if (m->version == 5) {
		MQTTAsync_connectOptions c5 = MQTTAsync_connectOptions_initializer5;
		m->conn = c5;
		/* A session that outlives a restart: the broker keeps the
		 * subscriptions and queues QoS 1/2 requests while the gateway is away. */
		m->conn.cleanstart = 0;
		MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
		expiry.value.integer4 = SESSION_EXPIRY_S;
		MQTTProperties_add(&m->connect_props, &expiry);
		m->conn.connectProperties = &m->connect_props;
		m->conn.onSuccess5 = on_connect_ok5;
		m->conn.onFailure5 = on_connect_failed5;
	} else {
		MQTTAsync_connectOptions c4 = MQTTAsync_connectOptions_initializer;
		m->conn = c4;
		/* Pinned: Paho's default falls back to 3.1 (MQIsdp) after a
		 * refused CONNECT, which hides the broker's real answer. */
		m->conn.MQTTVersion = MQTTVERSION_3_1_1;
		/* The same session across restarts (fixed client id): requests
		 * published meanwhile are queued by the broker. */
		m->conn.cleansession = 0;
		m->conn.onSuccess = on_connect_ok;
		m->conn.onFailure = on_connect_failed;
	}
	m->conn.keepAliveInterval = o->keepalive_s;
	m->conn.connectTimeout = CONNECT_TIMEOUT_S;
	m->conn.automaticReconnect = 0; /* mqtt_tick reconnects */
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
	if (o->username && *o->username)
		m->conn.username = keep(m, o->username);
	if (strncmp(o->uri, "ssl://", 6) == 0 || strncmp(o->uri, "wss://", 6) == 0 ||
	    strncmp(o->uri, "mqtts://", 8) == 0) {
		MQTTAsync_SSLOptions s = MQTTAsync_SSLOptions_initializer;
		m->ssl = s;
		m->ssl.enableServerCertAuth = 1;
		m->ssl.verify = 1;
		m->ssl.trustStore = keep(m, o->ca_file);
		if (!m->ssl.trustStore)
			m->ssl.CApath = "/etc/ssl/certs";
		m->ssl.keyStore = keep(m, o->cert_file);
		m->ssl.privateKey = keep(m, o->key_file);
		m->conn.ssl = &m->ssl;
	}
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

struct mqtt *mqtt_start(const struct mqtt_options *o, char **filters, size_t n,
                        const struct mqtt_hooks *hooks, char *err)
{
	struct mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	m->version = o->version == 5 ? 5 : 4;
	m->qos = o->qos;
	m->hooks = *hooks;
	m->shared_group = strdup(or_empty(o->shared_group));
	m->client_id = strdup(or_empty(o->client_id));
	if (!m->shared_group || !m->client_id)
		abort();
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->state_lock, NULL);
	m->filters = copy_filters(filters, n);
	m->n_filters = n;
	{
		struct vars v = {0};
		vars_set(&v, "client_id", m->client_id);
		struct sbuf st;
		sbuf_init(&st);
		template_expand(or_empty(o->status_topic), &v, &st, NULL);
		m->status_topic = sbuf_steal(&st);
	}

	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = m->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	co.sendWhileDisconnected = 1;
	co.maxBufferedMessages = o->max_buffered > 0 ? o->max_buffered : 100;
	co.deleteOldestMessages = 0;
	int rc = MQTTAsync_createWithOptions(&m->client, o->uri, m->client_id,
	                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		cg_fail(err, CG_CONFIG, "mqtt: cannot create client for %s: %s", o->uri,
		        MQTTAsync_strerror(rc));
		goto fail;
	}
	MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
	if (m->version == 5)
		MQTTAsync_setDisconnected(m->client, m, on_disconnected);
	set_connect_options(m, o);
	if (o->password_file && *o->password_file) {
		m->password = read_password(o->password_file, err);
		if (!m->password)
			goto fail;
		m->conn.password = m->password;
	}
	struct mqtt *none = NULL;
	if (!atomic_compare_exchange_strong(&the_client, &none, m)) {
		cg_fail(err, CG_INTERNAL, "mqtt: one client per process");
		goto fail;
	}
	begin_connect(m);
	return m;
fail:
	if (m->client)
		MQTTAsync_destroy(&m->client);
	free_client(m);
	return NULL;
}

void mqtt_tick(struct mqtt *m, uint64_t now_ms)
{
	if (atomic_load(&m->connected) || atomic_load(&m->stopping))
		return;
	pthread_mutex_lock(&m->state_lock);
	int due = !m->connecting && m->retry_at_ms && now_ms >= m->retry_at_ms;
	pthread_mutex_unlock(&m->state_lock);
	if (due && !MQTTAsync_isConnected(m->client))
		begin_connect(m);
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
	char **old = m->filters;
	size_t n_old = m->n_filters;
	m->filters = copy_filters(filters, n);
	m->n_filters = n;
	/* SUBACKs of a reload do not make a new "ready" */
	m->subscribed = m->round = n;
	pthread_mutex_unlock(&m->lock);
	if (n == 0) {
		log_info("mqtt: stopping; the broker keeps this session's subscriptions");
		free_filters(old, n_old);
		return;
	}
	/* Paho is called without m->lock: its threads take m->lock in callbacks
	 * while holding Paho's own mutex. */
	int live = atomic_load(&m->connected);
	for (size_t i = 0; live && i < n_old; i++) {
		if (in_list(filters, n, old[i]))
			continue;
		char *f = full_filter(m, old[i]);
		MQTTAsync_unsubscribe(m->client, f, NULL);
		log_info("mqtt: unsubscribed from %s", f);
		free(f);
	}
	for (size_t i = 0; live && i < n; i++)
		if (!in_list(old, n_old, filters[i]))
			subscribe_one(m, filters[i]);
	free_filters(old, n_old);
}

static void on_published(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	struct mqtt *m = atomic_load(&the_client);
	if (m && m->hooks.on_delivered)
		m->hooks.on_delivered((uint64_t)(uintptr_t)ctx, m->hooks.ctx);
}

static void on_published5(void *ctx, MQTTAsync_successData5 *resp)
{
	(void)resp;
	on_published(ctx, NULL);
}

/* Paho took a tracked publish and dropped it: the broker's session was
 * lost while it was in flight (or the client is being destroyed). */
static void on_publish_failed(void *ctx, int code)
{
	struct mqtt *m = atomic_load(&the_client);
	if (!m || atomic_load(&m->stopping))
		return;
	uint64_t cookie = (uint64_t)(uintptr_t)ctx;
	void (*fn)(uint64_t, void *) = atomic_load(&m->on_undelivered);
	if (fn)
		fn(cookie, m->hooks.ctx);
	else
		log_error("mqtt: a reply (cookie %llu) was dropped by the MQTT client: %s",
		          (unsigned long long)cookie, MQTTAsync_strerror(code));
}

static void on_publish_failed3(void *ctx, MQTTAsync_failureData *resp)
{
	on_publish_failed(ctx, resp ? resp->code : MQTTASYNC_FAILURE);
}

static void on_publish_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	on_publish_failed(ctx, resp ? resp->code : MQTTASYNC_FAILURE);
}

void mqtt_set_undelivered_hook(struct mqtt *m, void (*fn)(uint64_t cookie, void *ctx))
{
	atomic_store(&m->on_undelivered, fn);
}

static enum mqtt_put put(struct mqtt *m, const char *topic, const char *payload, size_t len,
                         int qos, int retained, const void *correlation, size_t correlation_len,
                         uint64_t cookie, char *err)
{
	if (atomic_load(&m->stopping) && cookie) {
		cg_fail(err, CG_TRANSPORT, "publish to %s: the MQTT client is stopping", topic);
		return MQTT_LATER;
	}
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
			ro.onFailure = on_publish_failed3;
		}
	}
	int rc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);
	switch (rc) {
	case MQTTASYNC_SUCCESS:
		return MQTT_TAKEN;
	case MQTTASYNC_MAX_BUFFERED_MESSAGES:
	case MQTTASYNC_DISCONNECTED:
	case MQTTASYNC_NO_MORE_MSGIDS:
	case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
	case MQTTASYNC_OPERATION_INCOMPLETE:
	case MQTTASYNC_FAILURE:
		cg_fail(err, CG_TRANSPORT, "publish to %s: %s; try later", topic,
		        MQTTAsync_strerror(rc));
		return MQTT_LATER;
	default:
		cg_fail(err, CG_TRANSPORT, "publish to %s: %s", topic, MQTTAsync_strerror(rc));
		return MQTT_REFUSED;
	}
}

enum mqtt_put mqtt_offer(struct mqtt *m, const char *topic, const char *payload, size_t len,
                         int qos, const void *correlation, size_t correlation_len,
                         uint64_t cookie, char *err)
{
	return put(m, topic, payload, len, qos, 0, correlation, correlation_len, cookie, err);
}

enum cg_err mqtt_publish(struct mqtt *m, const char *topic, const char *payload, size_t len,
                         int qos, int retained, const void *correlation, size_t correlation_len,
                         char *err)
{
	return put(m, topic, payload, len, qos, retained, correlation, correlation_len, 0, err) ==
	               MQTT_TAKEN
	           ? CG_OK
	           : CG_TRANSPORT;
}

enum cg_err mqtt_publish_tracked(struct mqtt *m, const char *topic, const char *payload, size_t len,
                                 int qos, const void *correlation, size_t correlation_len,
                                 uint64_t cookie, char *err)
{
	switch (put(m, topic, payload, len, qos, 0, correlation, correlation_len, cookie, err)) {
	case MQTT_TAKEN:
		return CG_OK;
	case MQTT_LATER:
		return CG_TRANSPORT;
	default:
		return CG_INVALID;
	}
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
		atomic_store(&m->stopping, 1);
		/* No unsubscribe: the session keeps the subscriptions, and the
		 * broker queues requests until the next start. */
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		d.timeout = timeout_ms;
		MQTTAsync_disconnect(m->client, &d);
		for (int i = 0; i < 100 && MQTTAsync_isConnected(m->client); i++)
			usleep(10000);
	}
	atomic_store(&m->stopping, 1);
	MQTTAsync_destroy(&m->client);
	atomic_store(&the_client, NULL);
	free_client(m);
}
