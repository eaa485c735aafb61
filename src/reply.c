/* reply: render outcomes; member order is the one shown in docs/protocol.md. */
#include "reply.h"

#include <stdio.h>

#include "jsonw.h"

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

const char *reply_code_name(enum gw_code c)
{
	return gw_codes[c].name;
}

int reply_code_retryable(enum gw_code c)
{
	return gw_codes[c].retryable;
}

void reply_outcome_gateway(struct outcome *o, enum gw_code c, const char *message)
{
	o->accepted = 0;
	o->code = reply_code_name(c);
	o->message = message;
	o->aws = 0;
	o->http_status = 0;
	o->retryable = reply_code_retryable(c);
}

static int utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len = c < 0x80         ? 1
		             : (c >> 5) == 6  ? 2
		             : (c >> 4) == 14 ? 3
		             : (c >> 3) == 30 ? 4
		                              : 0;
		if (!len || i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

/* A string member; text that is not valid UTF-8 (a cut message) has its
 * non-ASCII bytes replaced by '?' so the reply stays valid JSON. */
static void put_string(struct sbuf *b, const char *key, const char *s)
{
	size_t n = strlen(s);
	jsonw_key(b, key, 0);
	if (utf8_valid((const unsigned char *)s, n)) {
		jsonw_string(b, s, n);
		return;
	}
	struct sbuf clean;
	sbuf_init(&clean);
	for (size_t i = 0; i < n; i++)
		sbuf_putc(&clean, (unsigned char)s[i] >= 0x80 ? '?' : s[i]);
	jsonw_string(b, clean.data, clean.len);
	sbuf_clean_up(&clean);
}

void reply_render(const struct outcome *o, struct sbuf *out)
{
	sbuf_puts(out, o->accepted ? "{\"status\":\"accepted\"" : "{\"status\":\"rejected\"");
	if (o->id) {
		jsonw_key(out, "id", 0);
		jsonw_value(out, o->id);
	}
	if (o->accepted) {
		put_string(out, "executionId", o->execution_id);
	} else {
		put_string(out, "code", o->code);
		put_string(out, "message", o->message ? o->message : "");
		put_string(out, "source", o->aws ? "aws" : "gateway");
		if (o->aws) {
			char n[16];
			snprintf(n, sizeof(n), "%d", o->http_status);
			jsonw_key(out, "httpStatus", 0);
			sbuf_puts(out, n);
		}
		jsonw_key(out, "retryable", 0);
		sbuf_puts(out, o->retryable ? "true" : "false");
	}
	if (o->client_token && o->client_token[0])
		put_string(out, "clientToken", o->client_token);
	sbuf_putc(out, '}');
}
