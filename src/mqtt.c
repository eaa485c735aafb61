/*
 * mqtt: the connection to the broker over Paho's async client: start, stop,
 * connecting and reconnecting, and the status topic.
 *
 * Paho 1.3 leaves Nagle's algorithm on; small QoS 1 exchanges then wait for
 * delayed ACKs (tens of ms per round trip). After every (re)connect all TCP
 * sockets of the process get TCP_NODELAY (harmless for libcurl's, which set
 * it already): Paho exposes no socket handle, /proc/self/fd is the way in.
 *
 * Reconnecting is ours, not Paho's (automaticReconnect off): every attempt
 * goes through begin_connect() from the engine thread (mqtt_tick), so each
 * failure reaches on_connect_failed with its reason, and the delay comes
 * from backoff_equal_jitter (never zero: a failing broker is not
 * hammered). Paho's threads only record outcomes under
 * m->state_lock; they never take m->lock while the engine holds it and calls
 * Paho (mqtt_set_filters copies under the lock and calls Paho outside it).
 *
 * Subscriptions live in mqtt_sub.c, publishing in mqtt_pub.c; the state
 * they share, and the threading rules, in mqtt_priv.h.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "config.h"
#include "jsonw.h"
#include "log.h"
#include "secretfile.h"
#include "mqtt.h"
#include "mqtt_priv.h"

#include <openssl/crypto.h>
#include "route.h"
#include "runtime.h"
#include "sbuf.h"

#define SESSION_EXPIRY_S  300
#define CONNECT_TIMEOUT_S 10
#define RECONNECT_BASE_MS 1000
#define RECONNECT_CAP_MS  16000

#ifndef CMDGATE_VERSION
#define CMDGATE_VERSION "0.0.0"
#endif

void mqtt_tcp_nodelay_all(void)
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

/* After a failed attempt or a lost connection: when to try again. */
static void schedule_reconnect(struct mqtt *m)
{
	pthread_mutex_lock(&m->state_lock);
	m->connecting = 0;
	mqtt_rcv_connecting(0);
	m->failures++;
	m->retry_at_ms = rt_now_ms() + backoff_equal_jitter(m->failures, RECONNECT_BASE_MS,
	                                                    RECONNECT_CAP_MS, rt_random_u32());
	pthread_mutex_unlock(&m->state_lock);
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
		sbuf_printf(&p, ",\"version\":\"%s\",\"pid\":%d,\"since\":%lld", CMDGATE_VERSION,
		            (int)getpid(), (long long)atomic_load(&m->since));
		if (atomic_load(&m->proxy_configured) >= 0)
			sbuf_printf(&p, ",\"proxy\":{\"links_up\":%d,\"links_configured\":%d}",
			            atomic_load(&m->proxy_up), atomic_load(&m->proxy_configured));
		sbuf_putc(&p, '}');
	} else {
		sbuf_printf(&p, "{\"state\":\"%s\"}", state);
	}
	char err[ERR_LEN];
	struct mqtt_out out = {
	    .topic = m->status_topic, .payload = view_of(p.data, p.len), .qos = 1, .retain = 1};
	if (mqtt_publish(m, &out, 0, err) != MQTT_OUT_TAKEN)
		log_warn("mqtt: status not published: %s", err);
	sbuf_clean_up(&p);
}

/* CONNACK accepted (MQTT version, session present): publish status, subscribe. */
static void connected(struct mqtt *m, int session_present)
{
	mqtt_tcp_nodelay_all();
	pthread_mutex_lock(&m->state_lock);
	m->connecting = 0;
	mqtt_rcv_connecting(0);
	m->retry_at_ms = 0;
	pthread_mutex_unlock(&m->state_lock);
	atomic_store(&m->connected, 1);
	log_info("mqtt: connected (MQTT %s, %s)", m->version == 5 ? "5" : "3.1.1",
	         session_present ? "session resumed" : "new session");
	atomic_store(&m->since, (long long)time(NULL));
	publish_status(m, "online");
	mqtt_subscribe_all(m);
}

void mqtt_set_proxy_links(struct mqtt *m, int up, int configured)
{
	int same = atomic_exchange(&m->proxy_up, up) == up;
	same &= atomic_exchange(&m->proxy_configured, configured) == configured;
	if (same)
		return;
	if (atomic_load(&m->connected) && !atomic_load(&m->stopping))
		publish_status(m, "online");
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
	connected(ctx, resp ? resp->alt.connect.sessionPresent : 0);
}

/* MQTT 5: the broker's Receive Maximum bounds Paho's in-flight publishes;
 * its Shared Subscription Available says whether shared_group can work. */
static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = ctx;
	int window = MQTT_SEND_WINDOW_MAX; /* no Receive Maximum: 65535 */
	if (resp &&
	    MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		window = MQTTProperties_getNumericValue(&resp->properties,
		                                        MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	if (window < 1 || window > MQTT_SEND_WINDOW_MAX)
		window = MQTT_SEND_WINDOW_MAX;
	atomic_store(&m->send_window, window);
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
	case 1:
		return "unacceptable protocol version";
	case 2:
		return "client identifier rejected";
	case 3:
		return "server unavailable";
	case 4:
		return "bad user name or password";
	case 5:
		return "not authorized";
	default:
		return "refused";
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
	    (dropped ||
	     (connack && (code == 1 || code == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION))))
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
		          mqtt_shared_hint(m));
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
	          rc == MQTTREASONCODE_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED ? mqtt_shared_hint(m)
	                                                                  : "");
	if (!atomic_load(&m->stopping))
		schedule_reconnect(m);
}

/* The password from its file, under the same permission rule as the AWS
 * secret (secretfile.h); the read buffer is wiped. The copy is kept for
 * reconnects and wiped at stop. */
static char *read_password(const char *path, char *err)
{
	char buf[1024];
	char why[ERR_LEN] = "";
	if (secretfile_read(path, buf, sizeof(buf), why) != CG_OK) {
		cg_fail(err, CG_CONFIG, "mqtt.password_file: %s", why);
		OPENSSL_cleanse(buf, sizeof(buf));
		return NULL;
	}
	char *p = rt_strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return p;
}

static const char *keep(struct mqtt *m, const char *s)
{
	if (!s || !*s)
		return NULL;
	char *d = rt_strdup(s);
	m->owned[m->n_owned++] = d;
	return d;
}

/* Engine thread only. */
static void begin_connect(struct mqtt *m)
{
	pthread_mutex_lock(&m->state_lock);
	m->connecting = 1;
	mqtt_rcv_connecting(1);
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
	mqtt_free_filters(m->filters, m->n_filters);
	m->filters = NULL;
	m->n_filters = 0;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->state_lock);
	free(m->hooks);
	free(m->shared_group);
	free(m->client_id);
	free(m->status_topic);
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	MQTTProperties_free(&m->connect_props);
	if (m->password) {
		OPENSSL_cleanse(m->password, strlen(m->password));
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
		/* the broker drops a larger PUBLISH instead of sending it to us */
		MQTTProperty maxp = {.identifier = MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE};
		maxp.value.integer4 = (unsigned)mqtt_max_packet_size(o->max_payload);
		MQTTProperties_add(&m->connect_props, &maxp);
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

long mqtt_max_packet_size(long max_payload)
{
	long n = max_payload > 268435455 / 4 ? 268435455 : 4 * max_payload;
	return n < 65536 ? 65536 : n;
}

void mqtt_set_max_payload(struct mqtt *m, long max_payload)
{
	atomic_store(&m->max_payload, max_payload);
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

struct mqtt_options mqtt_options_of(const struct config *c)
{
	struct mqtt_options o = {
	    .uri = c->mqtt.uri,
	    .client_id = c->mqtt.client_id,
	    .version = (int)c->mqtt.version,
	    .username = c->mqtt.username,
	    .password_file = c->mqtt.password_file,
	    .ca_file = c->mqtt.ca_file,
	    .cert_file = c->mqtt.cert_file,
	    .key_file = c->mqtt.key_file,
	    .keepalive_s = (int)c->mqtt.keepalive,
	    .qos = (int)c->mqtt.qos,
	    .shared_group = c->mqtt.shared_group,
	    .status_topic = c->mqtt.status_topic,
	    .max_buffered = (int)(c->gateway.queue_size + c->gateway.max_inflight + 16),
	    .max_payload = c->gateway.max_payload,
	};
	return o;
}

struct mqtt *mqtt_start(const struct mqtt_options *o, char **filters, size_t n,
                        const struct mqtt_hooks *hooks, char *err)
{
	struct mqtt *m = rt_calloc(1, sizeof(*m));
	m->version = o->version == 5 ? 5 : 4;
	m->qos = o->qos;
	atomic_init(&m->max_payload, o->max_payload > 0 ? o->max_payload : 268435455);
	/* MQTT 5 brokers announce their Receive Maximum in CONNACK; until then
	 * assume Mosquitto's default. Paho's own limit for 3.1.1 is 65535. */
	atomic_init(&m->send_window, m->version == 5 ? 20 : MQTT_SEND_WINDOW_MAX);
	atomic_init(&m->proxy_configured, -1);
	m->hooks = rt_malloc(sizeof(*m->hooks));
	*m->hooks = *hooks;
	m->shared_group = rt_strdup(or_empty(o->shared_group));
	m->client_id = rt_strdup(or_empty(o->client_id));
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->state_lock, NULL);
	m->filters = mqtt_copy_filters(filters, n);
	m->n_filters = n;
	{
		struct route_vars v = {0};
		route_vars_set(&v, "client_id", m->client_id);
		struct sbuf st;
		sbuf_init(&st);
		/* config checks it uses {client_id} only; checked again here */
		if (route_template_expand(or_empty(o->status_topic), &v, &st, err) != CG_OK) {
			sbuf_clean_up(&st);
			goto fail;
		}
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
	MQTTAsync_setCallbacks(m->client, m, on_connection_lost, mqtt_on_message, NULL);
	if (m->version == 5)
		MQTTAsync_setDisconnected(m->client, m, on_disconnected);
	set_connect_options(m, o);
	if (o->password_file && *o->password_file) {
		m->password = read_password(o->password_file, err);
		if (!m->password)
			goto fail;
		m->conn.password = m->password;
	}
	if (mqtt_pub_attach(m) != 0) {
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

int mqtt_connected(const struct mqtt *m)
{
	return atomic_load(&m->connected);
}

void mqtt_stop(struct mqtt *m, int timeout_ms)
{
	if (!m)
		return;
	/* From here a request that arrives is acknowledged by Paho but reaches an
	 * engine that no longer admits: on_message says so in the log. */
	atomic_store(&m->stopping, 1);
	if (atomic_load(&m->connected)) {
		publish_status(m, "offline");
		/* Let queued replies go out before the DISCONNECT. */
		MQTTAsync_token *tokens = NULL;
		uint64_t until = rt_now_ms() + (uint64_t)timeout_ms;
		while (MQTTAsync_getPendingTokens(m->client, &tokens) == MQTTASYNC_SUCCESS &&
		       tokens && tokens[0] != -1 && rt_now_ms() < until) {
			MQTTAsync_free(tokens);
			tokens = NULL;
			usleep(2000);
		}
		if (tokens)
			MQTTAsync_free(tokens);
		/* No unsubscribe: the session keeps the subscriptions, and the
		 * broker queues requests until the next start. */
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		d.timeout = timeout_ms;
		MQTTAsync_disconnect(m->client, &d);
		for (int i = 0; i < 100 && MQTTAsync_isConnected(m->client); i++)
			usleep(10000);
	}
	MQTTAsync_destroy(&m->client);
	mqtt_pub_detach();
	free_client(m);
}
