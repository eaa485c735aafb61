/*
 * message: one request as it arrived, whatever carried it. The MQTT edge
 * fills it; the engine owns it afterwards. Nothing here knows about the
 * spool: a request resumed after a restart carries that in its own fields
 * (struct resume in request.h).
 */
#ifndef CMDGATE_MESSAGE_H
#define CMDGATE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* Owned by whoever holds it; freed by message_free. */
struct message {
	struct message *next; /* for the inbox's list */
	char *topic;
	char *payload; /* NUL-terminated copy; len excludes the NUL */
	size_t len;
	size_t oversize; /* > 0: a payload this large arrived, over max_payload, not copied */
	int qos;
	char *response_topic; /* MQTT 5 Response Topic, or NULL */
	void *correlation;    /* MQTT 5 Correlation Data, or NULL */
	size_t correlation_len;
	uint64_t received_ms;     /* monotonic */
	int64_t received_wall_ms; /* wall clock, for the spool */
	/* From a proxy link to AWS IoT Core (SPEC 9; proxy_link.h): link is
	 * that link's id (0: the local broker), link_event what happened. */
	uint64_t link;
	int link_event;     /* enum proxy_link_event */
	char *content_type; /* MQTT 5 Content Type, or NULL */
	int has_expiry;     /* MQTT 5 Message Expiry Interval present */
	uint32_t expiry_s;
};

void message_free(struct message *m);

#endif
