/*
 * mqtt_priv: what mqtt.c (connection and lifecycle), mqtt_sub.c
 * (subscriptions and arrivals) and mqtt_pub.c (publishing) share: the
 * client's state and the few calls between them. Nothing else includes it.
 *
 * Threads: the engine thread calls the public functions; Paho's threads
 * call the on_* callbacks. Shared fields are either C11 atomics or under
 * one of the two mutexes, as marked. Paho holds its own mutex while it
 * calls back, so Paho is never called with m->lock held.
 */
#ifndef CMDGATE_MQTT_PRIV_H
#define CMDGATE_MQTT_PRIV_H

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* mqtt.h is not included (its module, mqtt.c, includes this one): the .c
 * files include both. */
struct mqtt_hooks;

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
	struct mqtt_hooks *hooks; /* a copy, owned */

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
	/* the status topic's "proxy" member (SPEC 9): links up and configured,
	 * configured < 0 without a proxy; since: the last connect (time_t) */
	atomic_int proxy_up, proxy_configured;
	atomic_llong since;
	atomic_int send_window; /* publishes Paho can have in flight (Receive Maximum) */
	atomic_int stopping;
	atomic_long max_payload; /* gateway.max_payload: checked before copying */

	/* read by Paho during MQTTAsync_connect, written only before the first */
	MQTTAsync_connectOptions conn;
	MQTTAsync_willOptions will;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties connect_props;
};

/* mqtt_sub.c */
/* Subscribe every filter (after a CONNACK); the last SUBACK calls on_ready. */
void mqtt_subscribe_all(struct mqtt *m);
/* Paho's messageArrived: copy, hand to hooks.on_message. */
int mqtt_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg);
/* "" or a sentence on shared subscriptions, to end an error line with. */
const char *mqtt_shared_hint(const struct mqtt *m);
char **mqtt_copy_filters(char **filters, size_t n);
void mqtt_free_filters(char **filters, size_t n);

/* mqtt_rcv.c */
/* A connect is under way (1) or over (0): Paho's receive thread looks for
 * the new socket every millisecond instead of every 100. */
void mqtt_rcv_connecting(int on);

/* mqtt_pub.c */
/* Add o's MQTT 5 properties (Correlation Data, Response Topic, Content
 * Type, Message Expiry Interval) to props; none on MQTT 3.1.1 (version 4).
 * The values are views into o. */
struct mqtt_out;
void mqtt_pub_properties(MQTTProperties *props, const struct mqtt_out *o, int version);
/* Make m the process's client for delivery callbacks: 0, or -1 if there is one. */
int mqtt_pub_attach(struct mqtt *m);
/* After MQTTAsync_destroy: no delivery callback can run any more. */
void mqtt_pub_detach(void);

#endif
