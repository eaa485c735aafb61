/*
 * proxy_topic: parsing and building the Commands protocol topics. A topic
 * is split after the prefix into levels; the shape decides the kind, the
 * names are checked against their rules and copied out (they are short and
 * bounded, so the result owns nothing).
 */
#include "proxy_topic.h"

#include <string.h>

static int thing_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '_' || c == '-';
}

int proxy_thing_name_ok(const char *name, size_t len)
{
	if (len < 1 || len > PROXY_THING_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!thing_char(name[i]))
			return 0;
	return 1;
}

int proxy_execution_id_ok(const char *id, size_t len)
{
	if (len < 1 || len > PROXY_EXEC_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!thing_char(id[i]) && id[i] != '.')
			return 0;
	return 1;
}

/* The next level of *p (up to '/' or the end); advances *p past it. */
static const char *next_level(const char **p, size_t *len)
{
	const char *s = *p;
	if (!s)
		return NULL;
	const char *slash = strchr(s, '/');
	*len = slash ? (size_t)(slash - s) : strlen(s);
	*p = slash ? slash + 1 : NULL;
	return s;
}

static int level_is(const char *s, size_t len, const char *want)
{
	return s && strlen(want) == len && memcmp(s, want, len) == 0;
}

/* The kind from what follows the executionId (rest: NULL when nothing). */
static enum proxy_topic_kind tail_kind(const char *rest, char format[8])
{
	format[0] = '\0';
	if (!rest)
		return PROXY_T_NONE;
	if (strcmp(rest, "request") == 0)
		return PROXY_T_REQUEST;
	if (strcmp(rest, "request/json") == 0 || strcmp(rest, "request/cbor") == 0) {
		memcpy(format, rest + 8, 5);
		return PROXY_T_REQUEST;
	}
	if (strcmp(rest, "response/json") == 0)
		return PROXY_T_ANSWER;
	if (strcmp(rest, "response/accepted/json") == 0)
		return PROXY_T_ACCEPTED;
	if (strcmp(rest, "response/rejected/json") == 0)
		return PROXY_T_REJECTED;
	return PROXY_T_NONE;
}

enum proxy_topic_kind proxy_topic_parse(const char *prefix, const char *topic,
                                        struct proxy_topic *out)
{
	memset(out, 0, sizeof(*out));
	size_t pl = strlen(prefix);
	if (strncmp(topic, prefix, pl) != 0 || topic[pl] != '/')
		return PROXY_T_NONE;
	const char *p = topic + pl + 1;
	size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
	const char *things = next_level(&p, &n1);
	const char *thing = next_level(&p, &n2);
	const char *execs = next_level(&p, &n3);
	const char *id = next_level(&p, &n4);
	if (!level_is(things, n1, "things") || !thing || !level_is(execs, n3, "executions") ||
	    !id || !proxy_thing_name_ok(thing, n2) || !proxy_execution_id_ok(id, n4))
		return PROXY_T_NONE;
	enum proxy_topic_kind k = tail_kind(p, out->format);
	if (k == PROXY_T_NONE)
		return PROXY_T_NONE;
	memcpy(out->thing, thing, n2);
	memcpy(out->execution_id, id, n4);
	out->kind = k;
	return k;
}

void proxy_topic_build(struct sbuf *out, const char *prefix, const char *thing, const char *id,
                       const char *suffix)
{
	sbuf_printf(out, "%s/things/%s/executions/%s/%s", prefix, thing, id, suffix);
}

const char *proxy_topic_request_suffix(const char *format)
{
	if (strcmp(format, "json") == 0)
		return "request/json";
	if (strcmp(format, "cbor") == 0)
		return "request/cbor";
	return "request";
}

void proxy_topic_link_filters(const char *thing, char *out[PROXY_LINK_FILTERS])
{
	static const char *const tails[PROXY_LINK_FILTERS] = {"request/json", "request/cbor",
	                                                      "request", "response/accepted/json",
	                                                      "response/rejected/json"};
	for (int i = 0; i < PROXY_LINK_FILTERS; i++) {
		struct sbuf b;
		sbuf_init(&b);
		proxy_topic_build(&b, PROXY_AWS_PREFIX, thing, "+", tails[i]);
		out[i] = sbuf_steal(&b);
	}
}

char *proxy_topic_answer_filter(const char *prefix, const char *thing)
{
	struct sbuf b;
	sbuf_init(&b);
	proxy_topic_build(&b, prefix, thing, "+", "response/json");
	return sbuf_steal(&b);
}
