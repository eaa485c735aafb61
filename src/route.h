/*
 * route: topic templates, matching and expansion. Pure.
 *
 * A template is text whose placeholders are "{name}". In topic templates a
 * placeholder fills one whole level. A request topic template becomes the
 * subscription filter (each placeholder -> '+'); matching a received topic
 * against it captures the placeholder values into a struct route_vars, which then
 * expands the route's other templates.
 */
#ifndef CMDGATE_ROUTE_H
#define CMDGATE_ROUTE_H

#include <stddef.h>

#include "err.h"
#include "sbuf.h"

#define ROUTE_VARS_MAX 16

/* Name/value views; the strings belong to whoever filled the struct. */
struct route_vars {
	size_t n;
	const char *name[ROUTE_VARS_MAX];
	const char *value[ROUTE_VARS_MAX];
};

void route_vars_set(struct route_vars *v, const char *name, const char *value);
const char *route_vars_get(const struct route_vars *v, const char *name);

enum param_type { PT_NONE = 0, PT_S, PT_B, PT_I, PT_L, PT_D, PT_BIN, PT_UL };
/* "S" -> PT_S ...; PT_NONE when unknown. */
enum param_type route_param_type_parse(const char *s);
const char *route_param_type_name(enum param_type t);

struct param_type_entry {
	char *name;
	enum param_type type;
};

/* One route; all strings owned (freed by route_clean_up). */
struct route {
	char *request_topic;
	char *reply_topic;
	char *target_arn;
	char *command_arn;
	char *thing;     /* fixed thing name, or NULL when captured */
	char *command;   /* fixed command name, or NULL when captured */
	char **commands; /* allow-list; n_commands == 0: any */
	size_t n_commands;
	struct param_type_entry *ptypes;
	size_t n_ptypes;
	long execution_timeout;         /* 0: none */
	int follow;                     /* follow each accepted execution (SPEC 8) */
	char *execution_topic;          /* where a follow publishes; may use {execution} */
	char **response_topics;         /* filters a Response Topic must match (SPEC 4); */
	size_t n_response_topics;       /* NULL until set or derived by the config */
	char *filter;                   /* derived: request_topic with '+' */
	char *ph_names[ROUTE_VARS_MAX]; /* derived: placeholder names, in order */
	size_t n_ph;
};

void route_clean_up(struct route *r);

/* Fill r->filter from r->request_topic. Fails when a placeholder does not fill
 * a whole level, a name repeats, or the template has MQTT wildcards. */
enum cg_err route_compile(struct route *r, char *err);

/*
 * Match topic against the request template. On success the captured values
 * are stored into storage (a copy of topic, which the caller frees) and
 * pointed to from caps. Returns 1 on match, 0 otherwise.
 */
int route_match(const struct route *r, const char *topic, char **storage, struct route_vars *caps);

/* Check a captured value against the rule for its placeholder name. */
enum cg_err route_check_capture(const char *name, const char *value, char *err);

/* Expand "{name}" placeholders from vars; an unknown name is an error. */
enum cg_err route_template_expand(const char *tmpl, const struct route_vars *v, struct sbuf *out,
                                  char *err);

/* The first placeholder of tmpl that route r cannot fill (its captures,
 * {region}, {account}, {client_id}, {thing}, {command}, and extra when not
 * NULL), copied into bad; NULL when every one is known. */
const char *route_unknown_placeholder(const struct route *r, const char *tmpl, const char *extra,
                                      char *bad, size_t n);
/* Whether tmpl has the placeholder {name}; used by config checks. */
int route_template_uses(const char *tmpl, const char *name);

/* Whether a reply topic produced from reply_tmpl could match filter_tmpl. */
int route_reply_could_loop(const char *reply_tmpl, const char *request_tmpl);

/* Whether topic name topic matches MQTT filter filter ('+', '#'). */
int route_filter_matches(const char *filter, const char *topic);

/* The default response_topics entry of r: request_topic's levels up to its
 * {thing} level, then "/#" ("commands/{thing}/#"); NULL when r does not
 * capture {thing}. The caller frees it. */
char *route_default_response_topic(const struct route *r);

/* Unless set, r->response_topics becomes the default (none without
 * {thing}); returns the first entry with a placeholder r cannot fill (its
 * name copied into bad), NULL when every one is known. */
const char *route_response_topics_fill(struct route *r, char *bad, size_t n);

/* Whether a device may have its reply published on topic: a topic name
 * without wildcards that matches one of r's response_topics, expanded with
 * v. The caller also checks it against every request filter. */
int route_response_allowed(const struct route *r, const struct route_vars *v, const char *topic);

enum param_type route_param_type(const struct route *r, const char *name);
int route_command_allowed(const struct route *r, const char *command);

#endif
