/*
 * proxy_link: the Paho edge of one proxied thing. Callbacks copy what
 * arrived into a struct message and put it into the inbox; the engine
 * thread reads those events and moves the link's state (proxy_link.h).
 *
 * Memory: Paho 1.3.12 builds one SSL_CTX per client and has no hook to
 * share one, so each link holds its own context with the CA file's
 * certificates, its certificate and key; Paho's send and receive threads
 * are shared by every client of the process.
 */
#include "proxy_link.h"

#include <MQTTAsync.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "log.h"
#include "proxy_topic.h"
#include "runtime.h"
#include "sbuf.h"
#include "secretfile.h"

#define CONNECT_TIMEOUT_S 10
#define RECONNECT_BASE_MS 1000
#define RECONNECT_CAP_MS  16000
/* AWS IoT Core takes one CONNECT per second per client id. */
#define CONNECT_GAP_MS 1000

struct proxy_link_paho {
	MQTTAsync client;
	struct inbox *inbox;
	uint64_t id;
	int version;
	char *uri, *ca, *cert, *key;
	char *filters[PROXY_LINK_FILTERS];
	MQTTAsync_connectOptions conn;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties props;
};

/* ---- Paho's threads: hand over and return ------------------------------- */

static void put_event(struct proxy_link_paho *p, int event, const char *text)
{
	struct message *m = rt_calloc(1, sizeof(*m));
	m->link = p->id;
	m->link_event = event;
	m->topic = rt_strdup("");
	m->payload = rt_strdup(text ? text : "");
	m->len = strlen(m->payload);
	m->received_ms = rt_now_ms();
	inbox_put(p->inbox, m);
}

static char *dup_mem(const void *src, size_t n)
{
	char *d = rt_malloc(n + 1);
	if (n)
		memcpy(d, src, n);
	d[n] = '\0';
	return d;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct proxy_link_paho *p = ctx;
	struct message *m = rt_calloc(1, sizeof(*m));
	m->link = p->id;
	m->link_event = PROXY_LINK_MESSAGE;
	m->topic = dup_mem(topic, topic_len > 0 ? (size_t)topic_len : strlen(topic));
	m->payload = dup_mem(msg->payload, (size_t)msg->payloadlen);
	m->len = (size_t)msg->payloadlen;
	m->qos = msg->qos;
	m->received_ms = rt_now_ms();
	m->received_wall_ms = rt_wall_ms();
	if (p->version == 5) {
		MQTTProperty *ct =
		    MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CONTENT_TYPE);
		if (ct)
			m->content_type = dup_mem(ct->value.data.data, (size_t)ct->value.data.len);
		if (MQTTProperties_hasProperty(&msg->properties,
		                               MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL)) {
			m->has_expiry = 1;
			m->expiry_s = (uint32_t)MQTTProperties_getNumericValue(
			    &msg->properties, MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL);
		}
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	inbox_put(p->inbox, m);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	put_event(ctx, PROXY_LINK_DOWN, cause ? cause : "connection lost");
}

static void on_disconnected5(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	(void)props;
	char why[128];
	snprintf(why, sizeof(why), "disconnected by AWS: reason %d (%s)", (int)rc,
	         MQTTReasonCode_toString(rc));
	put_event(ctx, PROXY_LINK_DOWN, why);
}

/* SUBACK: the link is up; a refused filter (the IoT policy) is a warning. */
static void subscribed(struct proxy_link_paho *p, int refused)
{
	char why[96] = "";
	if (refused)
		snprintf(why, sizeof(why), "%d of %d subscriptions refused (check the IoT policy)",
		         refused, PROXY_LINK_FILTERS);
	put_event(p, PROXY_LINK_UP, why);
}

static void on_sub3(void *ctx, MQTTAsync_successData *r)
{
	int refused = 0;
	for (int i = 0; r && r->alt.qosList && i < PROXY_LINK_FILTERS; i++)
		refused += r->alt.qosList[i] == 0x80;
	subscribed(ctx, refused);
}

static void on_sub5(void *ctx, MQTTAsync_successData5 *r)
{
	int refused = 0;
	for (int i = 0; r && i < r->alt.sub.reasonCodeCount; i++)
		refused += r->alt.sub.reasonCodes[i] >= 0x80;
	subscribed(ctx, refused);
}

/* A SUBSCRIBE that failed because the connection went is no answer: the
 * lost connection is reported (on_lost) and the next connect subscribes. */
static void on_sub_failed3(void *ctx, MQTTAsync_failureData *r)
{
	if (!r || r->code != MQTTASYNC_OPERATION_INCOMPLETE)
		subscribed(ctx, PROXY_LINK_FILTERS);
}

static void on_sub_failed5(void *ctx, MQTTAsync_failureData5 *r)
{
	if (!r || r->code != MQTTASYNC_OPERATION_INCOMPLETE)
		subscribed(ctx, PROXY_LINK_FILTERS);
}

static void subscribe_all(struct proxy_link_paho *p)
{
	int qos[PROXY_LINK_FILTERS] = {1, 1, 1, 1, 1};
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.context = p;
	if (p->version == 5) {
		ro.onSuccess5 = on_sub5;
		ro.onFailure5 = on_sub_failed5;
	} else {
		ro.onSuccess = on_sub3;
		ro.onFailure = on_sub_failed3;
	}
	int rc = MQTTAsync_subscribeMany(p->client, PROXY_LINK_FILTERS, p->filters, qos, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		put_event(p, PROXY_LINK_DOWN, MQTTAsync_strerror(rc));
}

static void on_connected3(void *ctx, MQTTAsync_successData *r)
{
	(void)r;
	subscribe_all(ctx);
}

static void on_connected5(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	subscribe_all(ctx);
}

static void on_connect_failed3(void *ctx, MQTTAsync_failureData *r)
{
	char why[160];
	snprintf(why, sizeof(why), "%s (%d)", r && r->message ? r->message : "no answer",
	         r ? r->code : -1);
	put_event(ctx, PROXY_LINK_FAILED, why);
}

static void on_connect_failed5(void *ctx, MQTTAsync_failureData5 *r)
{
	char why[160];
	if (r && r->reasonCode >= 0x80)
		snprintf(why, sizeof(why), "%s: reason %d (%s)",
		         r->message ? r->message : "refused", (int)r->reasonCode,
		         MQTTReasonCode_toString(r->reasonCode));
	else
		snprintf(why, sizeof(why), "%s (%d)", r && r->message ? r->message : "no answer",
		         r ? r->code : -1);
	put_event(ctx, PROXY_LINK_FAILED, why);
}

/* ---- the engine thread -------------------------------------------------- */

static void set_options(struct proxy_link_paho *p, const struct proxy_config *pc)
{
	if (p->version == 5) {
		MQTTAsync_connectOptions c5 = MQTTAsync_connectOptions_initializer5;
		p->conn = c5;
		p->conn.cleanstart = 0;
		MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
		expiry.value.integer4 = (unsigned)pc->session_expiry;
		MQTTProperties_add(&p->props, &expiry);
		p->conn.connectProperties = &p->props;
		p->conn.onSuccess5 = on_connected5;
		p->conn.onFailure5 = on_connect_failed5;
	} else {
		MQTTAsync_connectOptions c4 = MQTTAsync_connectOptions_initializer;
		p->conn = c4;
		p->conn.MQTTVersion = MQTTVERSION_3_1_1;
		p->conn.cleansession = 0;
		p->conn.onSuccess = on_connected3;
		p->conn.onFailure = on_connect_failed3;
	}
	p->conn.keepAliveInterval = (int)pc->keepalive;
	p->conn.connectTimeout = CONNECT_TIMEOUT_S;
	p->conn.automaticReconnect = 0;
	p->conn.context = p;
	MQTTAsync_SSLOptions s = MQTTAsync_SSLOptions_initializer;
	p->ssl = s;
	p->ssl.enableServerCertAuth = 1;
	p->ssl.verify = 1;
	p->ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
	p->ssl.trustStore = p->ca;
	if (!p->ca)
		p->ssl.CApath = "/etc/ssl/certs";
	p->ssl.keyStore = p->cert;
	p->ssl.privateKey = p->key;
	p->conn.ssl = &p->ssl;
}

static void free_paho(struct proxy_link_paho *p)
{
	if (p->client)
		MQTTAsync_destroy(&p->client);
	MQTTProperties_free(&p->props);
	for (int i = 0; i < PROXY_LINK_FILTERS; i++)
		free(p->filters[i]);
	free(p->uri);
	free(p->ca);
	free(p->cert);
	free(p->key);
	free(p);
}

struct proxy_link *proxy_link_new(const struct proxy_config *pc, const char *thing, uint64_t id,
                                  struct inbox *ib, char *err)
{
	struct proxy_link_paho *p = rt_calloc(1, sizeof(*p));
	p->inbox = ib;
	p->id = id;
	p->version = pc->version == 5 ? 5 : 4;
	p->uri = rt_strdup(pc->uri);
	p->ca = *pc->ca_file ? rt_strdup(pc->ca_file) : NULL;
	char cert[1024], key[1024];
	config_proxy_identity(pc, thing, cert, key, sizeof(cert));
	p->cert = rt_strdup(cert);
	p->key = rt_strdup(key);
	proxy_topic_link_filters(thing, p->filters);
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = p->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	co.sendWhileDisconnected = 0;
	int rc = MQTTAsync_createWithOptions(&p->client, p->uri, thing, MQTTCLIENT_PERSISTENCE_NONE,
	                                     NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		cg_fail(err, CG_CONFIG, "proxy: cannot create the link for %s to %s: %s", thing,
		        p->uri, MQTTAsync_strerror(rc));
		p->client = NULL;
		free_paho(p);
		return NULL;
	}
	MQTTAsync_setCallbacks(p->client, p, on_lost, on_message, NULL);
	if (p->version == 5)
		MQTTAsync_setDisconnected(p->client, p, on_disconnected5);
	set_options(p, pc);
	struct proxy_link *l = rt_calloc(1, sizeof(*l));
	l->id = id;
	l->thing = rt_strdup(thing);
	l->paho = p;
	l->state = LINK_IDLE;
	l->retry_at_ms = 0;
	return l;
}

void proxy_link_begin_disconnect(struct proxy_link *l, int timeout_ms)
{
	if (!MQTTAsync_isConnected(l->paho->client))
		return;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = timeout_ms;
	MQTTAsync_disconnect(l->paho->client, &d);
}

void proxy_link_free(struct proxy_link *l, int timeout_ms)
{
	if (!l)
		return;
	proxy_link_begin_disconnect(l, timeout_ms);
	for (int i = 0; i < timeout_ms / 10 && MQTTAsync_isConnected(l->paho->client); i++)
		usleep(10000);
	free_paho(l->paho);
	free(l->thing);
	free(l);
}

int proxy_link_due(const struct proxy_link *l, uint64_t now)
{
	return l->state == LINK_IDLE && now >= l->retry_at_ms;
}

static void schedule_retry(struct proxy_link *l, uint64_t now, uint32_t rnd)
{
	l->state = LINK_IDLE;
	l->failures++;
	l->retry_at_ms =
	    now + backoff_equal_jitter(l->failures, RECONNECT_BASE_MS, RECONNECT_CAP_MS, rnd);
	if (l->connect_ms && l->retry_at_ms < l->connect_ms + CONNECT_GAP_MS)
		l->retry_at_ms = l->connect_ms + CONNECT_GAP_MS;
}

void proxy_link_connect(struct proxy_link *l, uint64_t now)
{
	l->state = LINK_CONNECTING;
	l->connect_ms = now;
	int rc = MQTTAsync_connect(l->paho->client, &l->paho->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warn("proxy: %s: connect failed: %s", l->thing, MQTTAsync_strerror(rc));
		schedule_retry(l, now, rt_random_u32());
	}
}

void proxy_link_on_event(struct proxy_link *l, int event, uint64_t now, uint32_t rnd)
{
	switch (event) {
	case PROXY_LINK_UP:
		l->state = LINK_UP;
		l->failures = 0;
		l->up_since_ms = now;
		break;
	case PROXY_LINK_DOWN:
	case PROXY_LINK_FAILED:
		schedule_retry(l, now, rnd);
		break;
	default:
		break;
	}
}

enum cg_err proxy_link_publish(struct proxy_link *l, const char *topic, const char *payload,
                               size_t len, char *err)
{
	if (l->state != LINK_UP)
		return cg_fail(err, CG_TRANSPORT, "proxy: %s: the link is down", l->thing);
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = 1;
	int rc = MQTTAsync_sendMessage(l->paho->client, topic, &msg, NULL);
	if (rc != MQTTASYNC_SUCCESS)
		return cg_fail(err, CG_TRANSPORT, "proxy: %s: publish to %s: %s", l->thing, topic,
		               MQTTAsync_strerror(rc));
	return CG_OK;
}

/* ---- files -------------------------------------------------------------- */

static enum cg_err check_pair(const char *cert, const char *key, char *err)
{
	if (access(cert, R_OK) != 0)
		return cg_fail(err, CG_CONFIG, "proxy: certificate %s cannot be read", cert);
	struct sbuf k;
	sbuf_init(&k);
	char why[ERR_LEN];
	enum cg_err rc = secretfile_slurp(key, 1, &k, why);
	sbuf_wipe(&k);
	if (rc)
		return cg_fail(err, CG_CONFIG, "proxy: key: %s", why);
	return CG_OK;
}

enum cg_err proxy_link_check_files(const struct proxy_config *p, char *err)
{
	if (!p)
		return CG_OK;
	if (*p->ca_file && access(p->ca_file, R_OK) != 0)
		return cg_fail(err, CG_CONFIG, "proxy.ca_file %s cannot be read", p->ca_file);
	char cert[1024], key[1024];
	if (!*p->identity_dir) {
		config_proxy_identity(p, "", cert, key, sizeof(cert));
		return check_pair(cert, key, err);
	}
	for (size_t i = 0; i < p->n_things; i++) {
		config_proxy_identity(p, p->things[i], cert, key, sizeof(cert));
		enum cg_err rc = check_pair(cert, key, err);
		if (rc)
			return rc;
	}
	return CG_OK;
}
