/*
 * mqtt_sub: the subscription set, its SUBACKs (the last one of a round
 * makes the client ready, after every (re)connect) and arriving requests.
 * A refused subscription is logged with the broker's reason, and with a
 * word on mqtt.shared_group when that is the likely cause.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqtt.h"
#include "mqtt_priv.h"
#include "runtime.h"
#include "sbuf.h"

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

const char *mqtt_shared_hint(const struct mqtt *m)
{
	return *m->shared_group
	           ? "; mqtt.shared_group is set and this broker may not support "
	             "shared subscriptions ($share): unset it or use a broker that does"
	           : "";
}

/* A SUBACK for one filter of this round: the last one makes the client ready. */
static void on_subscribed(void *ctx, MQTTAsync_successData *resp)
{
	struct mqtt *m = ctx;
	if (m->version != 5 && resp && resp->alt.qos == 0x80) {
		log_error("mqtt: the broker refused a subscription (SUBACK 0x80)%s",
		          mqtt_shared_hint(m));
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
	if (m->hooks->on_ready)
		m->hooks->on_ready(m->hooks->ctx);
}

static void on_subscribed5(void *ctx, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = ctx;
	if (resp->alt.sub.reasonCodeCount <= 1 && resp->reasonCode >= 0x80) {
		log_error("mqtt: the broker refused a subscription: reason %d (%s)%s",
		          (int)resp->reasonCode, MQTTReasonCode_toString(resp->reasonCode),
		          mqtt_shared_hint(m));
		return;
	}
	on_subscribed(ctx, NULL);
}

static void on_sub_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt *m = ctx;
	int code = resp ? resp->code : -1;
	if (code == 0x80) /* SUBACK failure */
		log_error("mqtt: the broker refused a subscription (SUBACK 0x80)%s",
		          mqtt_shared_hint(m));
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
	              ? mqtt_shared_hint(m)
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

char **mqtt_copy_filters(char **filters, size_t n)
{
	char **c = rt_calloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		c[i] = rt_strdup(filters[i]);
	return c;
}

void mqtt_free_filters(char **filters, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(filters[i]);
	free(filters);
}

void mqtt_subscribe_all(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	size_t n = m->n_filters;
	char **f = mqtt_copy_filters(m->filters, n);
	m->subscribed = 0;
	m->round = n;
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < n; i++)
		subscribe_one(m, f[i]);
	mqtt_free_filters(f, n);
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
	m->filters = mqtt_copy_filters(filters, n);
	m->n_filters = n;
	/* SUBACKs of a reload do not make a new "ready" */
	m->subscribed = m->round = n;
	pthread_mutex_unlock(&m->lock);
	if (n == 0) {
		log_info("mqtt: stopping; the broker keeps this session's subscriptions");
		mqtt_free_filters(old, n_old);
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
	mqtt_free_filters(old, n_old);
}

static char *dup_mem(const void *p, size_t n)
{
	char *d = rt_malloc(n + 1);
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

int mqtt_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = ctx;
	struct message *in = rt_calloc(1, sizeof(*in));
	in->topic = dup_mem(topic, topic_len > 0 ? (size_t)topic_len : strlen(topic));
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	if (len > (size_t)atomic_load(&m->max_payload)) {
		/* checked before the copy: only its size travels on, to be
		 * answered PayloadTooLarge */
		in->payload = dup_mem("", 0);
		in->oversize = len;
	} else {
		in->payload = dup_mem(msg->payload, len);
		in->len = len;
	}
	in->qos = msg->qos;
	in->received_ms = rt_now_ms();
	in->received_wall_ms = rt_wall_ms();
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
	m->hooks->on_message(in, m->hooks->ctx);
	return 1;
}
