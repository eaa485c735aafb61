/*
 * mqtt_pub: handing publishes to Paho. mqtt_offer says whether Paho took
 * one (MQTT_TAKEN), cannot now (MQTT_LATER: its buffer is full or the
 * client is not connected; the engine's outbox offers it again) or never
 * will (MQTT_REFUSED). A tracked publish ends in on_delivered(cookie, ok),
 * with ok = 0 when Paho gave it up after taking it: nothing is dropped
 * silently.
 */
#include <stdint.h>

#include "log.h"
#include "mqtt.h"
#include "mqtt_priv.h"

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
                         int qos, const void *correlation, size_t correlation_len, uint64_t cookie,
                         char *err)
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

int mqtt_send_window(struct mqtt *m)
{
	return atomic_load(&m->send_window);
}
