/*
 * reply: the JSON a device receives. Pure.
 *
 * Gateway codes are an enum with their names and retry rule in one table;
 * AWS codes are carried as text with their HTTP status.
 */
#ifndef CMDGATE_REPLY_H
#define CMDGATE_REPLY_H

#include <jansson.h>

#include "sbuf.h"

enum gw_code {
	GW_INVALID_REQUEST,
	GW_PAYLOAD_TOO_LARGE,
	GW_FORBIDDEN,
	GW_OVERLOADED,
	GW_EXPIRED,
	GW_UNAVAILABLE,
	GW_CREDENTIALS_UNAVAILABLE,
	GW_INTERNAL_ERROR,
};

const char *reply_code_name(enum gw_code c);
int reply_code_retryable(enum gw_code c);

struct outcome {
	int accepted;
	const char *execution_id; /* accepted */
	const char *code;         /* rejected */
	const char *message;
	int aws; /* source: 1 = aws (http_status set), 0 = gateway */
	int http_status;
	int retryable;
	const char *client_token; /* NULL or "" when none was assigned */
	json_t *id;               /* borrowed; NULL when the request had none */
};

void reply_outcome_gateway(struct outcome *o, enum gw_code c, const char *message);

/* Append the reply JSON for o to out. */
void reply_render(const struct outcome *o, struct sbuf *out);

#endif
