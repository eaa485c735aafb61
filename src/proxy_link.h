/*
 * proxy_link: one proxied thing's MQTT connection to AWS IoT Core (SPEC 9),
 * over Paho's async client: client id = the thing name, mTLS with
 * verification on, clean start off and a session expiry (MQTT 5) or clean
 * session off (3.1.1), the five subscriptions of the Commands protocol at
 * QoS 1.
 *
 * Threads: Paho's threads only hand what happens over to the engine
 * through the inbox (the one door), as struct message with link = the
 * link's id and link_event set; nothing blocks in a callback. Every other
 * function is for the engine thread, which alone keeps the link's state
 * (up, connecting, when to try again) from those events. Reconnects are
 * the engine's: paced by proxy.connect_rate, delayed by the project's one
 * backoff (backoff_equal_jitter, as the local client does).
 */
#ifndef CMDGATE_PROXY_LINK_H
#define CMDGATE_PROXY_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "config_proxy.h"
#include "err.h"
#include "inbox.h"

enum proxy_link_event {
	PROXY_LINK_MESSAGE = 1, /* a publish from AWS: topic, payload, properties */
	PROXY_LINK_UP,          /* connected and subscribed; payload: a warning or "" */
	PROXY_LINK_DOWN,        /* the connection was lost; payload: the cause */
	PROXY_LINK_FAILED,      /* a connect attempt failed; payload: why */
};

enum proxy_link_state { LINK_IDLE, LINK_CONNECTING, LINK_UP };

struct proxy_link {
	uint64_t id; /* unique in the process: events of a removed link are ignored */
	char *thing;
	struct proxy_link *next; /* the engine's list */
	/* engine thread only */
	enum proxy_link_state state;
	unsigned failures;    /* attempts since last up */
	uint64_t retry_at_ms; /* IDLE: not before */
	uint64_t connect_ms;  /* the last CONNECT sent */
	uint64_t up_since_ms;
	struct proxy_link_paho *paho; /* proxy_link.c's */
};

/* Create the client for thing (not connected yet). NULL with err set when
 * Paho refuses the options. */
struct proxy_link *proxy_link_new(const struct proxy_config *pc, const char *thing, uint64_t id,
                                  struct inbox *ib, char *err);
/* Start disconnecting (many links close at once: begin each, then free). */
void proxy_link_begin_disconnect(struct proxy_link *l, int timeout_ms);
/* Disconnect (waiting up to timeout_ms) and free. No callback runs after. */
void proxy_link_free(struct proxy_link *l, int timeout_ms);

/* Start connecting (IDLE, due). */
void proxy_link_connect(struct proxy_link *l, uint64_t now);
/* An event for this link from the inbox: update the state. */
void proxy_link_on_event(struct proxy_link *l, int event, uint64_t now, uint32_t rnd);
/* Whether an IDLE link should try now. */
int proxy_link_due(const struct proxy_link *l, uint64_t now);

/* Publish payload to AWS at QoS 1. CG_OK: Paho took it; CG_TRANSPORT: not
 * now (not connected). */
enum cg_err proxy_link_publish(struct proxy_link *l, const char *topic, const char *payload,
                               size_t len, char *err);

/* --check and start: every certificate, key and CA file readable, keys
 * under the secret-file rule (secretfile.h). */
enum cg_err proxy_link_check_files(const struct proxy_config *p, char *err);

#endif
