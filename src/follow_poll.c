/* follow_poll: sign, start and read one GetCommandExecution. */
#include "follow_poll.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awserr.h"
#include "log.h"
#include "runtime.h"

void follow_endpoint_set(struct follow_endpoint *ep, const char *control_url)
{
	follow_endpoint_clean_up(ep);
	const char *u = control_url;
	const char *sep = strstr(u, "://");
	const char *auth = sep ? sep + 3 : u;
	size_t n = strcspn(auth, "/?#");
	ep->host = rt_memdup(auth, n);
	ep->origin = rt_memdup(u, (size_t)(auth - u) + n);
	size_t pl = auth[n] == '/' ? strcspn(auth + n, "?#") : 0;
	while (pl > 0 && auth[n + pl - 1] == '/')
		pl--;
	ep->prefix = rt_memdup(auth + n, pl);
}

void follow_endpoint_clean_up(struct follow_endpoint *ep)
{
	free(ep->origin);
	free(ep->host);
	free(ep->prefix);
	ep->origin = ep->host = ep->prefix = NULL;
}

enum cg_err follow_poll_start(const struct follow_poll_env *env, struct http_call *call,
                              const char *path, const char *query, http_done_fn done, void *ctx,
                              uint64_t *cred_generation, char *err)
{
	struct sigv4_credentials cred;
	enum cg_err rc = cred_provider_get(env->creds, &cred, err);
	if (rc != CG_OK)
		return rc;
	*cred_generation = cred.generation;
	char amz_date[SIGV4_DATE_LEN + 1];
	if (sigv4_format_date(rt_wall_s() + env->skew_s, amz_date) != 0)
		return cg_fail(err, CG_INTERNAL, "the clock (corrected by %lds) is out of range",
		               (long)env->skew_s);
	char hash[65];
	sigv4_sha256_hex("", 0, hash);
	struct sbuf full, url, authz;
	sbuf_init(&full);
	sbuf_init(&url);
	sbuf_init(&authz);
	sbuf_printf(&full, "%s%s", env->ep->prefix, path);
	sbuf_printf(&url, "%s%s?%s", env->ep->origin, full.data, query);
	struct sigv4_header h[3] = {
	    {"host", env->ep->host},
	    {"x-amz-date", amz_date},
	    {"x-amz-security-token", cred.session_token},
	};
	size_t nh = cred.session_token && *cred.session_token ? 3 : 2;
	struct sigv4_request sr = {"GET", full.data, query, h, nh, hash};
	sigv4_authorize(&sr, &cred, env->region, FOLLOW_SERVICE, amz_date, env->keys, &authz);
	struct curl_slist *hl = NULL;
	for (size_t i = 0; i < nh; i++)
		hl = http_header_add(hl, h[i].name, h[i].value);
	hl = http_header_add(hl, "authorization", authz.data);
	hl = curl_slist_append(hl, "Accept: application/json");
	sbuf_wipe(&authz);
	long timeout = env->timeout_ms > 0 ? env->timeout_ms : 10000;
	rc = http_get(env->http, call, url.data, hl, timeout, done, ctx, err);
	sbuf_clean_up(&full);
	sbuf_clean_up(&url);
	return rc;
}

void follow_poll_read(const struct http_call *call, const struct sbuf *body,
                      struct follow_poll_result *res)
{
	memset(res, 0, sizeof(*res));
	if (call->result != CG_OK) { /* never answered: the gateway's code */
		snprintf(res->code, sizeof(res->code), "Unavailable");
		res->retryable = cg_can_retry(call->result);
		return;
	}
	res->http_status = (int)call->status;
	if (call->status >= 200 && call->status < 300) {
		char err[ERR_LEN];
		if (follow_parse_answer(body->data, body->len, &res->answer, err) == CG_OK) {
			res->answered = 1;
			return;
		}
		log_warn("GetCommandExecution: %s", err);
		snprintf(res->code, sizeof(res->code), "InternalError");
		res->retryable = 1;
		return;
	}
	struct awserr ae;
	awserr_parse((int)call->status, call->error_type, body->data, body->len, &ae);
	snprintf(res->code, sizeof(res->code), "%s", ae.code);
	res->retryable = ae.retryable;
	res->throttled = ae.throttled;
	res->expired_token = ae.expired_token;
	res->clock_skew = ae.clock_skew && awserr_http_date(call->date, &res->server_date) == 0;
}

void follow_poll_result_clean_up(struct follow_poll_result *res)
{
	follow_answer_clean_up(&res->answer);
}
