/*
 * translate: parse, check, convert, build. The payload is parsed once with
 * jansson (duplicate keys rejected: an ambiguous command is not guessed at);
 * every parameter is turned into a typed value object; the body is emitted in
 * the model's member order with members absent when not set.
 */
#include "translate.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "jsonw.h"
#include "sigv4.h"

void translate_result_init(struct translated *t)
{
	memset(t, 0, sizeof(*t));
	sbuf_init(&t->body);
}

void translate_result_clean_up(struct translated *t)
{
	json_decref(t->id);
	t->id = NULL;
	sbuf_clean_up(&t->body);
}

int translate_token_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > CLIENT_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* sha256 hex of [prefix] thing "\n" command "\n" text */
static void token_hash(const char *prefix, const char *thing, const char *command, const char *text,
                       char out[65])
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, prefix);
	sbuf_puts(&b, thing);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, command);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, text);
	sigv4_sha256_hex(b.data, b.len, out);
	sbuf_clean_up(&b);
}

void translate_token_derive(const char *thing, const char *command, const char *id_text,
                            char out[65])
{
	token_hash("", thing, command, id_text, out);
}

void translate_token_bind(const char *thing, const char *command, const char *token, char out[65])
{
	token_hash("token\n", thing, command, token, out);
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int param_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 192)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '.' || c == '$' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* UL: 1-20 decimal digits, value <= 2^64-1. */
static int ul_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	if (n < 20)
		return 1;
	return strcmp(s, "18446744073709551615") <= 0;
}

static json_t *typed(const char *tag, json_t *v)
{
	json_t *o = json_object();
	json_object_set_new(o, tag, v);
	return o;
}

/* Why inner is not a value of type t, or NULL when it is (UL is converted
 * apart, in convert_value). */
static const char *invalid(enum param_type t, json_t *inner)
{
	switch (t) {
	case PT_S:
		if (!json_is_string(inner))
			return "S must be a string";
		return json_string_length(inner) == 0 ? "S must not be empty" : NULL;
	case PT_B:
		return json_is_boolean(inner) ? NULL : "B must be true or false";
	case PT_I:
		if (!json_is_integer(inner))
			return "I must be an integer";
		return json_integer_value(inner) < INT32_MIN ||
		               json_integer_value(inner) > INT32_MAX
		           ? "I is out of range [-2147483648, 2147483647]"
		           : NULL;
	case PT_L:
		return json_is_integer(inner) ? NULL : "L must be an integer";
	case PT_D:
		if (!json_is_number(inner))
			return "D must be a number";
		return isfinite(json_number_value(inner)) ? NULL : "D must be finite";
	case PT_BIN:
		if (!json_is_string(inner))
			return "BIN must be a base64 string";
		return base64_decoded_len(json_string_value(inner), json_string_length(inner)) < 1
		           ? "BIN must be non-empty, valid base64"
		           : NULL;
	default:
		return "has no type";
	}
}

/*
 * Convert one parameter value to its typed object (a new reference), or
 * return NULL with err naming the parameter. want is the route's type for
 * this name (PT_NONE: infer from the JSON type).
 */
static json_t *convert_value(const char *name, json_t *v, enum param_type want, char *err)
{
	const char *tag = NULL;
	json_t *inner = v;
	int is_typed = json_is_object(v);
	if (is_typed) {
		if (json_object_size(v) != 1) {
			cg_fail(err, CG_INVALID,
			        "parameter '%s': a typed value has exactly one of S B I L D BIN UL",
			        name);
			return NULL;
		}
		void *it = json_object_iter(v);
		tag = json_object_iter_key(it);
		inner = json_object_iter_value(it);
		want = route_param_type_parse(tag);
		if (want == PT_NONE) {
			cg_fail(err, CG_INVALID, "parameter '%s': unknown value type '%s'", name,
			        tag);
			return NULL;
		}
		tag = route_param_type_name(want);
	} else if (want == PT_NONE) {
		if (json_is_string(v))
			want = PT_S;
		else if (json_is_boolean(v))
			want = PT_B;
		else if (json_is_integer(v))
			want = PT_L;
		else if (json_is_real(v))
			want = PT_D;
		else {
			cg_fail(err, CG_INVALID, "parameter '%s': %s is not a valid value", name,
			        json_is_null(v) ? "null" : "an array");
			return NULL;
		}
	}
	const char *why = NULL;
	json_t *outv = NULL;
	if (want == PT_UL) {
		if (!is_typed && json_is_integer(inner) && json_integer_value(inner) >= 0) {
			char digits[24];
			snprintf(digits, sizeof(digits), "%" JSON_INTEGER_FORMAT,
			         json_integer_value(inner));
			outv = json_string(digits);
		} else if (json_is_string(inner) && ul_valid(json_string_value(inner))) {
			outv = json_incref(inner);
		} else {
			why = "UL must be a decimal string of 1-20 digits, at most "
			      "18446744073709551615";
		}
	} else if (!(why = invalid(want, inner))) {
		outv = json_incref(inner);
	}
	if (!outv) {
		cg_fail(err, CG_INVALID, "parameter '%s': %s", name, why);
		return NULL;
	}
	return typed(route_param_type_name(want), outv);
}

/* For a number jansson could not hold: the nearest key before offset pos,
 * skipping a type tag so the parameter's own name is reported. */
static void name_before(const char *p, size_t pos, char *out, size_t outlen)
{
	snprintf(out, outlen, "?");
	int skipped_tag = 0;
	while (pos > 0) {
		size_t colon = pos;
		while (colon > 0 && p[colon - 1] != ':')
			colon--;
		if (colon == 0)
			return;
		size_t q = colon - 1;
		while (q > 0 && isspace((unsigned char)p[q - 1]))
			q--;
		if (q == 0 || p[q - 1] != '"')
			return;
		size_t end = q - 1, start = end;
		while (start > 0 && p[start - 1] != '"')
			start--;
		size_t n = end - start;
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, p + start, n);
		out[n] = '\0';
		if (!skipped_tag && route_param_type_parse(out) != PT_NONE) {
			skipped_tag = 1;
			pos = start > 0 ? start - 1 : 0;
			continue;
		}
		return;
	}
}

static enum cg_err parse_payload(const char *payload, size_t len, json_t **root, char *err)
{
	if (len == 0) {
		*root = json_object();
		return CG_OK;
	}
	json_error_t je;
	*root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (*root == NULL) {
		if (strstr(je.text, "too big") || strstr(je.text, "overflow")) {
			char name[200];
			name_before(payload, (size_t)je.position, name, sizeof(name));
			return cg_fail(err, CG_INVALID, "parameter '%s': number out of range",
			               name);
		}
		return cg_fail(err, CG_INVALID, "payload is not a UTF-8 JSON object: %s", je.text);
	}
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		return cg_fail(err, CG_INVALID, "payload is not a JSON object");
	}
	return CG_OK;
}

/* id: string of 1-64 characters or an integer; sets out->id and id_text. */
static enum cg_err take_id(json_t *root, struct translated *out, char *id_text, size_t n, char *err)
{
	json_t *id = json_object_get(root, "id");
	id_text[0] = '\0';
	if (!id)
		return CG_OK;
	if (json_is_string(id)) {
		size_t chars = utf8_chars(json_string_value(id));
		if (chars < 1 || chars > 64 ||
		    strlen(json_string_value(id)) != json_string_length(id))
			return cg_fail(err, CG_INVALID, "member 'id': a string of 1-64 characters");
		snprintf(id_text, n, "%s", json_string_value(id));
	} else if (json_is_integer(id)) {
		snprintf(id_text, n, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
	} else {
		return cg_fail(err, CG_INVALID, "member 'id': must be a string or an integer");
	}
	out->id = json_incref(id);
	return CG_OK;
}

static enum cg_err check_members(json_t *root, char *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "id") && strcmp(key, "parameters") && strcmp(key, "timeout") &&
		    strcmp(key, "clientToken"))
			return cg_fail(err, CG_INVALID, "unknown member '%s'", key);
	}
	return CG_OK;
}

static enum cg_err build_parameters(const struct route *r, json_t *params, json_t **out, char *err)
{
	*out = NULL;
	if (!params)
		return CG_OK;
	if (!json_is_object(params))
		return cg_fail(err, CG_INVALID, "member 'parameters': must be an object");
	if (json_object_size(params) == 0)
		return CG_OK;
	json_t *o = json_object();
	const char *name;
	json_t *v;
	json_object_foreach(params, name, v)
	{
		if (!param_name_valid(name)) {
			json_decref(o);
			return cg_fail(err, CG_INVALID,
			               "parameter name '%.64s' is invalid (1-192 of . $ a-z A-Z "
			               "0-9 _ -)",
			               name);
		}
		json_t *tv = convert_value(name, v, route_param_type(r, name), err);
		if (!tv) {
			json_decref(o);
			return CG_INVALID;
		}
		json_object_set_new(o, name, tv);
	}
	*out = o;
	return CG_OK;
}

static enum cg_err expand_arn(const char *tmpl, const struct route_vars *vars, const char *what,
                              size_t max, json_t *body, const char *member, char *err)
{
	struct sbuf b;
	sbuf_init(&b);
	enum cg_err rc = route_template_expand(tmpl, vars, &b, err);
	if (rc == CG_OK && (b.len < 1 || b.len > max))
		rc = cg_fail(err, CG_INVALID, "%s is longer than %zu characters", what, max);
	if (rc == CG_OK)
		json_object_set_new(body, member, json_stringn(b.data, b.len));
	sbuf_clean_up(&b);
	return rc;
}

enum cg_err translate_request(const struct route *r, const struct route_vars *vars,
                              struct view payload, token_fn new_token, void *token_ctx,
                              struct translated *out, char *err)
{
	json_t *root = NULL, *params = NULL, *body = json_object();
	char id_text[300];
	enum cg_err rc = parse_payload(payload.ptr, payload.len, &root, err);
	if (rc)
		goto out;
	if ((rc = take_id(root, out, id_text, sizeof(id_text), err)) ||
	    (rc = check_members(root, err)))
		goto out;
	json_t *tok = json_object_get(root, "clientToken");
	if (tok && (!json_is_string(tok) || !translate_token_valid(json_string_value(tok)) ||
	            strlen(json_string_value(tok)) != json_string_length(tok))) {
		rc = cg_fail(err, CG_INVALID,
		             "member 'clientToken': 1-64 printable ASCII characters, no spaces");
		goto out;
	}
	json_t *timeout = json_object_get(root, "timeout");
	if (timeout && (!json_is_integer(timeout) || json_integer_value(timeout) < 1)) {
		rc = cg_fail(err, CG_INVALID, "member 'timeout': an integer >= 1");
		goto out;
	}
	if ((rc = build_parameters(r, json_object_get(root, "parameters"), &params, err)))
		goto out;
	if ((rc = expand_arn(r->target_arn, vars, "targetArn", 2048, body, "targetArn", err)) ||
	    (rc = expand_arn(r->command_arn, vars, "commandArn", 2048, body, "commandArn", err)))
		goto out;
	if (params)
		json_object_set(body, "parameters", params);
	if (timeout)
		json_object_set(body, "executionTimeoutSeconds", timeout);
	else if (r->execution_timeout > 0)
		json_object_set_new(body, "executionTimeoutSeconds",
		                    json_integer(r->execution_timeout));

	if (tok) {
		translate_token_bind(route_vars_get(vars, "thing"), route_vars_get(vars, "command"),
		                     json_string_value(tok), out->client_token);
		out->token_kind = TOKEN_EXPLICIT;
	} else if (out->id) {
		translate_token_derive(route_vars_get(vars, "thing"),
		                       route_vars_get(vars, "command"), id_text, out->client_token);
		out->token_kind = TOKEN_DERIVED;
	} else {
		new_token(out->client_token, token_ctx);
		out->token_kind = TOKEN_RANDOM;
	}
	json_object_set_new(body, "clientToken", json_string(out->client_token));

	sbuf_reset(&out->body);
	jsonw_value(&out->body, body);
	rc = CG_OK;
out:
	json_decref(params);
	json_decref(body);
	json_decref(root);
	return rc;
}
