/*
 * call: one request's calls to AWS. Signs the body, hands the POST to
 * libcurl, and turns the answer into an outcome: accepted, a retry (same
 * body, same token; throttling, 5xx, transport, clock skew, expired token)
 * or a final rejection.
 */
#include "engine_priv.h"

#include <openssl/rand.h>

static uint32_t random_u32(void)
{
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)rand();
	return r;
}

/* ---- calls -------------------------------------------------------------- */

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, name);
	sbuf_puts(&b, ": ");
	sbuf_puts(&b, value);
	l = curl_slist_append(l, b.data);
	sbuf_wipe(&b);
	return l;
}

/* Sign r's body and hand the POST to libcurl. */
static enum cg_err start_call(struct engine *e, struct request *r, uint64_t now, char *err)
{
	struct sigv4_credentials cred;
	enum cg_err rc = cred_provider_get(e->creds, &cred, err);
	if (rc != CG_OK)
		return rc;
	r->cred_generation = cred.generation;
	char amz_date[SIGV4_DATE_LEN + 1];
	sigv4_format_date(time(NULL) + e->skew_s, amz_date);
	char hash[65];
	sigv4_sha256_hex(r->tr.body.data, r->tr.body.len, hash);
	struct sigv4_header h[4] = {
	    {"content-type", "application/json"},
	    {"host", e->host},
	    {"x-amz-date", amz_date},
	    {"x-amz-security-token", cred.session_token},
	};
	size_t nh = cred.session_token && *cred.session_token ? 4 : 3;
	struct sigv4_request sr = {"POST", e->url_path, NULL, h, nh, hash};
	struct sbuf authz;
	sbuf_init(&authz);
	sigv4_authorize(&sr, &cred, e->cfg->aws.region, SERVICE, amz_date, &e->keys, &authz);

	struct curl_slist *hl = NULL;
	for (size_t i = 0; i < nh; i++)
		hl = add_header(hl, h[i].name, h[i].value);
	hl = add_header(hl, "authorization", authz.data);
	hl = curl_slist_append(hl, "Expect:");
	hl = curl_slist_append(hl, "Accept: application/json");
	sbuf_wipe(&authz);

	uint64_t left = r->deadline_ms > now ? r->deadline_ms - now : 1;
	long timeout = e->cfg->aws.request_timeout_ms;
	if ((uint64_t)timeout > left)
		timeout = (long)left;
	r->call.user = r;
	r->attempts++;
	log_debug("call token=%s attempt=%u thing=%s", r->tr.client_token, r->attempts, r->thing);
	return http_post(e->http, &r->call, e->url, hl, r->tr.body.data, r->tr.body.len, timeout,
	                 err);
}

/* Try to start r now; on a local failure it is answered. */
void launch(struct engine *e, struct request *r, uint64_t now)
{
	char err[ERR_LEN] = "";
	enum cg_err rc = start_call(e, r, now, err);
	if (rc == CG_OK) {
		r->state = RS_FLIGHT;
		list_push(&e->flight, r);
	} else if (rc == CG_CREDENTIALS) {
		finish_gateway(e, r, GW_CREDENTIALS_UNAVAILABLE, err);
	} else {
		log_error("cannot start call: %s", err);
		finish_gateway(e, r, GW_INTERNAL_ERROR, err);
	}
}

/* Schedule a retry of r if attempts and deadline allow; else answer it.
 * A call that never reached the endpoint does not use up an attempt: while
 * AWS is unreachable, requests wait (with backoff) until their deadline. */
static void retry_or_finish(struct engine *e, struct request *r, uint64_t now, int not_sent)
{
	if (not_sent) {
		r->attempts--;
		r->waits++;
	}
	unsigned step = r->attempts + r->waits;
	uint64_t delay =
	    backoff_full_jitter(step ? step : 1, RETRY_BASE_MS, RETRY_CAP_MS, random_u32());
	if (not_sent && now + delay >= r->deadline_ms && now + 50 < r->deadline_ms)
		delay = r->deadline_ms - now - 50; /* one last try just before the deadline */
	if (r->attempts >= (unsigned)e->cfg->aws.max_attempts || now + delay >= r->deadline_ms ||
	    e->draining) {
		finish_last_error(e, r);
		return;
	}
	e->stats.retries++;
	http_call_free(&r->call);
	r->next_try_ms = now + delay;
	r->state = RS_RETRY;
	list_push(&e->retry, r);
}

static void on_response(struct engine *e, struct request *r, uint64_t now)
{
	struct http_call *c = &r->call;
	if (c->status >= 200 && c->status < 300) {
		char exec_id[256], err[ERR_LEN];
		ratelimit_on_success(&e->rate);
		if (awserr_execution_id(c->body.data, c->body.len, exec_id, sizeof(exec_id),
		                           err) != CG_OK) {
			finish_gateway(e, r, GW_INTERNAL_ERROR, err);
			return;
		}
		struct outcome o = {.accepted = 1,
		                    .execution_id = exec_id,
		                    .id = r->tr.id,
		                    .client_token = r->tr.client_token};
		finish(e, r, &o);
		return;
	}
	struct awserr ae;
	awserr_parse((int)c->status, c->error_type, c->body.data, c->body.len, &ae);
	time_t server;
	if (ae.clock_skew && !r->skew_retried && awserr_http_date(c->date, &server) == 0) {
		e->skew_s = (long)(server - time(NULL));
		r->skew_retried = 1;
		r->attempts--; /* a re-signed call is not a new attempt */
		http_call_free(c);
		log_warn("clock skew: AWS is %+lds from local time; re-signing", e->skew_s);
		r->next_try_ms = now;
		r->state = RS_RETRY;
		list_push(&e->retry, r);
		return;
	}
	if (ae.expired_token && !r->token_retried) {
		/* One refresh and one re-signed attempt (not counted as an attempt). */
		cred_provider_invalidate(e->creds, r->cred_generation);
		r->token_retried = 1;
		r->attempts--;
		http_call_free(c);
		r->next_try_ms = now + 300;
		r->state = RS_RETRY;
		list_push(&e->retry, r);
		return;
	}
	if (ae.throttled)
		ratelimit_on_throttle(&e->rate, now);
	if (!ae.retryable) {
		finish_aws(e, r, &ae);
		return;
	}
	r->last_aws = ae;
	r->last_was_aws = 1;
	retry_or_finish(e, r, now, 0);
}

void on_done(struct http_call *call, void *ctx)
{
	struct engine *e = ctx;
	struct request *r = call->user;
	uint64_t now = now_ms();
	list_remove(&e->flight, r);
	if (call->result == CG_OK) {
		on_response(e, r, now);
	} else if (now >= r->deadline_ms) {
		finish_gateway(e, r, GW_EXPIRED, "the deadline passed before AWS answered");
	} else {
		snprintf(r->last_err, sizeof(r->last_err), "endpoint unreachable: %.180s (%s)",
		         call->errbuf, cg_strerror(call->result));
		r->last_was_aws = 0;
		log_debug("call token=%s failed: %s", r->tr.client_token, r->last_err);
		if (cg_can_retry(call->result))
			retry_or_finish(e, r, now, call->not_sent);
		else
			finish_last_error(e, r); /* e.g. a malformed endpoint URL */
	}
}
