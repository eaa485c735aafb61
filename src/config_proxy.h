/*
 * config_proxy: the `proxy` section (SPEC 9): the LAN machines cmdgate
 * stands in for on AWS IoT Core, and how it connects for them. Parsed and
 * checked like the rest of the file (FILE:LINE errors, defaults from a
 * table); things_file entries are reported as THINGS_FILE:LINE.
 *
 * Reload: the thing list (things, things_file), local_prefix, connect_rate
 * and update_timeout_ms change on SIGHUP (links of the things that stay are
 * not touched), and a section added or removed starts or stops the proxy;
 * the other keys (endpoint, identity, version, session_expiry, keepalive)
 * are the links' own and need a restart.
 */
#ifndef CMDGATE_CONFIG_PROXY_H
#define CMDGATE_CONFIG_PROXY_H

#include <libconfig.h>
#include <stddef.h>

#include "err.h"
#include "route.h"
#include "sbuf.h"

#define PROXY_DEFAULT_PORT 8883

struct proxy_config {
	char *endpoint; /* as written */
	char *uri;      /* derived: ssl://host:port */
	char *ca_file, *cert_file, *key_file;
	char *identity_dir;
	char *things_file;
	char *local_prefix;
	long version, session_expiry, keepalive, update_timeout_ms;
	double connect_rate;
	char **things; /* things, then things_file's, no duplicate */
	size_t n_things;
};

/* Parse and check the section (NULL in *out, and CG_OK, when the file has
 * none), with the rule against the rest of the file: no route's request
 * filter may match the proxy's local topics. */
enum cg_err config_proxy_load(const config_t *cfg, const char *file, const struct route *routes,
                              size_t n_routes, struct proxy_config **out, char *err);
void config_proxy_free(struct proxy_config *p);

/* The certificate and key of a thing (identity_dir/<thing>/..., or the
 * shared pair), into cert and key (each n bytes). */
void config_proxy_identity(const struct proxy_config *p, const char *thing, char *cert, char *key,
                           size_t n);

/* Keys that differ and need a restart, appended to out (comma-separated);
 * the engine's reload logs them with the rest (config_restart_needed). */
void config_proxy_restart_needed(const struct proxy_config *a, const struct proxy_config *b,
                                 struct sbuf *out);
/* A copy of what a link is made from (endpoint, identity, version,
 * session_expiry, keepalive; no things): links added by a reload use the
 * values the proxy started with, as the other links do. Free with
 * config_proxy_free. */
struct proxy_config *config_proxy_link_part(const struct proxy_config *p);
/* Whether thing is in p's list. */
int config_proxy_has_thing(const struct proxy_config *p, const char *thing);

#endif
