/* reply: render outcomes; member order is the one shown in the SPEC. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int retryable;
} gw_codes[] = {
    [GW_INVALID_REQUEST] = {"InvalidRequest", 0},
    [GW_PAYLOAD_TOO_LARGE] = {"PayloadTooLarge", 0},
    [GW_FORBIDDEN] = {"Forbidden", 0},
    [GW_OVERLOADED] = {"Overloaded", 1},
    [GW_EXPIRED] = {"Expired", 1},
    [GW_UNAVAILABLE] = {"Unavailable", 1},
    [GW_CREDENTIALS_UNAVAILABLE] = {"CredentialsUnavailable", 1},
    [GW_INTERNAL_ERROR] = {"InternalError", 1},
};

const char *gw_code_name(enum gw_code c)
{
	return gw_codes[c].name;
}

int gw_code_retryable(enum gw_code c)
{
	return gw_codes[c].retryable;
}

void outcome_gateway(struct outcome *o, enum gw_code c, const char *message)
{
	o->accepted = 0;
	o->code = gw_code_name(c);
	o->message = message;
	o->aws = 0;
	o->http_status = 0;
	o->retryable = gw_code_retryable(c);
}

/* A JSON string from text that may hold invalid UTF-8 (cut messages):
 * bytes jansson refuses become '?'. */
static json_t *safe_string(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return json_string("");
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

void reply_render(const struct outcome *o, struct sbuf *out)
{
	json_t *r = json_object();
	json_object_set_new(r, "status", json_string(o->accepted ? "accepted" : "rejected"));
	if (o->id)
		json_object_set(r, "id", o->id);
	if (o->accepted) {
		json_object_set_new(r, "executionId", safe_string(o->execution_id));
	} else {
		json_object_set_new(r, "code", safe_string(o->code));
		json_object_set_new(r, "message", safe_string(o->message ? o->message : ""));
		json_object_set_new(r, "source", json_string(o->aws ? "aws" : "gateway"));
		if (o->aws)
			json_object_set_new(r, "httpStatus", json_integer(o->http_status));
		json_object_set_new(r, "retryable", json_boolean(o->retryable));
	}
	if (o->client_token && o->client_token[0])
		json_object_set_new(r, "clientToken", json_string(o->client_token));
	char *s = json_dumps(r, JSON_COMPACT);
	if (s)
		sbuf_puts(out, s);
	free(s);
	json_decref(r);
}
