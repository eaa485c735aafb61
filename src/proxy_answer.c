/*
 * proxy_answer: validation of a machine's answer and the documents written
 * back to it. jansson parses (duplicate keys refused, as for requests);
 * jsonw writes the body sent to AWS with only the members AWS knows.
 * Lengths are counted in characters (UTF-8 code points), as AWS counts.
 */
#include "proxy_answer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "jsonw.h"

static const char *const status_names[] = {"",       "IN_PROGRESS", "SUCCEEDED",
                                           "FAILED", "REJECTED",    "TIMED_OUT"};

const char *proxy_status_name(enum proxy_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s] : "";
}

enum proxy_status proxy_status_parse(const char *name)
{
	for (unsigned i = 1; i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (strcmp(name, status_names[i]) == 0)
			return (enum proxy_status)i;
	return PROXY_S_NONE;
}

int proxy_status_terminal(enum proxy_status s)
{
	return s == PROXY_S_SUCCEEDED || s == PROXY_S_FAILED || s == PROXY_S_REJECTED ||
	       s == PROXY_S_TIMED_OUT;
}

static enum cg_err refuse(struct proxy_answer_error *why, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum cg_err refuse(struct proxy_answer_error *why, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	why->code = code;
	vsnprintf(why->message, sizeof(why->message), fmt, ap);
	va_end(ap);
	return CG_INVALID;
}

/* Characters of UTF-8 text s (jansson has checked it), and whether one of
 * them is a control character (C0, DEL or C1). */
static size_t utf8_chars(const char *s, size_t n, int *control)
{
	size_t count = 0;
	*control = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c & 0xC0) != 0x80)
			count++;
		if (c < 0x20 || c == 0x7F)
			*control = 1;
		/* C1: U+0080..U+009F is C2 80..C2 9F */
		if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] <= 0x9F)
			*control = 1;
	}
	return count;
}

static int reason_code_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return 0;
	return 1;
}

static enum cg_err check_reason(const json_t *r, struct sbuf *out, struct proxy_answer_error *why)
{
	if (!json_is_object(r))
		return refuse(why, "InvalidRequest", "statusReason: must be an object");
	const json_t *code = json_object_get(r, "reasonCode");
	if (!json_is_string(code))
		return refuse(why, "InvalidRequest", "statusReason.reasonCode: required, a string");
	if (!reason_code_ok(json_string_value(code)))
		return refuse(why, "InvalidRequest",
		              "statusReason.reasonCode: must match ^[A-Z0-9_-]{1,64}$");
	sbuf_puts(out, ",\"statusReason\":{\"reasonCode\":");
	jsonw_string(out, json_string_value(code), json_string_length(code));
	const json_t *desc = json_object_get(r, "reasonDescription");
	if (desc) {
		if (!json_is_string(desc))
			return refuse(why, "InvalidRequest",
			              "statusReason.reasonDescription: must be a string");
		int control;
		size_t n = utf8_chars(json_string_value(desc), json_string_length(desc), &control);
		if (n > PROXY_REASON_DESC_MAX)
			return refuse(why, "InvalidRequest",
			              "statusReason.reasonDescription: longer than %d characters",
			              PROXY_REASON_DESC_MAX);
		if (control)
			return refuse(why, "InvalidRequest",
			              "statusReason.reasonDescription: holds a control character");
		sbuf_puts(out, ",\"reasonDescription\":");
		jsonw_string(out, json_string_value(desc), json_string_length(desc));
	}
	sbuf_putc(out, '}');
	return CG_OK;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > PROXY_RESULT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(".$_-", s[i])))
			return 0;
	return 1;
}

/* One result value: exactly one of s, b, bin (any case), of its type. */
static enum cg_err check_value(const char *name, const json_t *v, struct sbuf *out,
                               struct proxy_answer_error *why)
{
	if (!json_is_object(v) || json_object_size(v) != 1)
		return refuse(why, "InvalidRequest",
		              "result.%s: must hold exactly one of s, b, bin", name);
	const char *type = json_object_iter_key(json_object_iter((json_t *)v));
	const json_t *x = json_object_iter_value(json_object_iter((json_t *)v));
	if (strcmp(type, "s") == 0 || strcmp(type, "S") == 0) {
		if (!json_is_string(x))
			return refuse(why, "InvalidRequest", "result.%s.s: must be a string", name);
		sbuf_puts(out, "{\"s\":");
		jsonw_string(out, json_string_value(x), json_string_length(x));
	} else if (strcmp(type, "b") == 0 || strcmp(type, "B") == 0) {
		if (!json_is_boolean(x))
			return refuse(why, "InvalidRequest", "result.%s.b: must be true or false",
			              name);
		sbuf_puts(out, json_is_true(x) ? "{\"b\":true" : "{\"b\":false");
	} else if (strcmp(type, "bin") == 0 || strcmp(type, "BIN") == 0) {
		if (!json_is_string(x) ||
		    base64_decoded_len(json_string_value(x), json_string_length(x)) <= 0)
			return refuse(why, "InvalidRequest",
			              "result.%s.bin: must be non-empty base64", name);
		sbuf_puts(out, "{\"bin\":");
		jsonw_string(out, json_string_value(x), json_string_length(x));
	} else {
		return refuse(why, "InvalidRequest",
		              "result.%s: must hold exactly one of s, b, bin", name);
	}
	sbuf_putc(out, '}');
	return CG_OK;
}

static enum cg_err check_result(const json_t *r, struct sbuf *out, struct proxy_answer_error *why)
{
	if (!json_is_object(r) || json_object_size(r) == 0)
		return refuse(why, "InvalidRequest", "result: must be a non-empty object");
	sbuf_puts(out, ",\"result\":{");
	int first = 1;
	const char *name;
	json_t *v;
	json_object_foreach((json_t *)r, name, v)
	{
		if (!name_ok(name))
			return refuse(why, "InvalidRequest",
			              "result: a name must match ^[.$a-zA-Z0-9_-]{1,192}$");
		jsonw_key(out, name, first);
		first = 0;
		enum cg_err rc = check_value(name, v, out, why);
		if (rc)
			return rc;
	}
	sbuf_putc(out, '}');
	return CG_OK;
}

static enum cg_err check_doc(const json_t *doc, struct sbuf *body, enum proxy_status *status,
                             struct proxy_answer_error *why)
{
	if (!json_is_object(doc))
		return refuse(why, "InvalidRequest", "payload: must be a JSON object");
	const json_t *st = json_object_get(doc, "status");
	if (!st)
		return refuse(why, "InvalidRequest", "status: required");
	enum proxy_status s =
	    json_is_string(st) ? proxy_status_parse(json_string_value(st)) : PROXY_S_NONE;
	if (s == PROXY_S_NONE)
		return refuse(why, "InvalidRequest",
		              "status: must be one of IN_PROGRESS SUCCEEDED FAILED REJECTED "
		              "TIMED_OUT");
	sbuf_puts(body, "{\"status\":\"");
	sbuf_puts(body, proxy_status_name(s));
	sbuf_putc(body, '"');
	const json_t *reason = json_object_get(doc, "statusReason");
	enum cg_err rc;
	if (reason && (rc = check_reason(reason, body, why)))
		return rc;
	const json_t *result = json_object_get(doc, "result");
	if (result && (rc = check_result(result, body, why)))
		return rc;
	sbuf_putc(body, '}');
	*status = s;
	return CG_OK;
}

enum cg_err proxy_answer_check(const char *payload, size_t len, struct sbuf *aws_body,
                               enum proxy_status *status, struct proxy_answer_error *why)
{
	json_error_t je;
	json_t *doc = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return refuse(why, "InvalidJson", "payload: not JSON: %s", je.text);
	struct sbuf body;
	sbuf_init(&body);
	enum cg_err rc = check_doc(doc, &body, status, why);
	json_decref(doc);
	if (rc == CG_OK)
		sbuf_append(aws_body, body.data, body.len);
	sbuf_clean_up(&body);
	return rc;
}

void proxy_answer_rejection(struct sbuf *out, const char *code, const char *message,
                            const char *execution_id)
{
	sbuf_puts(out, "{\"error\":");
	jsonw_string(out, code, strlen(code));
	jsonw_key(out, "errorMessage", 0);
	jsonw_string(out, message, strlen(message));
	jsonw_key(out, "executionId", 0);
	jsonw_string(out, execution_id, strlen(execution_id));
	sbuf_putc(out, '}');
}

void proxy_answer_accepted(struct sbuf *out, const char *execution_id)
{
	sbuf_puts(out, "{\"executionId\":");
	jsonw_string(out, execution_id, strlen(execution_id));
	sbuf_putc(out, '}');
}

void proxy_answer_error_code(const char *payload, size_t len, char *code, size_t n)
{
	code[0] = '\0';
	json_t *doc = json_loadb(payload, len, 0, NULL);
	const json_t *e = json_object_get(doc, "error");
	if (json_is_string(e))
		snprintf(code, n, "%s", json_string_value(e));
	json_decref(doc);
}
