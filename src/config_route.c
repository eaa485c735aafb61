/*
 * config_route: the routes list -> struct route[]. Routes have their own
 * small key table because they form a list; each key is a string, an array
 * of strings, the parameter_types group, an integer or a boolean, checked
 * for its type here and for cross-field rules in config.c.
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
