/*
 * http: easy handles are pooled and reused so that each keeps its TLS
 * session and buffers; the multi handle's connection cache makes calls to
 * the same endpoint share connections. TCP_NODELAY is libcurl's default.
 */
#include "http.h"
#include "proxyenv.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "runtime.h"

#define POOL_MAX 256

struct http_client {
	CURLM *multi;
	CURL *pool[POOL_MAX];
	size_t npool;
	char *ca_file;
	long connect_timeout_ms;
};

struct http_client *http_client_new(const struct http_options *opt)
{
	struct http_client *c = rt_calloc(1, sizeof(*c));
	c->multi = curl_multi_init();
	if (!c->multi)
		rt_oom("curl_multi_init");
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
	c->ca_file = opt->ca_file && *opt->ca_file ? rt_strdup(opt->ca_file) : NULL;
	c->connect_timeout_ms = opt->connect_timeout_ms;
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	curl_multi_cleanup(c->multi);
	free(c->ca_file);
	free(c);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct http_call *call = ud;
	if (call->body.len + size * n > 1024 * 1024)
		return 0; /* an answer this large is not StartCommandExecution's */
	sbuf_append(&call->body, p, size * n);
	return size * n;
}

static void copy_header_value(char *dst, size_t n, const char *line, size_t len, size_t skip)
{
	const char *v = line + skip;
	size_t vl = len - skip;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	if (vl >= n)
		vl = n - 1;
	memcpy(dst, v, vl);
	dst[vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct http_call *call = ud;
	size_t len = size * n;
	if (len > 17 && strncasecmp(p, "x-amzn-ErrorType:", 17) == 0)
		copy_header_value(call->error_type, sizeof(call->error_type), p, len, 17);
	else if (len > 5 && strncasecmp(p, "Date:", 5) == 0)
		copy_header_value(call->date, sizeof(call->date), p, len, 5);
	return len;
}

static CURL *take_easy(struct http_client *c)
{
	if (c->npool)
		return c->pool[--c->npool];
	return curl_easy_init();
}

static void give_easy(struct http_client *c, CURL *e)
{
	if (c->npool < POOL_MAX) {
		curl_easy_reset(e);
		c->pool[c->npool++] = e;
	} else {
		curl_easy_cleanup(e);
	}
}

/* Options every call has; the caller adds the method's own. */
static void common_options(struct http_client *c, struct http_call *call, CURL *e, const char *url,
                           struct curl_slist *headers, long timeout_ms)
{
	call->easy = e;
	call->headers = headers;
	call->status = 0;
	sbuf_init(&call->body);
	call->error_type[0] = call->date[0] = call->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, call);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	proxyenv_apply(e, url, 0); /* AWS endpoints: the proxy variables, as the SDKs */
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
}

static enum cg_err add_call(struct http_client *c, struct http_call *call, CURL *e, char *err)
{
	CURLMcode mc = curl_multi_add_handle(c->multi, e);
	if (mc != CURLM_OK) {
		give_easy(c, e);
		call->easy = NULL;
		curl_slist_free_all(call->headers);
		call->headers = NULL;
		sbuf_clean_up(&call->body);
		return cg_fail(err, CG_INTERNAL, "curl_multi_add_handle: %s",
		               curl_multi_strerror(mc));
	}
	return CG_OK;
}

struct curl_slist *http_header_add(struct curl_slist *l, const char *name, const char *value)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s: %s", name, value);
	l = curl_slist_append(l, b.data);
	sbuf_wipe(&b);
	return l;
}

/* An easy handle set up for call (headers taken); NULL when none. */
static CURL *begin(struct http_client *c, struct http_call *call, const char *url,
                   struct curl_slist *headers, long timeout_ms)
{
	CURL *e = take_easy(c);
	if (!e) {
		curl_slist_free_all(headers);
		return NULL;
	}
	common_options(c, call, e, url, headers, timeout_ms);
	return e;
}

enum cg_err http_start(struct http_client *c, struct http_call *call, const struct http_request *rq,
                       char *err)
{
	CURL *e = begin(c, call, rq->url, rq->headers, rq->timeout_ms);
	if (!e)
		return cg_fail(err, CG_NOMEM, "curl_easy_init failed");
	if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body.ptr);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body.len);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	call->on_done = rq->done;
	call->on_done_ctx = rq->ctx;
	return add_call(c, call, e, err);
}

void http_headers_free(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

static void release(struct http_client *c, struct http_call *call)
{
	if (call->easy) {
		curl_multi_remove_handle(c->multi, call->easy);
		give_easy(c, call->easy);
		call->easy = NULL;
	}
	http_headers_free(call->headers);
	call->headers = NULL;
}

void http_abort(struct http_client *c, struct http_call *call)
{
	release(c, call);
	sbuf_clean_up(&call->body);
}

void http_call_free(struct http_call *call)
{
	sbuf_clean_up(&call->body);
}

/* curl's codes -> our classes: the one place they are interpreted. */
static enum cg_err classify(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return CG_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return CG_TIMEOUT;
	case CURLE_OUT_OF_MEMORY:
		return CG_NOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return CG_CONFIG;
	default:
		return CG_TRANSPORT; /* connect, DNS, TLS, reset, partial read */
	}
}

void http_client_run(struct http_client *c, int wake_fd, int timeout_ms)
{
	struct curl_waitfd extra = {.fd = wake_fd, .events = CURL_WAIT_POLLIN};
	int running = 0;
	curl_multi_poll(c->multi, &extra, wake_fd >= 0 ? 1 : 0, timeout_ms, NULL);
	curl_multi_perform(c->multi, &running);
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct http_call *call = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
		call->result = classify(m->data.result);
		/* Refused, unresolvable or timed out before the request went out
		 * (connecting, TLS): the endpoint cannot have seen it, so waiting and
		 * trying again costs nothing. A reused connection has no connect
		 * time: what tells is whether request bytes were written. */
		long sent = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_REQUEST_SIZE, &sent);
		call->not_sent = m->data.result == CURLE_COULDNT_CONNECT ||
		                 m->data.result == CURLE_COULDNT_RESOLVE_HOST ||
		                 (m->data.result == CURLE_OPERATION_TIMEDOUT && sent == 0);
		if (call->result == CG_OK)
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &call->status);
		else if (!call->errbuf[0])
			snprintf(call->errbuf, sizeof(call->errbuf), "%s",
			         curl_easy_strerror(m->data.result));
		release(c, call);
		call->on_done(call, call->on_done_ctx);
	}
}
