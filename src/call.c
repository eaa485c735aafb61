/* call: see call.h. */
#include "call.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "awserr.h"
#include "log.h"
#include "runtime.h"

void call_endpoint_set(struct call_endpoint *ep, const char *endpoint_url)
{
	call_endpoint_clean_up(ep);
	const char *auth = strstr(endpoint_url, "://");
	auth = auth ? auth + 3 : endpoint_url; /* config checks the scheme */
	size_t n = strcspn(auth, "/?#");
	ep->host = rt_memdup(auth, n);
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s/command-executions", auth[n] == '/' ? auth + n : "");
	ep->url_path = sbuf_steal(&b);
	sbuf_init(&b);
	sbuf_printf(&b, "%.*s%s", (int)(auth - endpoint_url + (long)n), endpoint_url, ep->url_path);
	ep->url = sbuf_steal(&b);
}

void call_endpoint_clean_up(struct call_endpoint *ep)
{
	free(ep->host);
	free(ep->url);
	free(ep->url_path);
	ep->host = ep->url = ep->url_path = NULL;
}

enum cg_err call_start(const struct call_env *env, struct request *r, uint64_t now_ms, char *err)
{
	struct sigv4_credentials cred;
	enum cg_err rc = cred_provider_get(env->creds, &cred, err);
	if (rc != CG_OK)
		return rc;
	r->cred_generation = cred.generation;
	char amz_date[SIGV4_DATE_LEN + 1];
	if (sigv4_format_date(rt_wall_s() + env->skew_s, amz_date) != 0)
		return cg_fail(err, CG_INTERNAL, "the clock (corrected by %lds) is out of range",
		               (long)env->skew_s);
	char hash[65];
	sigv4_sha256_hex(r->tr.body.data, r->tr.body.len, hash);
	struct sigv4_header h[4] = {
	    {"content-type", "application/json"},
	    {"host", env->ep->host},
	    {"x-amz-date", amz_date},
	    {"x-amz-security-token", cred.session_token},
	};
	size_t nh = cred.session_token && *cred.session_token ? 4 : 3;
	struct sigv4_request sr = {"POST", env->ep->url_path, NULL, h, nh, hash};
	struct sbuf authz;
	sbuf_init(&authz);
	sigv4_authorize(&sr, &cred, env->region, CALL_SERVICE, amz_date, env->keys, &authz);

	struct curl_slist *hl = NULL;
	for (size_t i = 0; i < nh; i++)
		hl = http_header_add(hl, h[i].name, h[i].value);
	hl = http_header_add(hl, "authorization", authz.data);
	hl = curl_slist_append(hl, "Expect:");
	hl = curl_slist_append(hl, "Accept: application/json");
	sbuf_wipe(&authz);

	uint64_t left = r->deadline_ms > now_ms ? r->deadline_ms - now_ms : 1;
	long timeout = env->request_timeout_ms;
	if ((uint64_t)timeout > left)
		timeout = (long)left;
	r->call.user = r;
	attempt_begin(&r->at);
	log_debug("call token=%s attempt=%u thing=%s", r->tr.client_token, r->at.attempts,
	          r->thing);
	return http_post(env->http, &r->call, env->ep->url, hl, r->tr.body.data, r->tr.body.len,
	                 timeout, err);
}

void call_read(struct request *r, struct awserr *ae, struct call_result *res)
{
	const struct http_call *c = &r->call;
	memset(res, 0, sizeof(*res));
	res->transport = c->result;
	res->not_sent = c->not_sent;
	res->transport_msg = c->errbuf;
	res->http_status = c->status;
	if (c->result != CG_OK || (c->status >= 200 && c->status < 300))
		return;
	awserr_parse((int)c->status, c->error_type, c->body.data, c->body.len, ae);
	res->aws = ae;
	res->local_time = rt_wall_s();
	res->have_server_time = awserr_http_date(c->date, &res->server_time) == 0;
}
