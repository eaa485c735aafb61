/*
 * aws_call: every call to AWS, one way (starts, polls, and whatever comes
 * next). aws-c-auth's shape: what is signed (struct aws_signable: method,
 * path, query, headers, payload) apart from how (struct aws_endpoint: the
 * endpoint, region and service, with its cache of derived keys) and the
 * signer (sigv4.c, pure). aws_call_start signs with a fresh date, the one
 * clock offset of the struct aws_client applied, and starts the HTTP call;
 * aws_call_read is the one place a finished call is read into a struct
 * call_result for attempt_decide (attempt.h), which decides for every call.
 *
 * A struct aws_call is its owner's handle for its calls, opaque (a request
 * or a follow holds one and starts it again for each attempt), so nothing
 * outside this file and http.c knows libcurl. Engine thread only.
 */
#ifndef CMDGATE_AWS_CALL_H
#define CMDGATE_AWS_CALL_H

#include <stdint.h>

#include "attempt.h"
#include "awserr.h"
#include "credentials.h"
#include "err.h"
#include "http.h"
#include "sigv4.h"
#include "view.h"

/* What every call shares. */
struct aws_client {
	struct http_client *http;
	struct cred_provider *creds;
	long skew_s; /* AWS's clock minus ours, learned from a Date: one for every call */
};

/* Where calls to one service go and how they are signed (strings owned). */
struct aws_endpoint {
	char *origin; /* "scheme://host[:port]" */
	char *host;   /* "host[:port]", the signed host header */
	char *prefix; /* the endpoint's own path, without a trailing '/'; "" */
	char *region;
	const char *service;         /* a literal: "iot-jobs-data", "iot" */
	struct sigv4_key_cache keys; /* the last derived key (wiped when replaced) */
};

/* url: "scheme://host[:port][/path]". Set again on a reload (the key cache
 * is kept when region and service stay). */
void aws_endpoint_set(struct aws_endpoint *ep, const char *url, const char *region,
                      const char *service);
/* The credentials changed: forget the derived key. */
void aws_endpoint_forget_keys(struct aws_endpoint *ep);
void aws_endpoint_clean_up(struct aws_endpoint *ep);

/* What is signed. Views: kept alive by the caller until the call ends
 * (libcurl does not copy the payload). */
struct aws_signable {
	const char *method;       /* "POST", "GET" */
	const char *path;         /* under the endpoint's prefix, already canonical */
	const char *query;        /* canonical query without '?'; NULL: none */
	const char *content_type; /* signed when set; NULL: none */
	struct view payload;      /* the exact body */
};

struct aws_call;
typedef void (*aws_call_done_fn)(struct aws_call *call, void *ctx);

/* A handle for owner's calls (a request, a follow): done(call, ctx)
 * receives each finished one, aws_call_owner(call) says whose it is. */
struct aws_call *aws_call_new(aws_call_done_fn done, void *ctx, void *owner);
void *aws_call_owner(const struct aws_call *call);
/* Aborts a call in flight (c: the client it was started on) and frees. */
void aws_call_free(struct aws_client *c, struct aws_call *call);

/*
 * Sign s for ep and start it on call (free, or finished: its last answer is
 * dropped), with timeout_ms for the whole call. CG_CREDENTIALS when no
 * credentials can be had; another code when the call cannot start.
 */
enum cg_err aws_call_start(struct aws_client *c, struct aws_endpoint *ep,
                           const struct aws_signable *s, long timeout_ms, struct aws_call *call,
                           char *err);
/* Abort a call in flight (nothing follows); the handle stays usable. */
void aws_call_abort(struct aws_client *c, struct aws_call *call);
int aws_call_in_flight(const struct aws_call *call);

/* Read a finished call: res for attempt_decide; ae filled for a non-2xx
 * answer (res->aws points to it). */
void aws_call_read(const struct aws_call *call, struct awserr *ae, struct call_result *res);
/* The finished call's body (a 2xx answer's). */
struct view aws_call_body(const struct aws_call *call);
/* The credentials the call was signed with (for cred_provider_invalidate). */
uint64_t aws_call_cred_generation(const struct aws_call *call);

#endif
