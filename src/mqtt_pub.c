/*
 * mqtt_pub: handing publishes to Paho. mqtt_publish says whether Paho
 * took one (MQTT_OUT_TAKEN), cannot now (MQTT_OUT_LATER: its buffer is full
 * or the client is not connected; the engine's outbox offers it again) or
 * never will (MQTT_OUT_NEVER). A tracked publish ends in
 * on_delivered(cookie, ok), with ok = 0 when Paho gave it up after taking
 * it: nothing is dropped silently. MQTT 5 properties come from struct
 * mqtt_out, and only on an MQTT 5 connection.
 */
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "mqtt.h"
#include "mqtt_priv.h"
#include "outbox.h"

/* The one client of this process, for delivery callbacks whose context
 * carries the cookie itself (no allocation per publish). Set before the
 * first connect, cleared after MQTTAsync_destroy (no callback runs later). */
static _Atomic(struct mqtt *) the_client;

int mqtt_pub_attach(struct mqtt *m)
{
	struct mqtt *none = NULL;
	return atomic_compare_exchange_strong(&the_client, &none, m) ? 0 : -1;
}

void mqtt_pub_detach(void)
{
	atomic_store(&the_client, NULL);
}

static void delivered(void *ctx, int ok)
{
	struct mqtt *m = atomic_load(&the_client);
	if (m && m->hooks->on_delivered)
		m->hooks->on_delivered((uint64_t)(uintptr_t)ctx, ok, m->hooks->ctx);
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

/* Paho took a tracked publish and gave it up: the connection (and with it
 * the broker's session) went while it was in flight. The engine offers it
 * again. */
static void on_publish_failed3(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	delivered(ctx, 0);
}

static void on_publish_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
	(void)resp;
	delivered(ctx, 0);
}

static void add_string(MQTTProperties *props, enum MQTTPropertyCodes id, const char *v)
{
	MQTTProperty p = {.identifier = id};
	p.value.data.data = (char *)v;
	p.value.data.len = (int)strlen(v);
	MQTTProperties_add(props, &p);
}

void mqtt_pub_properties(MQTTProperties *props, const struct mqtt_out *o, int version)
{
	if (version != 5)
		return; /* MQTT 3.1.1 has no properties */
	if (o->correlation.ptr) {
		MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA};
		p.value.data.data = (char *)o->correlation.ptr;
		p.value.data.len = (int)o->correlation.len;
		MQTTProperties_add(props, &p);
	}
	if (o->response_topic)
		add_string(props, MQTTPROPERTY_CODE_RESPONSE_TOPIC, o->response_topic);
	if (o->content_type)
		add_string(props, MQTTPROPERTY_CODE_CONTENT_TYPE, o->content_type);
	if (o->expiry_s) {
		MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL};
		p.value.integer4 = o->expiry_s;
		MQTTProperties_add(props, &p);
	}
}

/* Paho's answer to MQTTAsync_sendMessage as MQTT_OUT_*. */
static int taken(int rc, const char *topic, char *err)
{
	switch (rc) {
	case MQTTASYNC_SUCCESS:
		return MQTT_OUT_TAKEN;
	case MQTTASYNC_MAX_BUFFERED_MESSAGES:
	case MQTTASYNC_DISCONNECTED:
	case MQTTASYNC_NO_MORE_MSGIDS:
	case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
	case MQTTASYNC_OPERATION_INCOMPLETE:
	case MQTTASYNC_FAILURE:
		cg_fail(err, CG_TRANSPORT, "publish to %s: %s; try later", topic,
		        MQTTAsync_strerror(rc));
		return MQTT_OUT_LATER;
	default:
		cg_fail(err, CG_TRANSPORT, "publish to %s: %s", topic, MQTTAsync_strerror(rc));
		return MQTT_OUT_NEVER;
	}
}

int mqtt_publish(struct mqtt *m, const struct mqtt_out *o, uint64_t cookie, char *err)
{
	if (atomic_load(&m->stopping) && cookie) {
		cg_fail(err, CG_TRANSPORT, "publish to %s: the MQTT client is stopping", o->topic);
		return MQTT_OUT_LATER;
	}
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	msg.payload = (void *)o->payload.ptr;
	msg.payloadlen = (int)o->payload.len;
	msg.qos = o->qos;
	msg.retained = o->retain;
	mqtt_pub_properties(&msg.properties, o, m->version);
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
	int rc = MQTTAsync_sendMessage(m->client, o->topic, &msg, &ro);
	MQTTProperties_free(&msg.properties);
	return taken(rc, o->topic, err);
}

int mqtt_outbox_publish(void *ctx, const struct outbox_msg *m, char *err)
{
	if (!ctx) {
		cg_fail(err, CG_TRANSPORT, "not connected yet");
		return MQTT_OUT_LATER;
	}
	return mqtt_publish(ctx, &m->out, m->id, err);
}

int mqtt_send_window(struct mqtt *m)
{
	return atomic_load(&m->send_window);
}
