/*
 * proxy_local: how the proxy publishes to the local broker (SPEC 9): one
 * message at QoS 1, not retained, handed to a function the engine gives
 * (its outbox). A header of types only, shared by proxy.h and the
 * proxy's own files.
 */
#ifndef CMDGATE_PROXY_LOCAL_H
#define CMDGATE_PROXY_LOCAL_H

#include <stddef.h>
#include <stdint.h>

struct proxy_local_msg {
	const char *topic;
	const char *payload;
	size_t len;
	const char *content_type; /* NULL: none */
	long expiry_s;            /* < 0: no Message Expiry */
	uint64_t cookie;          /* spool record ended on delivery, 0: none */
};
typedef void (*proxy_local_fn)(void *ctx, const struct proxy_local_msg *m);

#endif
