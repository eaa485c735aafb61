/*
 * http: the libcurl edge. One struct http_client owns a multi handle (and so
 * its connection cache: calls to the endpoint reuse TLS connections); it is
 * used from the engine thread only. A struct http_call is one request;
 * each finished call goes to its own completion callback from
 * http_client_run(), with the error class already translated from curl's
 * code (the only place curl codes are looked at).
 */
#ifndef CMDGATE_HTTP_H
#define CMDGATE_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "err.h"
#include "sbuf.h"
#include "view.h"

struct http_call;
typedef void (*http_done_fn)(struct http_call *call, void *ctx);

struct http_call {
	CURL *easy;
	struct curl_slist *headers;
	long status;          /* HTTP status, 0 when no response */
	struct sbuf body;     /* response body */
	char error_type[160]; /* x-amzn-ErrorType */
	char date[64];        /* Date */
	char errbuf[CURL_ERROR_SIZE];
	enum cg_err result; /* CG_OK: a response arrived (any status) */
	int not_sent;       /* failed before the request could reach the endpoint */
	/* its completion (set by http_start) */
	http_done_fn on_done;
	void *on_done_ctx;
};

struct http_options {
	const char *ca_file; /* NULL or "": system store */
	long connect_timeout_ms;
};

struct http_client;

struct http_client *http_client_new(const struct http_options *opt);
void http_client_free(struct http_client *c);

/* Append "name: value" to a header list; the text is wiped after the copy
 * (it may carry a signature or a session token). */
struct curl_slist *http_header_add(struct curl_slist *l, const char *name, const char *value);

struct http_request {
	const char *method; /* "GET" or "POST" */
	const char *url;
	struct curl_slist *headers; /* taken over by the call */
	struct view body;           /* POST: not copied; kept alive and unchanged until the
	                               call completes or is aborted */
	long timeout_ms;
	http_done_fn done; /* receives the finished call, and owns it afterwards */
	void *ctx;
};

/* Start rq on call. */
enum cg_err http_start(struct http_client *c, struct http_call *call, const struct http_request *rq,
                       char *err);
/* Abort a started call; its memory is released. */
void http_abort(struct http_client *c, struct http_call *call);

/* Wait up to timeout_ms for traffic or for wake_fd to become readable, then
 * deliver each finished call to its done callback. */
void http_client_run(struct http_client *c, int wake_fd, int timeout_ms);
/* Wipe (they may carry an Authorization value or a session token) and free
 * a header list. */
void http_headers_free(struct curl_slist *h);
/* Release a finished call's memory. */
void http_call_free(struct http_call *call);

#endif
