/*
 * follow_poll: one GetCommandExecution poll as HTTP, as call.c is for a
 * StartCommandExecution. Signs the GET with SigV4 for service "iot" (fresh
 * date, the clock offset applied, the ARN percent-encoded in the query the
 * same way for the URL and the signature), hands it to libcurl with its own
 * completion callback, and reads the finished call into a struct
 * follow_poll_result. Decides nothing: follow.c's rules and follower.c do.
 */
#ifndef CMDGATE_FOLLOW_POLL_H
#define CMDGATE_FOLLOW_POLL_H

#include <stdint.h>
#include <time.h>

#include "credentials.h"
#include "follow.h"
#include "http.h"
#include "sigv4.h"

#define FOLLOW_SERVICE "iot"

/* Where polls go, from aws.control_endpoint (strings owned). */
struct follow_endpoint {
	char *origin; /* "scheme://host[:port]" */
	char *host;   /* "host[:port]", the signed host header */
	char *prefix; /* the endpoint's own path, without a trailing '/'; "" */
};

void follow_endpoint_set(struct follow_endpoint *ep, const char *control_url);
void follow_endpoint_clean_up(struct follow_endpoint *ep);

/* How polls go; views owned by the follower. */
struct follow_poll_env {
	struct http_client *http;
	struct cred_provider *creds;
	struct sigv4_key_cache *keys;
	const struct follow_endpoint *ep;
	const char *region;
	long skew_s;
	long timeout_ms;
};

/*
 * Sign and start GET {prefix}{path}?{query} (path and query from
 * follow_request_path/_query) on call; done(call, ctx) receives it.
 * *cred_generation: the credentials used. CG_CREDENTIALS when none can be
 * had; another code when the call cannot start.
 */
enum cg_err follow_poll_start(const struct follow_poll_env *env, struct http_call *call,
                              const char *path, const char *query, http_done_fn done, void *ctx,
                              uint64_t *cred_generation, char *err);

/* A finished poll. */
struct follow_poll_result {
	int answered;                /* 2xx with a readable body: answer is set */
	struct follow_answer answer; /* owned: follow_poll_result_clean_up */
	int http_status;             /* 0: no HTTP answer */
	char code[128];              /* the error code (AWS's, or a gateway code) */
	int retryable;
	int throttled;      /* 429 / ThrottlingException */
	int clock_skew;     /* re-sign with server_date */
	time_t server_date; /* valid when clock_skew */
	int expired_token;  /* refresh the credentials and re-sign */
};

/* Read call (finished) with body (taken from it by the caller). */
void follow_poll_read(const struct http_call *call, const struct sbuf *body,
                      struct follow_poll_result *res);
void follow_poll_result_clean_up(struct follow_poll_result *res);

#endif
