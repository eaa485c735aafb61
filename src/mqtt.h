/*
 * mqtt: the Paho edge. Paho's threads call in here; every callback only
 * copies what arrived and hands it to the engine through the on_message
 * hook, which must not block. Publishing is safe from any thread.
 * Paho return codes are translated here and nowhere else.
 *
 * Sessions outlive the process: MQTT 5 connects with clean start off and a
 * session expiry, MQTT 3.1.1 with clean session off, both under the fixed
 * client id, and stopping never unsubscribes. Requests published while the
 * gateway restarts wait in the broker and arrive when it is back.
 */
#ifndef CMDGATE_MQTT_H
#define CMDGATE_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "message.h"
#include "mqtt_out.h"

struct mqtt_hooks {
	void (*on_message)(struct message *m, void *ctx); /* takes m */
	/* every filter subscribed: after the first connect and after each reconnect */
	void (*on_ready)(void *ctx);
	/* a tracked publish was acknowledged (QoS 1/2) or written (QoS 0): ok;
	 * or the client gave it up after taking it (the connection, and with it
	 * the broker's session, went first): not ok, offer it again */
	void (*on_delivered)(uint64_t cookie, int ok, void *ctx);
	void *ctx;
};

/* What mqtt needs to know; strings are copied by mqtt_start. "" = unset. */
struct mqtt_options {
	const char *uri, *client_id;
	int version; /* 4: MQTT 3.1.1 (pinned, never 3.1), 5: MQTT 5 */
	const char *username;
	const char *password_file; /* its first line is the password */
	const char *ca_file, *cert_file, *key_file;
	int keepalive_s, qos;
	const char *shared_group; /* "": plain subscriptions */
	const char *status_topic; /* template with {client_id}; "": none */
	int max_buffered;         /* publishes Paho may hold before MQTT_LATER */
	long max_payload;         /* larger payloads are not copied (oversize) */
};

/* The options from a configuration (views into c: its mqtt group; the
 * buffer is sized from the gateway's queue), for the engine's mqtt_start. */
struct config;
struct mqtt_options mqtt_options_of(const struct config *c);

struct mqtt;

/* Create and start connecting. filters are subscription filters (copied).
 * One client per process. */
struct mqtt *mqtt_start(const struct mqtt_options *o, char **filters, size_t n,
                        const struct mqtt_hooks *hooks, char *err);
/* Replace the subscription set (reload): unsubscribes removed, subscribes
 * new. n == 0 (the engine stopping; a configuration always has a route)
 * unsubscribes nothing: the broker keeps the session's subscriptions and
 * queues requests for the next start. */
void mqtt_set_filters(struct mqtt *m, char **filters, size_t n);
/* The MQTT 5 Maximum Packet Size announced at CONNECT for a max_payload:
 * 4 x max_payload, at least 64 KiB, at most MQTT's 268435455 (SPEC 5). */
long mqtt_max_packet_size(long max_payload);
/* A reload's gateway.max_payload: payloads above it are not copied. The
 * announced packet size stays until the next start. */
void mqtt_set_max_payload(struct mqtt *m, long max_payload);
/* Called from the engine loop (at least once a second): connects and
 * reconnects, with capped exponential backoff and full jitter. */
void mqtt_tick(struct mqtt *m, uint64_t now_ms);

/*
 * Offer a message to Paho: MQTT_OUT_TAKEN, MQTT_OUT_LATER (its buffer is
 * full, the client is not connected, or it is stopping and the message is
 * tracked) or MQTT_OUT_NEVER (see mqtt_out.h). cookie != 0 tracks it:
 * exactly one on_delivered(cookie, ok) follows MQTT_OUT_TAKEN, ok = 0 when
 * Paho dropped it after taking it. MQTT 5 properties are set from o on an
 * MQTT 5 connection only. Never blocks; safe from any thread.
 */
int mqtt_publish(struct mqtt *m, const struct mqtt_out *o, uint64_t cookie, char *err);
/* The outbox's publish function (outbox.h; ctx: the struct mqtt, NULL
 * before it is started: MQTT_OUT_LATER): mqtt_publish tracked as m->id. */
struct outbox_msg;
int mqtt_outbox_publish(void *ctx, const struct outbox_msg *m, char *err);
int mqtt_connected(const struct mqtt *m);
/* How many publishes the client can have unacknowledged without stalling:
 * the broker's Receive Maximum with MQTT 5 (20 until the first CONNACK
 * says), MQTT_SEND_WINDOW_MAX otherwise. */
#define MQTT_SEND_WINDOW_MAX 1024
int mqtt_send_window(struct mqtt *m);
/* Publish offline status, wait up to timeout_ms for pending sends, disconnect
 * (the session, with its subscriptions, stays at the broker). */
void mqtt_stop(struct mqtt *m, int timeout_ms);

/* The status topic's online message gains "proxy":{"links_up",
 * "links_configured"} (SPEC 9); republished when they change. configured
 * < 0: no proxy (the member is left out, as at start). */
void mqtt_set_proxy_links(struct mqtt *m, int up, int configured);

/* TCP_NODELAY on every TCP socket of the process (Paho 1.3 leaves Nagle
 * on and exposes no socket handle): after a connect, of this client or of
 * a proxy link. */
void mqtt_tcp_nodelay_all(void);

#endif
