/*
 * proxy_topic: the topics of the AWS IoT Commands device protocol (SPEC 9),
 * on AWS IoT Core and mirrored on the local broker. Pure.
 *
 *   <prefix>/things/<thing>/executions/<id>/request[/json|/cbor]
 *   <prefix>/things/<thing>/executions/<id>/response/json
 *   <prefix>/things/<thing>/executions/<id>/response/accepted/json
 *   <prefix>/things/<thing>/executions/<id>/response/rejected/json
 *
 * prefix is "$aws/commands" towards AWS and proxy.local_prefix locally (one
 * or more levels). With the default prefix the executionId is the topic's
 * 6th level. A thing name follows SPEC 2's {thing} rule; an executionId
 * is 1-128 characters of [A-Za-z0-9:_.-] (AWS's are UUIDs), so both can be
 * put into topics and log lines as they are.
 */
#ifndef CMDGATE_PROXY_TOPIC_H
#define CMDGATE_PROXY_TOPIC_H

#include <stddef.h>

#include "sbuf.h"

#define PROXY_AWS_PREFIX  "$aws/commands"
#define PROXY_THING_MAX   128
#define PROXY_EXEC_ID_MAX 128

enum proxy_topic_kind {
	PROXY_T_NONE,     /* not one of ours */
	PROXY_T_REQUEST,  /* .../request, .../request/json, .../request/cbor */
	PROXY_T_ANSWER,   /* .../response/json (the machine's answer, or ours to AWS) */
	PROXY_T_ACCEPTED, /* .../response/accepted/json */
	PROXY_T_REJECTED, /* .../response/rejected/json */
};

struct proxy_topic {
	enum proxy_topic_kind kind;
	char thing[PROXY_THING_MAX + 1];
	char execution_id[PROXY_EXEC_ID_MAX + 1];
	char format[8]; /* requests: "json", "cbor" or "" (any format) */
};

/* Parse topic under prefix. PROXY_T_NONE (and out->kind so) when it is not
 * one of the topics above or a name breaks its rule. */
enum proxy_topic_kind proxy_topic_parse(const char *prefix, const char *topic,
                                        struct proxy_topic *out);

/* Append "<prefix>/things/<thing>/executions/<id>/<suffix>" to out. */
void proxy_topic_build(struct sbuf *out, const char *prefix, const char *thing, const char *id,
                       const char *suffix);
/* The suffix of a request topic for a format ("request", "request/json"...). */
const char *proxy_topic_request_suffix(const char *format);

/* The five filters a link subscribes to on AWS IoT Core, into out[5]
 * (each heap-allocated; the caller frees them). */
#define PROXY_LINK_FILTERS 5
void proxy_topic_link_filters(const char *thing, char *out[PROXY_LINK_FILTERS]);
/* The local filter for one thing's answers: <prefix>/things/<thing>/executions/+/response/json.
 * Heap-allocated. */
char *proxy_topic_answer_filter(const char *prefix, const char *thing);

/* Whether name is a valid thing name (SPEC 2) / execution id. */
int proxy_thing_name_ok(const char *name, size_t len);
int proxy_execution_id_ok(const char *id, size_t len);

#endif
