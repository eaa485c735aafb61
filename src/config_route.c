/*
 * config_route: the routes list -> struct route[], then each route's rules.
 * Routes have their own small key table because they form a list; each key
 * is a string, an array of strings, the parameter_types group, an integer
 * or a boolean, checked for its type as it is parsed; the rules across a
 * route's keys (and against the other routes and the aws group) are checked
 * once the whole file is read (config_check_route).
 */
#include "config.h"
#include "config_priv.h"
#include "follow.h"
#include "runtime.h"

#include <string.h>

static const char *const route_keys[] = {"request_topic", "reply_topic",     "target_arn",
                                         "command_arn",   "thing",           "command",
                                         "commands",      "parameter_types", "execution_timeout",
                                         "follow",        "execution_topic", "response_topics"};

static const char *default_route[] = {
    "commands/{thing}/{command}/start",
    "commands/{thing}/{command}/start/{status}",
    "arn:aws:iot:{region}:{account}:thing/{thing}",
    "arn:aws:iot:{region}:{account}:command/{command}",
};

static enum cg_err route_string(config_setting_t *rs, const char *key, const char *def, char **out,
                                const char *file, char *err)
{
	config_setting_t *s = config_setting_get_member(rs, key);
	if (s && config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail_at(err, file, s, "route '%s' must be a string", key);
	const char *v = s ? config_setting_get_string(s) : def;
	*out = v ? rt_strdup(v) : NULL;
	return CG_OK;
}

/* A route's array of non-empty strings; absent leaves *out NULL, empty is
 * an empty (non-NULL) list. */
static enum cg_err route_strings(config_setting_t *rs, const char *key, char ***out, size_t *n,
                                 const char *file, char *err)
{
	config_setting_t *s = config_setting_get_member(rs, key);
	if (!s)
		return CG_OK;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return fail_at(err, file, s, "route '%s' must be an array", key);
	*out = rt_calloc((size_t)config_setting_length(s) + 1, sizeof(char *));
	for (int i = 0; i < config_setting_length(s); i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING || !*config_setting_get_string(e))
			return fail_at(err, file, e, "route '%s' holds non-empty strings", key);
		(*out)[(*n)++] = rt_strdup(config_setting_get_string(e));
	}
	return CG_OK;
}

static enum cg_err parse_route_lists(config_setting_t *rs, struct route *r, const char *file,
                                     char *err)
{
	enum cg_err rc;
	if ((rc = route_strings(rs, "commands", &r->commands, &r->n_commands, file, err)) ||
	    (rc = route_strings(rs, "response_topics", &r->response_topics, &r->n_response_topics,
	                        file, err)))
		return rc;
	config_setting_t *s = config_setting_get_member(rs, "parameter_types");
	if (s) {
		if (!config_setting_is_group(s))
			return fail_at(err, file, s, "route 'parameter_types' must be a group");
		int n = config_setting_length(s);
		r->ptypes = rt_calloc((size_t)n + 1, sizeof(*r->ptypes));
		for (int i = 0; i < n; i++) {
			config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			enum param_type t =
			    config_setting_type(e) == CONFIG_TYPE_STRING
			        ? route_param_type_parse(config_setting_get_string(e))
			        : PT_NONE;
			if (t == PT_NONE)
				return fail_at(
				    err, file, e,
				    "parameter type of '%s' must be one of S B I L D BIN "
				    "UL",
				    config_setting_name(e));
			r->ptypes[r->n_ptypes].name = rt_strdup(config_setting_name(e));
			r->ptypes[r->n_ptypes++].type = t;
		}
	}
	s = config_setting_get_member(rs, "execution_timeout");
	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 0)
			return fail_at(err, file, s,
			               "route 'execution_timeout' must be an integer >= 0");
		r->execution_timeout = config_setting_get_int(s);
	}
	s = config_setting_get_member(rs, "follow");
	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return fail_at(err, file, s, "route 'follow' must be true or false");
		r->follow = config_setting_get_bool(s);
	}
	return CG_OK;
}

static enum cg_err parse_route(config_setting_t *rs, struct route *r, const char *file, char *err)
{
	if (!config_setting_is_group(rs))
		return fail_at(err, file, rs, "each route must be a group { ... }");
	int n = config_setting_length(rs);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(rs, (unsigned)i);
		int known = 0;
		for (size_t k = 0; k < sizeof(route_keys) / sizeof(route_keys[0]); k++)
			known |= strcmp(config_setting_name(s), route_keys[k]) == 0;
		if (!known)
			return fail_at(err, file, s, "unknown route key '%s'",
			               config_setting_name(s));
	}
	enum cg_err rc;
	if ((rc = route_string(rs, "request_topic", default_route[0], &r->request_topic, file,
	                       err)) ||
	    (rc = route_string(rs, "reply_topic", default_route[1], &r->reply_topic, file, err)) ||
	    (rc = route_string(rs, "target_arn", default_route[2], &r->target_arn, file, err)) ||
	    (rc = route_string(rs, "command_arn", default_route[3], &r->command_arn, file, err)) ||
	    (rc = route_string(rs, "thing", NULL, &r->thing, file, err)) ||
	    (rc = route_string(rs, "command", NULL, &r->command, file, err)) ||
	    (rc = route_string(rs, "execution_topic", FOLLOW_DEFAULT_TOPIC, &r->execution_topic,
	                       file, err)))
		return rc;
	return parse_route_lists(rs, r, file, err);
}

enum cg_err config_parse_routes(struct config *c, const config_t *cfg, const char *file, char *err)
{
	config_setting_t *list = config_lookup(cfg, "routes");
	if (!list) {
		c->routes = rt_calloc(1, sizeof(struct route));
		c->n_routes = 1;
		c->routes[0].request_topic = rt_strdup(default_route[0]);
		c->routes[0].reply_topic = rt_strdup(default_route[1]);
		c->routes[0].target_arn = rt_strdup(default_route[2]);
		c->routes[0].command_arn = rt_strdup(default_route[3]);
		c->routes[0].execution_topic = rt_strdup(FOLLOW_DEFAULT_TOPIC);
		return CG_OK;
	}
	if (!config_setting_is_list(list) || config_setting_length(list) < 1)
		return fail_at(err, file, list, "'routes' must be a non-empty list ( { ... } )");
	size_t n = (size_t)config_setting_length(list);
	c->routes = rt_calloc(n, sizeof(struct route));
	c->n_routes = n;
	for (size_t i = 0; i < n; i++) {
		enum cg_err rc = parse_route(config_setting_get_elem(list, (unsigned)i),
		                             &c->routes[i], file, err);
		if (rc)
			return rc;
	}
	return CG_OK;
}

/* ---- rules across keys -------------------------------------------------- */

static int captures(const struct route *r, const char *name)
{
	for (size_t i = 0; i < r->n_ph; i++)
		if (strcmp(r->ph_names[i], name) == 0)
			return 1;
	return 0;
}

/* The setting of a route's key (for its line), else the route's own. */
static config_setting_t *key_at(config_setting_t *s, const char *key)
{
	config_setting_t *k = config_setting_is_group(s) ? config_setting_get_member(s, key) : NULL;
	return k ? k : s;
}

/* Cross-field rules of one route; s is its setting (for the line). */
enum cg_err config_check_route(const struct config *c, struct route *r, config_setting_t *s,
                               const char *file, char *err)
{
	char msg[ERR_LEN];
	if (route_compile(r, msg))
		return fail_at(err, file, key_at(s, "request_topic"), "%s", msg);
	const char *fixed[2] = {r->thing, r->command};
	const char *names[2] = {"thing", "command"};
	for (int i = 0; i < 2; i++) {
		if (fixed[i] && captures(r, names[i]))
			return fail_at(err, file, s,
			               "route both captures {%s} and fixes %s = ...; choose one",
			               names[i], names[i]);
		if (!fixed[i] && !captures(r, names[i]))
			return fail_at(err, file, s,
			               "route needs {%s} in request_topic or a fixed %s = ...",
			               names[i], names[i]);
		if (fixed[i] && route_check_capture(names[i], fixed[i], NULL))
			return fail_at(err, file, s, "route %s = \"%s\" is not a valid name",
			               names[i], fixed[i]);
	}
	char bad[130];
	const char *tmpls[3] = {r->reply_topic, r->target_arn, r->command_arn};
	const char *keys[3] = {"reply_topic", "target_arn", "command_arn"};
	for (int i = 0; i < 3; i++)
		if (route_unknown_placeholder(r, tmpls[i], i == 0 ? "status" : NULL, bad,
		                              sizeof(bad)))
			return fail_at(err, file, key_at(s, keys[i]),
			               "unknown placeholder {%s} in \"%s\"", bad, tmpls[i]);
	if (!*r->reply_topic || strpbrk(r->reply_topic, "+#"))
		return fail_at(err, file, key_at(s, "reply_topic"),
		               "reply_topic \"%s\" must be a topic name without "
		               "wildcards",
		               r->reply_topic);
	for (size_t i = 0; i < c->n_routes; i++)
		if (route_reply_could_loop(r->reply_topic, c->routes[i].request_topic))
			return fail_at(err, file, key_at(s, "reply_topic"),
			               "reply_topic \"%s\" could match request_topic \"%s\": "
			               "replies would loop back as requests",
			               r->reply_topic, c->routes[i].request_topic);
	const char *rt = route_response_topics_fill(r, bad, sizeof(bad));
	if (rt)
		return fail_at(err, file, key_at(s, "response_topics"),
		               "unknown placeholder {%s} in \"%s\"", bad, rt);
	for (int i = 0; i < 3; i++)
		if (route_template_uses(tmpls[i], "account") && !*c->aws.account)
			return fail_at(err, file, s,
			               "aws.account is required: \"%s\" uses {account}", tmpls[i]);
	const char *key = follow_topic_check(r, c->routes, c->n_routes, *c->aws.account != '\0',
	                                     msg, sizeof(msg));
	return key ? fail_at(err, file, *key ? key_at(s, key) : s, "%s", msg) : CG_OK;
}
