/*
 * config: /etc/cmdgate/cmdgate.conf in three steps. libconfig parses; a
 * table of options (path, type, bounds, default, reloadable) validates and
 * fills an immutable struct config; config_check() applies the rules that
 * span fields (required keys, templates, looping reply topics).
 *
 * A struct config is never changed after config_load() returns; a reload
 * builds a new one and the engine swaps pointers.
 * Errors are "FILE:LINE: message" in err.
 */
#ifndef CMDGATE_CONFIG_H
#define CMDGATE_CONFIG_H

#include "config_proxy.h"
#include "err.h"
#include "route.h"

struct iot_cred_config {
	char *endpoint, *role_alias, *thing_name, *cert_file, *key_file, *ca_file;
};

struct cred_config {
	char *source; /* chain|static|env|profile|iot|container|imds */
	char *access_key_id;
	char *secret_access_key_file;
	char *profile;
	struct iot_cred_config iot;
};

struct config {
	struct {
		char *uri, *client_id;
		long version;
		char *username, *password_file, *ca_file, *cert_file, *key_file;
		long keepalive, qos;
		char *shared_group, *status_topic;
	} mqtt;
	struct {
		char *region, *account, *endpoint, *ca_file;
		long connect_timeout_ms, request_timeout_ms, max_attempts;
		double max_rate;
		struct cred_config credentials;
		char *control_endpoint; /* "" : the regional default (control_url) */
		double follow_max_rate; /* GetCommandExecution polls/s (SPEC 8) */
	} aws;
	struct {
		long max_inflight, queue_size, max_payload, deadline_ms, drain_ms;
		long per_target_inflight;
		double per_thing_rate;
		char *spool_dir;
		long spool_max;
		long follow_max_s;   /* how long an execution is followed */
		long follow_poll_ms; /* the polls' back-off step (SPEC 8) */

		long per_thing_queue; /* waiting requests one thing may hold */
		long follow_max;      /* executions followed at once */
		long settle_max_ms;   /* how long a call of unknown fate is settled */
	} gateway;
	struct {
		char *level, *format;
	} log;
	struct {
		char *topic;
		long interval;
		char *file;
	} stats;
	struct route *routes;
	size_t n_routes;
	struct proxy_config *proxy; /* NULL: no proxy section (SPEC 9) */
	char *endpoint_url;         /* derived: aws.endpoint or the regional default */
	char *control_url;          /* derived: aws.control_endpoint or the regional default */
	char *path;                 /* the file it came from */
};

/* Load, validate and check path. Returns NULL and fills err on failure. */
struct config *config_load(const char *path, char *err);
/* The same from text (no @include), reporting errors against name. */
struct config *config_load_text(const char *text, const char *name, char *err);
void config_free(struct config *c);

/* The default endpoint for a region. Caller frees. */
char *config_default_endpoint(const char *region);

/* Names of top-level options whose change needs a restart (not reloadable)
 * and that differ between a and b, into out (appended, comma-separated). */
void config_restart_needed(const struct config *a, const struct config *b, struct sbuf *out);

#endif
