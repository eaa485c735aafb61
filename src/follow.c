/* follow: status ranks, poll schedule, messages and the GET request. */
#include "follow.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "jsonw.h"

static const char *const names[] = {NULL,     "CREATED",  "IN_PROGRESS", "SUCCEEDED",
                                    "FAILED", "REJECTED", "TIMED_OUT",   NULL};

const char *follow_status_name(enum follow_status s)
{
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

enum follow_status follow_status_parse(const char *s)
{
	for (int i = FOLLOW_CREATED; i <= FOLLOW_TIMED_OUT; i++)
		if (s && strcmp(s, names[i]) == 0)
			return (enum follow_status)i;
	return FOLLOW_UNKNOWN;
}

int follow_is_final(enum follow_status s, const char *reason_code)
{
	switch (s) {
	case FOLLOW_SUCCEEDED:
	case FOLLOW_FAILED:
	case FOLLOW_REJECTED:
		return 1;
	case FOLLOW_TIMED_OUT:
		return !reason_code || strcmp(reason_code, FOLLOW_NO_RESPONSE) != 0;
	default:
		return 0;
	}
}

/* The lifecycle rank; 0 for what is never published. */
static int rank(enum follow_status s, const char *reason_code)
{
	switch (s) {
	case FOLLOW_CREATED:
		return 1;
	case FOLLOW_IN_PROGRESS:
		return 2;
	case FOLLOW_TIMED_OUT:
		return follow_is_final(s, reason_code) ? 4 : 3;
	case FOLLOW_SUCCEEDED:
	case FOLLOW_FAILED:
	case FOLLOW_REJECTED:
		return 4;
	default:
		return 0;
	}
}

enum cg_err follow_parse_answer(const char *body, size_t len, struct follow_answer *out, char *err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return cg_fail(err, CG_INVALID, "GetCommandExecution answer is not a JSON object");
	}
	const char *status = json_string_value(json_object_get(doc, "status"));
	if (!status) {
		json_decref(doc);
		return cg_fail(err, CG_INVALID, "GetCommandExecution answer has no status");
	}
	snprintf(out->status_text, sizeof(out->status_text), "%s", status);
	out->status = follow_status_parse(status);
	json_t *reason = json_object_get(doc, "statusReason");
	if (reason && !json_is_null(reason)) {
		out->status_reason = json_incref(reason);
		const char *code = json_string_value(json_object_get(reason, "reasonCode"));
		if (code)
			snprintf(out->reason_code, sizeof(out->reason_code), "%s", code);
	}
	json_t *result = json_object_get(doc, "result");
	if (result && !json_is_null(result))
		out->result = json_incref(result);
	json_decref(doc);
	return CG_OK;
}

void follow_answer_clean_up(struct follow_answer *a)
{
	json_decref(a->status_reason);
	json_decref(a->result);
	a->status_reason = a->result = NULL;
}

uint64_t follow_poll_delay_ms(unsigned polls_done, uint64_t step_ms, uint32_t rnd)
{
	if (step_ms == 0)
		step_ms = FOLLOW_POLL_STEP_MS;
	uint64_t base = step_ms / 2;
	if (polls_done > 0) {
		base = step_ms;
		for (unsigned i = 1; i < polls_done && base < FOLLOW_POLL_CAP_MS; i++)
			base *= 2;
		if (base > FOLLOW_POLL_CAP_MS)
			base = FOLLOW_POLL_CAP_MS;
	}
	return base - (uint64_t)rnd % (base / 4 + 1);
}

void follow_state_init(struct follow_state *st, uint64_t started_ms, long max_s)
{
	memset(st, 0, sizeof(*st));
	st->started_ms = started_ms;
	st->deadline_ms = started_ms + (uint64_t)(max_s > 0 ? max_s : 0) * 1000;
}

void follow_state_resume(struct follow_state *st, uint64_t started_ms, uint64_t deadline_ms,
                         enum follow_status last)
{
	memset(st, 0, sizeof(*st));
	st->started_ms = started_ms;
	st->deadline_ms = deadline_ms;
	st->last = last;
	/* a spooled follow never recorded a final status (that ends it) */
	st->last_rank = last == FOLLOW_TIMED_OUT ? 3 : rank(last, NULL);
}

/* The next poll, never later than the deadline (which then ends it). */
static void schedule(struct follow_state *st, uint64_t now, uint32_t rnd, struct follow_step *out)
{
	st->polls++;
	out->next_poll_ms = now + follow_poll_delay_ms(st->polls, st->poll_ms, rnd);
	if (out->next_poll_ms > st->deadline_ms)
		out->next_poll_ms = st->deadline_ms;
}

static void end_with(struct follow_state *st, const char *code, int retryable,
                     struct follow_step *out)
{
	out->publish = out->final = 1;
	out->status = st->last;
	out->code = code;
	out->retryable = retryable;
	st->ended = 1;
}

void follow_on_answer(struct follow_state *st, const struct follow_answer *a, uint64_t now,
                      uint32_t rnd, struct follow_step *out)
{
	memset(out, 0, sizeof(*out));
	st->failing = 0;
	int r = rank(a->status, a->reason_code);
	if (r > st->last_rank) {
		out->publish = 1;
		out->status = a->status;
		st->last = a->status;
		st->last_rank = r;
		if (follow_is_final(a->status, a->reason_code)) {
			out->final = 1;
			st->ended = 1;
			return;
		}
	}
	schedule(st, now, rnd, out);
}

void follow_on_failure(struct follow_state *st, int http_status, const char *code, int retryable,
                       uint64_t now, uint32_t rnd, struct follow_step *out)
{
	memset(out, 0, sizeof(*out));
	int early_404 = http_status == 404 && st->last == FOLLOW_NONE &&
	                now - st->started_ms < FOLLOW_NOT_FOUND_GRACE_MS;
	snprintf(st->fail_code, sizeof(st->fail_code), "%s", code && *code ? code : "UnknownError");
	st->fail_retryable = retryable || early_404;
	st->failing = 1;
	if (!retryable && !early_404) {
		end_with(st, st->fail_code, 0, out);
		return;
	}
	schedule(st, now, rnd, out);
}

int follow_check_deadline(struct follow_state *st, uint64_t now, struct follow_step *out)
{
	memset(out, 0, sizeof(*out));
	if (st->ended || now < st->deadline_ms)
		return 0;
	if (st->failing)
		end_with(st, st->fail_code, st->fail_retryable, out);
	else
		end_with(st, "Expired", 1, out);
	return 1;
}

static void put_head(struct sbuf *out, const char *id_json, const char *execution_id)
{
	sbuf_putc(out, '{');
	int first = 1;
	if (id_json && *id_json) {
		jsonw_key(out, "id", 1);
		sbuf_puts(out, id_json);
		first = 0;
	}
	jsonw_key(out, "executionId", first);
	jsonw_string(out, execution_id, strlen(execution_id));
}

void follow_render_status(struct sbuf *out, const char *id_json, const char *execution_id,
                          const struct follow_answer *a, int final)
{
	put_head(out, id_json, execution_id);
	jsonw_key(out, "status", 0);
	jsonw_string(out, a->status_text, strlen(a->status_text));
	jsonw_key(out, "final", 0);
	sbuf_puts(out, final ? "true" : "false");
	if (a->status_reason) {
		jsonw_key(out, "statusReason", 0);
		jsonw_value(out, a->status_reason);
	}
	if (a->result) {
		jsonw_key(out, "result", 0);
		jsonw_value(out, a->result);
	}
	sbuf_putc(out, '}');
}

void follow_render_end(struct sbuf *out, const char *id_json, const char *execution_id,
                       enum follow_status last, const char *code, int retryable)
{
	put_head(out, id_json, execution_id);
	jsonw_key(out, "final", 0);
	sbuf_puts(out, "true");
	jsonw_key(out, "status", 0);
	const char *name = follow_status_name(last);
	if (name)
		jsonw_string(out, name, strlen(name));
	else
		sbuf_puts(out, "null");
	jsonw_key(out, "code", 0);
	jsonw_string(out, code, strlen(code));
	jsonw_key(out, "retryable", 0);
	sbuf_puts(out, retryable ? "true" : "false");
	sbuf_putc(out, '}');
}

enum cg_err follow_topic_prepare(const char *tmpl, const struct route_vars *v, struct sbuf *out,
                                 char *err)
{
	struct route_vars w = *v;
	route_vars_set(&w, "execution", "{execution}");
	return route_template_expand(tmpl, &w, out, err);
}

enum cg_err follow_topic_finish(const char *prepared, const char *execution_id, struct sbuf *out,
                                char *err)
{
	struct route_vars w = {0};
	route_vars_set(&w, "execution", execution_id);
	return route_template_expand(prepared, &w, out, err);
}

char *follow_default_endpoint(const char *region)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "https://iot.%s.amazonaws.com%s", region,
	            strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return sbuf_steal(&b);
}

const char *follow_topic_check(const struct route *r, const struct route *all, size_t n,
                               int have_account, char *msg, size_t len)
{
	const char *t = r->execution_topic;
	char bad[130];
	int captures = 0;
	for (size_t i = 0; i < r->n_ph; i++)
		captures |= strcmp(r->ph_names[i], "execution") == 0;
	if (captures) {
		snprintf(msg, len,
		         "{execution} is the executionId, for execution_topic only; "
		         "request_topic cannot capture it");
		return "request_topic";
	}
	if (!r->follow && strcmp(t, FOLLOW_DEFAULT_TOPIC) == 0)
		return NULL; /* unused: the default cannot break a route that does not follow */
	if (route_unknown_placeholder(r, t, "execution", bad, sizeof(bad))) {
		snprintf(msg, len, "unknown placeholder {%s} in \"%s\"", bad, t);
		return "execution_topic";
	}
	if (!*t || strpbrk(t, "+#")) {
		snprintf(msg, len, "execution_topic \"%s\" must be a topic name without wildcards",
		         t);
		return "execution_topic";
	}
	for (size_t i = 0; i < n; i++)
		if (route_reply_could_loop(t, all[i].request_topic)) {
			snprintf(
			    msg, len,
			    "execution_topic \"%s\" could match request_topic \"%s\": messages "
			    "would loop back as requests",
			    t, all[i].request_topic);
			return "execution_topic";
		}
	if (route_template_uses(t, "account") && !have_account) {
		snprintf(msg, len, "aws.account is required: \"%s\" uses {account}", t);
		return "";
	}
	return NULL;
}

static int unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static void encode(struct sbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (unreserved(c)) {
			sbuf_putc(out, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			sbuf_append(out, e, 3);
		}
	}
}

int follow_request_path(struct sbuf *out, const char *prefix, const char *execution_id)
{
	size_t n = strlen(execution_id);
	if (n < 1 || n > FOLLOW_EXECUTION_ID_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)execution_id[i];
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return -1;
	}
	if (strcmp(execution_id, ".") == 0 || strcmp(execution_id, "..") == 0)
		return -1;
	sbuf_puts(out, prefix ? prefix : "");
	sbuf_puts(out, "/command-executions/");
	sbuf_puts(out,
	          execution_id); /* nothing to encode: no single- vs double-encoding question */
	return 0;
}

void follow_request_query(struct sbuf *out, const char *target_arn)
{
	/* Already in canonical order: "includeResult" < "targetArn". */
	sbuf_puts(out, "includeResult=true&targetArn=");
	encode(out, target_arn);
}
