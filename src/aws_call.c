/*
 * aws_call: sign, start and read one call to AWS (see aws_call.h). The
 * handle keeps the libcurl transfer and the credentials generation it was
 * signed with; its body is dropped when the handle starts again.
 */
#include "aws_call.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime.h"

struct aws_call {
	struct http_call http;
	int in_flight;
	uint64_t cred_generation;
	aws_call_done_fn done;
	void *ctx, *owner;
};

void aws_endpoint_set(struct aws_endpoint *ep, const char *url, const char *region,
                      const char *service)
{
	int same_key = ep->region && strcmp(ep->region, region) == 0 && ep->service == service;
	free(ep->origin);
	free(ep->host);
	free(ep->prefix);
	free(ep->region);
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url; /* config checks the scheme */
	size_t n = strcspn(auth, "/?#");
	ep->host = rt_memdup(auth, n);
	ep->origin = rt_memdup(url, (size_t)(auth - url) + n);
	size_t pl = auth[n] == '/' ? strcspn(auth + n, "?#") : 0;
	while (pl > 0 && auth[n + pl - 1] == '/')
		pl--;
	ep->prefix = rt_memdup(auth + n, pl);
	ep->region = rt_strdup(region);
	ep->service = service;
	if (!same_key)
		aws_endpoint_forget_keys(ep);
}

void aws_endpoint_forget_keys(struct aws_endpoint *ep)
{
	sigv4_key_cache_clean_up(&ep->keys);
}

void aws_endpoint_clean_up(struct aws_endpoint *ep)
{
	free(ep->origin);
	free(ep->host);
	free(ep->prefix);
	free(ep->region);
	aws_endpoint_forget_keys(ep);
	memset(ep, 0, sizeof(*ep));
}

struct aws_call *aws_call_new(aws_call_done_fn done, void *ctx, void *owner)
{
	struct aws_call *call = rt_calloc(1, sizeof(*call));
	call->done = done;
	call->ctx = ctx;
	call->owner = owner;
	return call;
}

void *aws_call_owner(const struct aws_call *call)
{
	return call->owner;
}

void aws_call_abort(struct aws_client *c, struct aws_call *call)
{
	if (call->in_flight)
		http_abort(c->http, &call->http);
	call->in_flight = 0;
}

void aws_call_free(struct aws_client *c, struct aws_call *call)
{
	if (!call)
		return;
	aws_call_abort(c, call);
	http_call_free(&call->http);
	free(call);
}

int aws_call_in_flight(const struct aws_call *call)
{
	return call->in_flight;
}

static void on_http_done(struct http_call *h, void *ctx)
{
	struct aws_call *call = ctx;
	(void)h;
	call->in_flight = 0;
	call->done(call, call->ctx);
}

/* The signed header list of s, authorization last. */
static struct curl_slist *signed_headers(struct aws_endpoint *ep, const struct aws_signable *s,
                                         const struct sigv4_credentials *cred, const char *path,
                                         const char *amz_date)
{
	char hash[65];
	sigv4_sha256_hex(s->payload.ptr ? s->payload.ptr : "", s->payload.len, hash);
	struct sigv4_header h[4];
	size_t nh = 0;
	if (s->content_type)
		h[nh++] = (struct sigv4_header){"content-type", s->content_type};
	h[nh++] = (struct sigv4_header){"host", ep->host};
	h[nh++] = (struct sigv4_header){"x-amz-date", amz_date};
	if (cred->session_token && *cred->session_token)
		h[nh++] = (struct sigv4_header){"x-amz-security-token", cred->session_token};
	struct sigv4_request sr = {.method = s->method,
	                           .path = path,
	                           .query = s->query,
	                           .headers = h,
	                           .n_headers = nh,
	                           .payload_hash = hash};
	struct sbuf authz;
	sbuf_init(&authz);
	sigv4_authorize(&sr, cred, ep->region, ep->service, amz_date, &ep->keys, &authz);
	struct curl_slist *hl = NULL;
	for (size_t i = 0; i < nh; i++)
		hl = http_header_add(hl, h[i].name, h[i].value);
	hl = http_header_add(hl, "authorization", authz.data);
	if (strcmp(s->method, "POST") == 0)
		hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
	hl = curl_slist_append(hl, "Accept: application/json");
	sbuf_wipe(&authz);
	return hl;
}

enum cg_err aws_call_start(struct aws_client *c, struct aws_endpoint *ep,
                           const struct aws_signable *s, long timeout_ms, struct aws_call *call,
                           char *err)
{
	struct sigv4_credentials cred;
	enum cg_err rc = cred_provider_get(c->creds, &cred, err);
	if (rc != CG_OK)
		return rc;
	call->cred_generation = cred.generation;
	char amz_date[SIGV4_DATE_LEN + 1];
	if (sigv4_format_date(rt_wall_s() + c->skew_s, amz_date) != 0)
		return cg_fail(err, CG_INTERNAL, "the clock (corrected by %lds) is out of range",
		               (long)c->skew_s);
	http_call_free(&call->http); /* the last answer */
	struct sbuf path, url;
	sbuf_init(&path);
	sbuf_init(&url);
	sbuf_puts(&path, ep->prefix); /* appended, not printed: this runs for every call */
	sbuf_puts(&path, s->path);
	sbuf_puts(&url, ep->origin);
	sbuf_append(&url, path.data, path.len);
	if (s->query) {
		sbuf_putc(&url, '?');
		sbuf_puts(&url, s->query);
	}
	struct http_request rq = {
	    .method = s->method,
	    .url = url.data,
	    .headers = signed_headers(ep, s, &cred, path.data, amz_date),
	    .body = s->payload,
	    .timeout_ms = timeout_ms,
	    .done = on_http_done,
	    .ctx = call,
	};
	rc = http_start(c->http, &call->http, &rq, err);
	call->in_flight = rc == CG_OK;
	sbuf_clean_up(&path);
	sbuf_clean_up(&url);
	return rc;
}

void aws_call_read(const struct aws_call *call, struct awserr *ae, struct call_result *res)
{
	const struct http_call *h = &call->http;
	memset(res, 0, sizeof(*res));
	res->transport = h->result;
	res->not_sent = h->not_sent;
	res->transport_msg = h->errbuf;
	res->http_status = h->status;
	if (h->result != CG_OK || (h->status >= 200 && h->status < 300))
		return;
	awserr_parse((int)h->status, h->error_type, h->body.data, h->body.len, ae);
	res->aws = ae;
	res->local_time = rt_wall_s();
	res->have_server_time = awserr_http_date(h->date, &res->server_time) == 0;
}

struct view aws_call_body(const struct aws_call *call)
{
	return view_of(call->http.body.data, call->http.body.len);
}

uint64_t aws_call_cred_generation(const struct aws_call *call)
{
	return call->cred_generation;
}
