/*
 * config_proxy: the proxy section in the three steps of config.c: libconfig
 * has parsed; a table of keys fills struct proxy_config with defaults and
 * bounds; cross-field rules follow (identity, endpoint form, thing names,
 * duplicates, routes that would swallow the proxy's own topics).
 */
#include "config_proxy.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_priv.h"
#include "proxy_topic.h"
#include "runtime.h"

enum pkey_type { PK_STR, PK_INT, PK_DBL };

struct proxy_key {
	const char *name;
	enum pkey_type type;
	size_t off;
	double min, max;
	const char *def_s;
	double def_n;
	int reloadable;
};

#define P(f) offsetof(struct proxy_config, f)
static const struct proxy_key keys[] = {
    {"endpoint", PK_STR, P(endpoint), 0, 0, "", 0, 0},
    {"ca_file", PK_STR, P(ca_file), 0, 0, "", 0, 0},
    {"cert_file", PK_STR, P(cert_file), 0, 0, "", 0, 0},
    {"key_file", PK_STR, P(key_file), 0, 0, "", 0, 0},
    {"identity_dir", PK_STR, P(identity_dir), 0, 0, "", 0, 0},
    {"things_file", PK_STR, P(things_file), 0, 0, "", 0, 1},
    {"local_prefix", PK_STR, P(local_prefix), 0, 0, PROXY_AWS_PREFIX, 0, 1},
    {"version", PK_INT, P(version), 4, 5, NULL, 5, 0},
    {"session_expiry", PK_INT, P(session_expiry), 0, 4294967295.0, NULL, 3600, 0},
    {"keepalive", PK_INT, P(keepalive), 5, 1200, NULL, 60, 0},
    {"connect_rate", PK_DBL, P(connect_rate), 0.01, 1000, NULL, 20, 1},
    {"update_timeout_ms", PK_INT, P(update_timeout_ms), 100, 3600000, NULL, 10000, 1},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct proxy_key *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static enum cg_err fill_key(struct proxy_config *p, const config_setting_t *grp,
                            const struct proxy_key *k, const char *file, char *err)
{
	config_setting_t *s = config_setting_get_member(grp, k->name);
	char *base = (char *)p + k->off;
	int t = s ? config_setting_type(s) : CONFIG_TYPE_NONE;
	if (k->type == PK_STR) {
		if (s && t != CONFIG_TYPE_STRING)
			return fail_at(err, file, s, "'proxy.%s' must be a string", k->name);
		*(char **)base = rt_strdup(s ? config_setting_get_string(s) : k->def_s);
		return CG_OK;
	}
	double v = k->def_n;
	if (s) {
		if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(s);
		else if (t == CONFIG_TYPE_FLOAT && k->type == PK_DBL)
			v = config_setting_get_float(s);
		else
			return fail_at(err, file, s, "'proxy.%s' must be %s", k->name,
			               k->type == PK_INT ? "an integer" : "a number");
		if (v < k->min || v > k->max)
			return fail_at(err, file, s,
			               "'proxy.%s' is out of range (allowed %g to %g)", k->name,
			               k->min, k->max);
	}
	if (k->type == PK_INT)
		*(long *)base = (long)v;
	else
		*(double *)base = v;
	return CG_OK;
}

/* Add one thing name; where says where it came from for the error. */
static enum cg_err add_thing(struct proxy_config *p, const char *name, size_t len,
                             const char *where, char *err)
{
	if (!proxy_thing_name_ok(name, len))
		return cg_fail(err, CG_CONFIG,
		               "%s: thing name \"%.*s\" must match ^[A-Za-z0-9:_-]{1,128}$", where,
		               (int)(len > 200 ? 200 : len), name);
	for (size_t i = 0; i < p->n_things; i++)
		if (strlen(p->things[i]) == len && memcmp(p->things[i], name, len) == 0)
			return cg_fail(err, CG_CONFIG, "%s: thing \"%.*s\" is listed twice", where,
			               (int)len, name);
	p->things = rt_realloc(p->things, (p->n_things + 1) * sizeof(char *));
	p->things[p->n_things++] = rt_memdup(name, len);
	return CG_OK;
}

static enum cg_err parse_things(struct proxy_config *p, const config_setting_t *grp,
                                const char *file, char *err)
{
	config_setting_t *s = config_setting_get_member(grp, "things");
	if (!s)
		return CG_OK;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return fail_at(err, file, s, "'proxy.things' must be an array of names");
	for (int i = 0; i < config_setting_length(s); i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail_at(err, file, e, "'proxy.things' holds strings");
		char where[ERR_LEN];
		snprintf(where, sizeof(where), "%s:%d", file, config_setting_source_line(e));
		const char *v = config_setting_get_string(e);
		enum cg_err rc = add_thing(p, v, strlen(v), where, err);
		if (rc)
			return rc;
	}
	return CG_OK;
}

/* things_file: one name per line; blank lines and lines starting with '#'
 * are skipped, blanks around a name dropped. */
static enum cg_err read_things_file(struct proxy_config *p, const config_setting_t *grp,
                                    const char *file, char *err)
{
	if (!*p->things_file)
		return CG_OK;
	FILE *f = fopen(p->things_file, "r");
	if (!f)
		return fail_at(err, file, config_setting_get_member(grp, "things_file"),
		               "proxy.things_file %s cannot be read", p->things_file);
	char line[512];
	enum cg_err rc = CG_OK;
	for (unsigned n = 1; rc == CG_OK && fgets(line, sizeof(line), f); n++) {
		char *s = line, *e = line + strlen(line);
		while (*s == ' ' || *s == '\t')
			s++;
		while (e > s && strchr(" \t\r\n", e[-1]))
			e--;
		if (e == s || *s == '#')
			continue;
		char where[ERR_LEN];
		snprintf(where, sizeof(where), "%s:%u", p->things_file, n);
		rc = add_thing(p, s, (size_t)(e - s), where, err);
	}
	fclose(f);
	return rc;
}

/* endpoint: a host name, or ssl://host:port (mqtts:// too). */
static enum cg_err derive_uri(struct proxy_config *p, const config_setting_t *grp, const char *file,
                              char *err)
{
	config_setting_t *at = config_setting_get_member(grp, "endpoint");
	const char *e = p->endpoint;
	if (!*e)
		return fail_at(err, file, at ? at : grp,
		               "proxy.endpoint is required (the iot:Data-ATS host name)");
	const char *host = e;
	if (strncmp(e, "ssl://", 6) == 0)
		host = e + 6;
	else if (strncmp(e, "mqtts://", 8) == 0)
		host = e + 8;
	else if (strstr(e, "://"))
		return fail_at(err, file, at,
		               "proxy.endpoint \"%s\" must be a host name or ssl://host:port", e);
	if (!*host || strpbrk(host, "/ \t?#@"))
		return fail_at(err, file, at,
		               "proxy.endpoint \"%s\" is not a host name or ssl://host:port", e);
	struct sbuf u;
	sbuf_init(&u);
	const char *colon = strrchr(host, ':');
	int has_port = colon && (host[0] != '[' || strchr(host, ']') < colon);
	if (has_port) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (*end || port < 1 || port > 65535 || colon == host) {
			sbuf_clean_up(&u);
			return fail_at(err, file, at, "proxy.endpoint \"%s\": bad port", e);
		}
		sbuf_printf(&u, "ssl://%s", host);
	} else {
		sbuf_printf(&u, "ssl://%s:%d", host, PROXY_DEFAULT_PORT);
	}
	p->uri = sbuf_steal(&u);
	return CG_OK;
}

static enum cg_err check_identity(const struct proxy_config *p, const config_setting_t *grp,
                                  const char *file, char *err)
{
	int pair = *p->cert_file || *p->key_file;
	if (pair && *p->identity_dir)
		return fail_at(
		    err, file, config_setting_get_member(grp, "identity_dir"),
		    "proxy: set either cert_file and key_file, or identity_dir, not both");
	if (pair && (!*p->cert_file || !*p->key_file))
		return fail_at(
		    err, file,
		    config_setting_get_member(grp, *p->cert_file ? "cert_file" : "key_file"),
		    "proxy: cert_file and key_file go together");
	if (!pair && !*p->identity_dir)
		return fail_at(err, file, grp,
		               "proxy needs an identity: cert_file and key_file, or identity_dir");
	const char *pre = p->local_prefix;
	if (!*pre || strpbrk(pre, "+#") || pre[0] == '/' || pre[strlen(pre) - 1] == '/' ||
	    strstr(pre, "//"))
		return fail_at(err, file, config_setting_get_member(grp, "local_prefix"),
		               "proxy.local_prefix \"%s\" must be topic levels without wildcards",
		               pre);
	return CG_OK;
}

static enum cg_err check_known(const config_setting_t *grp, const char *file, char *err)
{
	for (int i = 0; i < config_setting_length(grp); i++) {
		config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		if (!find_key(name) && strcmp(name, "things") != 0)
			return fail_at(err, file, s, "unknown key 'proxy.%s'", name);
	}
	return CG_OK;
}

static enum cg_err config_proxy_parse(const config_t *cfg, const char *file,
                                      struct proxy_config **out, char *err)
{
	*out = NULL;
	config_setting_t *grp = config_lookup(cfg, "proxy");
	if (!grp)
		return CG_OK;
	if (!config_setting_is_group(grp))
		return fail_at(err, file, grp, "'proxy' must be a group { ... }");
	struct proxy_config *p = rt_calloc(1, sizeof(*p));
	enum cg_err rc = check_known(grp, file, err);
	for (size_t i = 0; rc == CG_OK && i < N_KEYS; i++)
		rc = fill_key(p, grp, &keys[i], file, err);
	if (rc == CG_OK && (rc = derive_uri(p, grp, file, err)) == CG_OK &&
	    (rc = check_identity(p, grp, file, err)) == CG_OK &&
	    (rc = parse_things(p, grp, file, err)) == CG_OK)
		rc = read_things_file(p, grp, file, err);
	if (rc) {
		config_proxy_free(p);
		return rc;
	}
	*out = p;
	return CG_OK;
}

static enum cg_err check_routes(const struct proxy_config *p, const struct route *routes,
                                size_t n_routes, const config_t *cfg, const char *file, char *err)
{
	static const char *const tails[] = {
	    "request/json",  "request/cbor",           "request",
	    "response/json", "response/accepted/json", "response/rejected/json"};
	config_setting_t *list = config_lookup(cfg, "routes");
	for (size_t i = 0; i < n_routes; i++)
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			struct sbuf topic;
			sbuf_init(&topic);
			proxy_topic_build(&topic, p->local_prefix, "{thing}", "{execution}",
			                  tails[t]);
			int loops = route_reply_could_loop(topic.data, routes[i].request_topic);
			if (loops) {
				config_setting_t *s =
				    list ? config_setting_get_elem(list, (unsigned)i) : NULL;
				fail_at(err, file, s ? s : config_lookup(cfg, "proxy"),
				        "route request_topic \"%s\" could match the proxy's local "
				        "topic "
				        "\"%s\"",
				        routes[i].request_topic, topic.data);
			}
			sbuf_clean_up(&topic);
			if (loops)
				return CG_CONFIG;
		}
	return CG_OK;
}

enum cg_err config_proxy_load(const config_t *cfg, const char *file, const struct route *routes,
                              size_t n_routes, struct proxy_config **out, char *err)
{
	enum cg_err rc = config_proxy_parse(cfg, file, out, err);
	if (rc == CG_OK && *out && (rc = check_routes(*out, routes, n_routes, cfg, file, err))) {
		config_proxy_free(*out);
		*out = NULL;
	}
	return rc;
}

void config_proxy_free(struct proxy_config *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < N_KEYS; i++)
		if (keys[i].type == PK_STR)
			free(*(char **)((char *)p + keys[i].off));
	for (size_t i = 0; i < p->n_things; i++)
		free(p->things[i]);
	free(p->things);
	free(p->uri);
	free(p);
}

void config_proxy_identity(const struct proxy_config *p, const char *thing, char *cert, char *key,
                           size_t n)
{
	if (*p->identity_dir) {
		snprintf(cert, n, "%s/%s/certificate.pem.crt", p->identity_dir, thing);
		snprintf(key, n, "%s/%s/private.pem.key", p->identity_dir, thing);
	} else {
		snprintf(cert, n, "%s", p->cert_file);
		snprintf(key, n, "%s", p->key_file);
	}
}

void config_proxy_restart_needed(const struct proxy_config *a, const struct proxy_config *b,
                                 struct sbuf *out)
{
	if (!a || !b) /* a section added or removed: the engine starts or stops the proxy */
		return;
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct proxy_key *k = &keys[i];
		if (k->reloadable)
			continue;
		const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
		int differs = k->type == PK_STR   ? strcmp(*(char *const *)pa, *(char *const *)pb)
		              : k->type == PK_INT ? *(const long *)pa != *(const long *)pb
		                                  : *(const double *)pa != *(const double *)pb;
		if (differs) {
			if (out->len)
				sbuf_puts(out, ", ");
			sbuf_printf(out, "proxy.%s", k->name);
		}
	}
}

struct proxy_config *config_proxy_link_part(const struct proxy_config *p)
{
	struct proxy_config *c = rt_calloc(1, sizeof(*c));
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *from = (const char *)p + keys[i].off;
		char *to = (char *)c + keys[i].off;
		if (keys[i].type == PK_STR)
			*(char **)to = rt_strdup(keys[i].reloadable ? "" : *(char *const *)from);
		else if (keys[i].type == PK_INT)
			*(long *)to = *(const long *)from;
		else
			*(double *)to = *(const double *)from;
	}
	c->uri = rt_strdup(p->uri);
	return c;
}

int config_proxy_has_thing(const struct proxy_config *p, const char *thing)
{
	for (size_t i = 0; p && i < p->n_things; i++)
		if (strcmp(p->things[i], thing) == 0)
			return 1;
	return 0;
}
