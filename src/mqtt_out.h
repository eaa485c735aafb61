/*
 * mqtt_out: one outgoing MQTT message, as every module that publishes
 * spells it (answer.c's replies, the follower's messages, the outbox that
 * holds both, mqtt_pub.c that hands them to Paho, the retained status and
 * stats), so none of them needs all of mqtt.h. The struct is a set of
 * views: whoever fills it keeps the bytes alive for the call (the outbox
 * copies what it keeps).
 *
 * MQTT 5 properties (Correlation Data, Response Topic, Content Type,
 * Message Expiry Interval) are sent only on an MQTT 5 connection; MQTT
 * 3.1.1 has none of them.
 *
 * Whether a message was taken is said one way everywhere, libuv-style (0
 * or a negative code): MQTT_OUT_TAKEN, MQTT_OUT_LATER, MQTT_OUT_NEVER.
 */
#ifndef CMDGATE_MQTT_OUT_H
#define CMDGATE_MQTT_OUT_H

#include <stdint.h>

#include "view.h"

struct mqtt_out {
	const char *topic;
	struct view payload; /* bytes, not NUL-terminated */
	int qos;
	int retain;
	struct view correlation;    /* MQTT 5 Correlation Data; ptr NULL = none */
	const char *response_topic; /* MQTT 5; NULL = none */
	const char *content_type;   /* MQTT 5; NULL = none */
	uint32_t expiry_s;          /* MQTT 5 Message Expiry Interval; 0 = none */
};

/* What became of an offered message. */
enum mqtt_out_rc {
	MQTT_OUT_TAKEN = 0,  /* taken: queued is enough (a tracked one is confirmed later) */
	MQTT_OUT_LATER = -1, /* not taken now (buffer full, not connected): offer it again */
	MQTT_OUT_NEVER = -2, /* never will be (an invalid topic or QoS): err says why */
};

#endif
