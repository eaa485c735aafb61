/*
 * config: the option table is the single description of every key: its
 * type, bounds or accepted values (an enum's list, a string's validator),
 * default and whether SIGHUP may change it (Redis's createEnumConfig
 * shape). Parsing walks the file's tree and refuses any key the table does
 * not know; filling walks the table, takes defaults for absent keys and
 * checks each value as its row says, so an error message is made from the
 * same list the check uses. Rules across keys come after (check_globals).
 * Routes have their own small table because they form a list.
 */
#include "config.h"
#include "config_priv.h"
#include "follow.h"
#include "runtime.h"
#include "url.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OPT_ENUM is a string that must be one of the row's values. */
enum opt_type { OPT_STR, OPT_ENUM, OPT_INT, OPT_DBL, OPT_GROUP };

/* A string's validator: NULL when v is good, else why not (a literal, or
 * text in why, which holds ERR_LEN bytes). */
typedef const char *(*opt_check_fn)(const char *v, char *why);

struct config_option {
	const char *path;
	enum opt_type type;
	size_t off;
	double min, max; /* OPT_INT, OPT_DBL */
	const char *def_s;
	double def_n;
	int reloadable;
	const char *const *values; /* OPT_ENUM: the accepted values, NULL-terminated */
	opt_check_fn check;        /* OPT_STR: NULL, or the value's validator */
};

static const char *check_mqtt_uri(const char *v, char *why);
static const char *check_region(const char *v, char *why);
static const char *check_aws_url(const char *v, char *why);
static const char *check_not_empty(const char *v, char *why);

static const char *const credential_sources[] = {"chain", "static",    "env",  "profile",
                                                 "iot",   "container", "imds", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

#define O(field) offsetof(struct config, field)
#define STR(p, f, d, rl)                                                                           \
	{                                                                                          \
		.path = p, .type = OPT_STR, .off = O(f), .def_s = d, .reloadable = rl              \
	}
#define STRV(p, f, d, rl, fn)                                                                      \
	{                                                                                          \
		.path = p, .type = OPT_STR, .off = O(f), .def_s = d, .reloadable = rl, .check = fn \
	}
#define ENUM(p, f, set, d, rl)                                                                     \
	{                                                                                          \
		.path = p, .type = OPT_ENUM, .off = O(f), .def_s = d, .reloadable = rl,            \
		.values = set                                                                      \
	}
#define INT(p, f, lo, hi, d, rl)                                                                   \
	{                                                                                          \
		.path = p, .type = OPT_INT, .off = O(f), .min = lo, .max = hi, .def_n = d,         \
		.reloadable = rl                                                                   \
	}
#define DBL(p, f, lo, hi, d, rl)                                                                   \
	{                                                                                          \
		.path = p, .type = OPT_DBL, .off = O(f), .min = lo, .max = hi, .def_n = d,         \
		.reloadable = rl                                                                   \
	}
#define GRP(p)                                                                                     \
	{                                                                                          \
		.path = p, .type = OPT_GROUP, .reloadable = 1                                      \
	}

static const struct config_option options[] = {
    GRP("mqtt"),
    STRV("mqtt.uri", mqtt.uri, "tcp://127.0.0.1:1883", 0, check_mqtt_uri),
    STRV("mqtt.client_id", mqtt.client_id, "cmdgate", 0, check_not_empty),
    INT("mqtt.version", mqtt.version, 4, 5, 5, 0),
    STR("mqtt.username", mqtt.username, "", 0),
    STR("mqtt.password_file", mqtt.password_file, "", 0),
    STR("mqtt.ca_file", mqtt.ca_file, "", 0),
    STR("mqtt.cert_file", mqtt.cert_file, "", 0),
    STR("mqtt.key_file", mqtt.key_file, "", 0),
    INT("mqtt.keepalive", mqtt.keepalive, 1, 65535, 30, 0),
    INT("mqtt.qos", mqtt.qos, 0, 2, 1, 0),
    STR("mqtt.shared_group", mqtt.shared_group, "", 0),
    STR("mqtt.status_topic", mqtt.status_topic, "cmdgate/{client_id}/status", 0),
    GRP("aws"),
    STRV("aws.region", aws.region, "", 1, check_region),
    STR("aws.account", aws.account, "", 1),
    STRV("aws.endpoint", aws.endpoint, "", 1, check_aws_url),
    STR("aws.ca_file", aws.ca_file, "", 0),
    INT("aws.connect_timeout_ms", aws.connect_timeout_ms, 1, 600000, 3000, 0),
    INT("aws.request_timeout_ms", aws.request_timeout_ms, 1, 600000, 10000, 1),
    INT("aws.max_attempts", aws.max_attempts, 1, 100, 3, 1),
    DBL("aws.max_rate", aws.max_rate, 0, 1e9, 0, 1),
    STRV("aws.control_endpoint", aws.control_endpoint, "", 1, check_aws_url),
    DBL("aws.follow_max_rate", aws.follow_max_rate, 0, 1e9, 10, 1),
    GRP("aws.credentials"),
    ENUM("aws.credentials.source", aws.credentials.source, credential_sources, "chain", 1),
    STR("aws.credentials.access_key_id", aws.credentials.access_key_id, "", 1),
    STR("aws.credentials.secret_access_key_file", aws.credentials.secret_access_key_file, "", 1),
    STR("aws.credentials.profile", aws.credentials.profile, "", 1),
    GRP("aws.credentials.iot"),
    STR("aws.credentials.iot.endpoint", aws.credentials.iot.endpoint, "", 1),
    STR("aws.credentials.iot.role_alias", aws.credentials.iot.role_alias, "", 1),
    STR("aws.credentials.iot.thing_name", aws.credentials.iot.thing_name, "", 1),
    STR("aws.credentials.iot.cert_file", aws.credentials.iot.cert_file, "", 1),
    STR("aws.credentials.iot.key_file", aws.credentials.iot.key_file, "", 1),
    STR("aws.credentials.iot.ca_file", aws.credentials.iot.ca_file, "", 1),
    GRP("gateway"),
    INT("gateway.max_inflight", gateway.max_inflight, 1, 65536, 64, 1),
    INT("gateway.queue_size", gateway.queue_size, 0, 10000000, 4096, 1),
    INT("gateway.per_target_inflight", gateway.per_target_inflight, 1, 65536, 1, 1),
    INT("gateway.max_payload", gateway.max_payload, 2, 268435455, 16384, 1),
    INT("gateway.deadline_ms", gateway.deadline_ms, 1, 86400000, 30000, 1),
    INT("gateway.drain_ms", gateway.drain_ms, 0, 3600000, 10000, 1),
    INT("gateway.settle_max_ms", gateway.settle_max_ms, 1000, 86400000, 300000, 1),
    DBL("gateway.per_thing_rate", gateway.per_thing_rate, 0, 1e9, 0, 1),
    STR("gateway.spool_dir", gateway.spool_dir, "", 0),
    INT("gateway.spool_max", gateway.spool_max, 1, 100000000, 100000, 1),
    INT("gateway.follow_max_s", gateway.follow_max_s, 1, 604800, 3600, 1),
    INT("gateway.follow_poll_ms", gateway.follow_poll_ms, 100, 2000, 1000, 1),
    INT("gateway.per_thing_queue", gateway.per_thing_queue, 1, 10000000, 64, 1),
    INT("gateway.follow_max", gateway.follow_max, 1, 100000000, 10000, 1),
    GRP("log"),
    ENUM("log.level", log.level, log_levels, "info", 1),
    ENUM("log.format", log.format, log_formats, "text", 1),
    GRP("stats"),
    STR("stats.topic", stats.topic, "", 1),
    INT("stats.interval", stats.interval, 1, 86400, 60, 1),
    STR("stats.file", stats.file, "", 1),
};

enum cg_err config_fail_at(char *err, const char *file, const config_setting_t *s, const char *fmt,
                           ...)
{
	unsigned line = s ? (unsigned)config_setting_source_line(s) : 0;
	const char *f = s && config_setting_source_file(s) ? config_setting_source_file(s) : file;
	char msg[ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line == 0)
		return cg_fail(err, CG_CONFIG, "%s: %s", f, msg);
	return cg_fail(err, CG_CONFIG, "%s:%u: %s", f, line, msg);
}

static const struct config_option *find_option(const char *path)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strcmp(options[i].path, path) == 0)
			return &options[i];
	return NULL;
}

/* Refuse keys the table does not know, recursively. */
static enum cg_err check_known(const config_setting_t *group, const char *prefix, const char *file,
                               char *err)
{
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		char path[256];
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (strcmp(path, "routes") == 0 || strcmp(path, "proxy") == 0)
			continue; /* their own parsers */
		const struct config_option *o = find_option(path);
		if (!o)
			return fail_at(err, file, s, "unknown key '%s'", path);
		if (o->type == OPT_GROUP) {
			if (!config_setting_is_group(s))
				return fail_at(err, file, s, "'%s' must be a group { ... }", path);
			enum cg_err rc = check_known(s, path, file, err);
			if (rc)
				return rc;
		}
	}
	return CG_OK;
}

static int one_of(const char *v, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(v, *set) == 0)
			return 1;
	return 0;
}

/* "a b c": the values of set, for an error message. */
static void list_values(const char *const *set, const char *before, const char *after, char *out,
                        size_t n)
{
	size_t at = 0;
	out[0] = '\0';
	for (; *set && at < n; set++)
		at += (size_t)snprintf(out + at, n - at, "%s%s%s%s", at ? " " : "", before, *set,
		                       after);
}

/* A string option: an enum's value is one of its list; a validated one
 * passes its validator. s: the setting (NULL: the default, which passes). */
static enum cg_err check_string(const struct config_option *o, const char *v,
                                const config_setting_t *s, const char *file, char *err)
{
	char why[ERR_LEN];
	if (o->type == OPT_ENUM && !one_of(v, o->values)) {
		list_values(o->values, "", "", why, sizeof(why));
		return fail_at(err, file, s, "%s \"%s\" is not one of %s", o->path, v, why);
	}
	const char *bad = o->check ? o->check(v, why) : NULL;
	if (bad)
		return fail_at(err, file, s, "%s \"%s\" %s", o->path, v, bad);
	return CG_OK;
}

static enum cg_err fill_option(struct config *c, const config_t *cfg, const struct config_option *o,
                               const char *file, char *err)
{
	if (o->type == OPT_GROUP)
		return CG_OK;
	config_setting_t *s = config_lookup(cfg, o->path);
	char *base = (char *)c + o->off;
	int t = s ? config_setting_type(s) : CONFIG_TYPE_NONE;
	if (o->type == OPT_STR || o->type == OPT_ENUM) {
		if (s && t != CONFIG_TYPE_STRING)
			return fail_at(err, file, s, "'%s' must be a string", o->path);
		*(char **)base = rt_strdup(s ? config_setting_get_string(s) : o->def_s);
		return s ? check_string(o, *(char **)base, s, file, err) : CG_OK;
	}
	double v = o->def_n;
	if (s) {
		if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(s);
		else if (t == CONFIG_TYPE_FLOAT && o->type == OPT_DBL)
			v = config_setting_get_float(s);
		else
			return fail_at(err, file, s, "'%s' must be %s", o->path,
			               o->type == OPT_INT ? "an integer" : "a number");
		if (v < o->min || v > o->max) {
			char range[96];
			snprintf(range, sizeof(range), " (allowed %g to %g)", o->min, o->max);
			return fail_at(err, file, s, "'%s' is out of range%s", o->path, range);
		}
	}
	if (o->type == OPT_INT)
		*(long *)base = (long)v;
	else
		*(double *)base = v;
	return CG_OK;
}

/* ---- validators --------------------------------------------------------- */

/* The schemes Paho takes (the list the message is made from). */
static const char *const mqtt_schemes[] = {"tcp", "ssl", "ws", "wss", "mqtt", "mqtts", NULL};

static const char *check_mqtt_uri(const char *v, char *why)
{
	char scheme[16] = "";
	const char *sep = strstr(v, "://");
	if (sep && (size_t)(sep - v) < sizeof(scheme))
		snprintf(scheme, sizeof(scheme), "%.*s", (int)(sep - v), v);
	if (one_of(scheme, mqtt_schemes))
		return NULL;
	char list[128];
	list_values(mqtt_schemes, "", "://", list, sizeof(list));
	snprintf(why, ERR_LEN, "must start with one of %s", list);
	return why;
}

static const char *check_region(const char *v, char *why)
{
	(void)why;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return "is not a region name";
	return NULL;
}

static const char *check_aws_url(const char *v, char *why)
{
	(void)why;
	if (!*v || url_is_endpoint(v))
		return NULL;
	return "must be an https:// (or http://) URL with a host and no user name";
}

static const char *check_not_empty(const char *v, char *why)
{
	(void)why;
	return *v ? NULL : "is empty";
}

/* ---- rules across keys -------------------------------------------------- */

static char *without_trailing_slash(const char *url)
{
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	return rt_memdup(url, n);
}

static enum cg_err check_globals(struct config *c, const config_t *cfg, const char *file, char *err)
{
	config_setting_t *root = config_root_setting(cfg);
#define AT(path) (config_lookup(cfg, path) ? config_lookup(cfg, path) : root)
	if (!*c->aws.region)
		return fail_at(err, file, AT("aws"), "aws.region is required");
	if (strcmp(c->aws.credentials.source, "static") == 0 &&
	    (!*c->aws.credentials.access_key_id || !*c->aws.credentials.secret_access_key_file))
		return fail_at(err, file, AT("aws.credentials"),
		               "source \"static\" needs access_key_id and "
		               "secret_access_key_file");
	const struct iot_cred_config *iot = &c->aws.credentials.iot;
	if (strcmp(c->aws.credentials.source, "iot") == 0 &&
	    (!*iot->endpoint || !*iot->role_alias || !*iot->cert_file || !*iot->key_file))
		return fail_at(
		    err, file, AT("aws.credentials"),
		    "source \"iot\" needs iot.endpoint, iot.role_alias, iot.cert_file and "
		    "iot.key_file");
#undef AT
	c->control_url = *c->aws.control_endpoint ? without_trailing_slash(c->aws.control_endpoint)
	                                          : follow_default_endpoint(c->aws.region);
	c->endpoint_url = *c->aws.endpoint ? without_trailing_slash(c->aws.endpoint)
	                                   : config_default_endpoint(c->aws.region);
	return CG_OK;
}

/* mqtt.status_topic and stats.topic may use {client_id} only, and must expand
 * to a topic name: checked here so expanding them later cannot fail. */
static enum cg_err check_client_topics(const struct config *c, const config_t *cfg,
                                       const char *file, char *err)
{
	const char *paths[2] = {"mqtt.status_topic", "stats.topic"};
	const char *tmpls[2] = {c->mqtt.status_topic, c->stats.topic};
	struct route_vars v = {0};
	route_vars_set(&v, "client_id", c->mqtt.client_id);
	for (int i = 0; i < 2; i++) {
		struct sbuf out;
		sbuf_init(&out);
		char why[ERR_LEN] = "it has an MQTT wildcard";
		int bad = *tmpls[i] && (route_template_expand(tmpls[i], &v, &out, why) != CG_OK ||
		                        strpbrk(out.data, "+#"));
		sbuf_clean_up(&out);
		if (bad)
			return fail_at(err, file, config_lookup(cfg, paths[i]), "%s: %s", paths[i],
			               why);
	}
	return CG_OK;
}

char *config_default_endpoint(const char *region)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "https://data.jobs.iot.%s.amazonaws.com%s", region,
	            strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return sbuf_steal(&b);
}

/* Parse from a file (text NULL) or from text named path. */
static struct config *load(const char *path, const char *text, char *err)
{
	config_t cfg;
	config_init(&cfg);
	struct config *c = rt_calloc(1, sizeof(*c));
	enum cg_err rc = CG_CONFIG;
	if (text)
		config_set_include_dir(&cfg, "/nonexistent"); /* text may not pull in files */
	if (!(text ? config_read_string(&cfg, text) : config_read_file(&cfg, path))) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			cg_fail(err, CG_CONFIG, "%s: cannot read the file", path);
		else
			cg_fail(err, CG_CONFIG, "%s:%d: %s",
			        config_error_file(&cfg) ? config_error_file(&cfg) : path,
			        config_error_line(&cfg), config_error_text(&cfg));
		goto out;
	}
	c->path = rt_strdup(path);
	if ((rc = check_known(config_root_setting(&cfg), "", path, err)))
		goto out;
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if ((rc = fill_option(c, &cfg, &options[i], path, err)))
			goto out;
	if ((rc = config_parse_routes(c, &cfg, path, err)) ||
	    (rc = check_globals(c, &cfg, path, err)) ||
	    (rc = check_client_topics(c, &cfg, path, err)) ||
	    (rc = config_proxy_load(&cfg, path, c->routes, c->n_routes, &c->proxy, err)))
		goto out;
	config_setting_t *list = config_lookup(&cfg, "routes");
	for (size_t i = 0; i < c->n_routes; i++) {
		config_setting_t *s = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
		if ((rc = config_check_route(c, &c->routes[i], s ? s : config_root_setting(&cfg),
		                             path, err)))
			goto out;
	}
	for (size_t i = 0; i < c->n_routes; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->routes[i].filter, c->routes[j].filter) == 0) {
				rc = fail_at(err, path,
				             list ? config_setting_get_elem(list, (unsigned)i)
				                  : NULL,
				             "two routes subscribe to the same filter \"%s\"",
				             c->routes[i].filter);
				goto out;
			}
	rc = CG_OK;
out:
	config_destroy(&cfg);
	if (rc) {
		config_free(c);
		return NULL;
	}
	return c;
}

struct config *config_load(const char *path, char *err)
{
	return load(path, NULL, err);
}

struct config *config_load_text(const char *text, const char *name, char *err)
{
	return load(name, text, err);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (options[i].type == OPT_STR || options[i].type == OPT_ENUM)
			free(*(char **)((char *)c + options[i].off));
	for (size_t i = 0; i < c->n_routes; i++)
		route_clean_up(&c->routes[i]);
	free(c->routes);
	config_proxy_free(c->proxy);
	free(c->endpoint_url);
	free(c->control_url);
	free(c->path);
	free(c);
}

void config_restart_needed(const struct config *a, const struct config *b, struct sbuf *out)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct config_option *o = &options[i];
		if (o->reloadable || o->type == OPT_GROUP)
			continue;
		const char *pa = (const char *)a + o->off;
		const char *pb = (const char *)b + o->off;
		int differs;
		if (o->type == OPT_STR || o->type == OPT_ENUM)
			differs = strcmp(*(char *const *)pa, *(char *const *)pb) != 0;
		else if (o->type == OPT_INT)
			differs = *(const long *)pa != *(const long *)pb;
		else
			differs = *(const double *)pa != *(const double *)pb;
		if (differs) {
			if (out->len)
				sbuf_puts(out, ", ");
			sbuf_puts(out, o->path);
		}
	}
}
