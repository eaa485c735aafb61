/*
 * call: one request's call to AWS, as HTTP. Signs the exact body with
 * SigV4 (fresh date, the clock offset applied), hands the POST to libcurl,
 * and reads the finished call into a struct call_result for attempt.c.
 * Decides nothing.
 */
#ifndef CMDGATE_CALL_H
#define CMDGATE_CALL_H

#include <stdint.h>

#include "attempt.h"
#include "credentials.h"
#include "http.h"
#include "request.h"
#include "sigv4.h"

#define CALL_SERVICE "iot-jobs-data"

/* Where calls go, from aws.endpoint (strings owned). */
struct call_endpoint {
	char *host;     /* "host[:port]" */
	char *url;      /* endpoint + "/command-executions" */
	char *url_path; /* its path */
};

/* Derive the call URL from an endpoint URL ("scheme://host[:port][/path]"). */
void call_endpoint_set(struct call_endpoint *ep, const char *endpoint_url);
void call_endpoint_clean_up(struct call_endpoint *ep);

/* How calls go; views owned by the engine. */
struct call_env {
	struct http_client *http;
	struct cred_provider *creds;
	struct sigv4_key_cache *keys;
	const struct call_endpoint *ep;
	const char *region;
	long skew_s; /* server clock minus ours */
	long request_timeout_ms;
};

/* Sign r's body and start the POST (counts an attempt). CG_CREDENTIALS when
 * no credentials can be had; another code when the call cannot start. */
enum cg_err call_start(const struct call_env *env, struct request *r, uint64_t now_ms, char *err);

/* Read r's finished call. ae is filled for a non-2xx response and
 * res->aws points to it. */
void call_read(struct request *r, struct awserr *ae, struct call_result *res);

#endif
