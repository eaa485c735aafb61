/*
 * mqtt: the Paho edge. Paho's threads call in here; every callback only
 * copies what arrived and hands it to the engine through the on_message
 * hook, which must not block. Publishing is safe from any thread.
 * Paho return codes are translated to cg_err here and nowhere else.
 */
#ifndef CMDGATE_MQTT_H
#define CMDGATE_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "message.h"



struct mqtt_hooks {
	void (*on_message)(struct message *m, void *ctx); /* takes m */
	void (*on_ready)(void *ctx);                      /* all filters subscribed */
	/* a tracked publish was acknowledged (QoS 1) or written (QoS 0): ok;
	 * or the client gave it up (the connection went first): not ok */
	void (*on_delivered)(uint64_t cookie, int ok, void *ctx);
	void *ctx;
};

struct mqtt;

/* Create and start connecting. filters are subscription filters (copied). */
struct mqtt *mqtt_start(const struct config *cfg, char **filters, size_t n,
                        const struct mqtt_hooks *hooks, char *err);
/* Replace the subscription set (reload): unsubscribes removed, subscribes new. */
void mqtt_set_filters(struct mqtt *m, char **filters, size_t n);
/* Called from the engine loop: retries a failed initial connect. */
void mqtt_tick(struct mqtt *m, uint64_t now_ms);

/* Publish a reply (not retained). correlation may be NULL. */
enum cg_err mqtt_publish(struct mqtt *m, const char *topic, const char *payload, size_t len,
                         int qos, int retained, const void *correlation, size_t correlation_len,
                         char *err);
/* Like mqtt_publish; hooks.on_delivered(cookie) once the broker has it. */
enum cg_err mqtt_publish_tracked(struct mqtt *m, const char *topic, const char *payload, size_t len,
                                 int qos, const void *correlation, size_t correlation_len,
                                 uint64_t cookie, char *err);
int mqtt_connected(const struct mqtt *m);
/* How many publishes the client can have unacknowledged without stalling:
 * the broker's Receive Maximum with MQTT 5 (20 until the first CONNACK
 * says), MQTT_SEND_WINDOW_MAX otherwise. */
#define MQTT_SEND_WINDOW_MAX 1024
int mqtt_send_window(struct mqtt *m);
/* Publish offline status, wait up to timeout_ms for pending sends, disconnect. */
void mqtt_stop(struct mqtt *m, int timeout_ms);

#endif
