/*
 * route: templates are parsed on the fly; they are short, and matching walks
 * the topic and the template level by level without allocating beyond one
 * copy of the topic (whose levels become the captured values).
 */
#include "route.h"
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void route_vars_set(struct route_vars *v, const char *name, const char *value)
{
	for (size_t i = 0; i < v->n; i++) {
		if (strcmp(v->name[i], name) == 0) {
			v->value[i] = value;
			return;
		}
	}
	if (v->n < ROUTE_VARS_MAX) {
		v->name[v->n] = name;
		v->value[v->n++] = value;
	}
}

const char *route_vars_get(const struct route_vars *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->name[i], name) == 0)
			return v->value[i];
	return NULL;
}

static const char *const type_names[] = {"", "S", "B", "I", "L", "D", "BIN", "UL"};

enum param_type route_param_type_parse(const char *s)
{
	for (int t = PT_S; t <= PT_UL; t++)
		if (strcmp(s, type_names[t]) == 0)
			return (enum param_type)t;
	return PT_NONE;
}

const char *route_param_type_name(enum param_type t)
{
	return type_names[t];
}

void route_clean_up(struct route *r)
{
	free(r->request_topic);
	free(r->reply_topic);
	free(r->target_arn);
	free(r->command_arn);
	free(r->execution_topic);
	free(r->thing);
	free(r->command);
	for (size_t i = 0; i < r->n_commands; i++)
		free(r->commands[i]);
	free(r->commands);
	for (size_t i = 0; i < r->n_ptypes; i++)
		free(r->ptypes[i].name);
	free(r->ptypes);
	free(r->filter);
	for (size_t i = 0; i < r->n_response_topics; i++)
		free(r->response_topics[i]);
	free(r->response_topics);
	for (size_t i = 0; i < r->n_ph; i++)
		free(r->ph_names[i]);
	memset(r, 0, sizeof(*r));
}

/* Is level [s, s+n) a whole-level placeholder "{name}"? */
static int is_placeholder(const char *s, size_t n)
{
	return n >= 3 && s[0] == '{' && s[n - 1] == '}' && memchr(s + 1, '{', n - 2) == NULL &&
	       memchr(s + 1, '}', n - 2) == NULL;
}

static size_t level_len(const char *s)
{
	const char *e = strchr(s, '/');
	return e ? (size_t)(e - s) : strlen(s);
}

enum cg_err route_compile(struct route *r, char *err)
{
	struct sbuf f;
	sbuf_init(&f);
	const char *p = r->request_topic;
	char seen[ROUTE_VARS_MAX][130];
	size_t nseen = 0;
	if (!*p)
		goto bad_empty;
	for (;;) {
		size_t n = level_len(p);
		if (is_placeholder(p, n)) {
			if (n - 2 >= sizeof(seen[0]) || nseen == ROUTE_VARS_MAX) {
				sbuf_clean_up(&f);
				return cg_fail(err, CG_CONFIG, "too many or too long placeholders");
			}
			memcpy(seen[nseen], p + 1, n - 2);
			seen[nseen][n - 2] = '\0';
			for (size_t i = 0; i < nseen; i++) {
				if (strcmp(seen[i], seen[nseen]) == 0) {
					sbuf_clean_up(&f);
					return cg_fail(err, CG_CONFIG,
					               "placeholder {%s} appears twice in \"%s\"",
					               seen[i], r->request_topic);
				}
			}
			nseen++;
			sbuf_putc(&f, '+');
		} else {
			if (memchr(p, '{', n) || memchr(p, '}', n) || memchr(p, '+', n) ||
			    memchr(p, '#', n)) {
				sbuf_clean_up(&f);
				return cg_fail(
				    err, CG_CONFIG,
				    "request_topic \"%s\": a placeholder must fill a whole "
				    "level and wildcards are not allowed",
				    r->request_topic);
			}
			sbuf_append(&f, p, n);
		}
		if (!p[n])
			break;
		sbuf_putc(&f, '/');
		p += n + 1;
	}
	free(r->filter);
	r->filter = sbuf_steal(&f);
	for (size_t i = 0; i < r->n_ph; i++)
		free(r->ph_names[i]);
	r->n_ph = nseen;
	for (size_t i = 0; i < nseen; i++) {
		r->ph_names[i] = rt_strdup(seen[i]);
	}
	return CG_OK;
bad_empty:
	sbuf_clean_up(&f);
	return cg_fail(err, CG_CONFIG, "request_topic is empty");
}

int route_match(const struct route *r, const char *topic, char **storage, struct route_vars *caps)
{
	char *copy = rt_strdup(topic);
	const char *t = r->request_topic;
	char *s = copy;
	size_t k = 0;
	caps->n = 0;
	for (;;) {
		size_t tn = level_len(t);
		size_t sn = level_len(s);
		int s_last = s[sn] == '\0', t_last = t[tn] == '\0';
		if (is_placeholder(t, tn) && k < r->n_ph) {
			s[sn] = '\0';
			route_vars_set(caps, r->ph_names[k++], s);
		} else if (tn != sn || memcmp(t, s, tn) != 0) {
			break;
		}
		if (s_last || t_last) {
			if (s_last != t_last)
				break;
			*storage = copy;
			return 1;
		}
		t += tn + 1;
		s += sn + 1;
	}
	free(copy);
	caps->n = 0;
	return 0;
}

static int match_rule(const char *v, size_t max, const char *extra)
{
	size_t n = strlen(v);
	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c)))
			return 0;
	}
	return 1;
}

enum cg_err route_check_capture(const char *name, const char *value, char *err)
{
	int ok;
	if (strcmp(name, "thing") == 0)
		ok = match_rule(value, 128, ":_-");
	else if (strcmp(name, "command") == 0)
		ok = match_rule(value, 64, "_-");
	else
		ok = match_rule(value, 128, ":_.-");
	if (!ok)
		return cg_fail(err, CG_INVALID, "topic level {%s} has an invalid value", name);
	return CG_OK;
}

enum cg_err route_template_expand(const char *tmpl, const struct route_vars *v, struct sbuf *out,
                                  char *err)
{
	const char *p = tmpl;
	while (*p) {
		const char *open = strchr(p, '{');
		const char *close = open ? strchr(open, '}') : NULL;
		if (!open || !close) {
			sbuf_puts(out, p);
			break;
		}
		sbuf_append(out, p, (size_t)(open - p));
		char name[130];
		size_t n = (size_t)(close - open - 1);
		if (n == 0 || n >= sizeof(name))
			return cg_fail(err, CG_CONFIG, "bad placeholder in \"%s\"", tmpl);
		memcpy(name, open + 1, n);
		name[n] = '\0';
		const char *val = route_vars_get(v, name);
		if (!val)
			return cg_fail(err, CG_CONFIG, "unknown placeholder {%s} in \"%s\"", name,
			               tmpl);
		sbuf_puts(out, val);
		p = close + 1;
	}
	return CG_OK;
}

const char *route_unknown_placeholder(const struct route *r, const char *tmpl, const char *extra,
                                      char *bad, size_t n)
{
	static const char *const known[] = {"region", "account", "client_id", "thing", "command"};
	for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{')) {
		const char *e = strchr(p, '}');
		if (!e)
			break;
		snprintf(bad, n, "%.*s", (int)(e - p - 1), p + 1);
		int ok = extra && strcmp(bad, extra) == 0;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !ok; i++)
			ok = strcmp(bad, known[i]) == 0;
		for (size_t i = 0; i < r->n_ph && !ok; i++)
			ok = strcmp(bad, r->ph_names[i]) == 0;
		if (!ok)
			return bad;
	}
	return NULL;
}

int route_template_uses(const char *tmpl, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{'))
		if (strncmp(p + 1, name, n) == 0 && p[n + 1] == '}')
			return 1;
	return 0;
}

/* Could a level produced from reply level rl match request level ql? */
static int level_could_match(const char *rl, size_t rn, const char *ql, size_t qn)
{
	int rph = is_placeholder(rl, rn), qph = is_placeholder(ql, qn);
	if (qph && rph)
		return 1;
	if (rph) {
		if (rn == 8 && memcmp(rl, "{status}", 8) == 0)
			return (qn == 8 && memcmp(ql, "accepted", 8) == 0) ||
			       (qn == 8 && memcmp(ql, "rejected", 8) == 0);
		return 1;
	}
	if (qph)
		return !(rn == 0); /* a placeholder value is never empty */
	return rn == qn && memcmp(rl, ql, rn) == 0;
}

int route_reply_could_loop(const char *reply_tmpl, const char *request_tmpl)
{
	const char *r = reply_tmpl, *q = request_tmpl;
	for (;;) {
		size_t rn = level_len(r), qn = level_len(q);
		if (!level_could_match(r, rn, q, qn))
			return 0;
		int rl = r[rn] == '\0', ql = q[qn] == '\0';
		if (rl || ql)
			return rl == ql;
		r += rn + 1;
		q += qn + 1;
	}
}

enum param_type route_param_type(const struct route *r, const char *name)
{
	for (size_t i = 0; i < r->n_ptypes; i++)
		if (strcmp(r->ptypes[i].name, name) == 0)
			return r->ptypes[i].type;
	return PT_NONE;
}

int route_command_allowed(const struct route *r, const char *command)
{
	if (r->n_commands == 0)
		return 1;
	for (size_t i = 0; i < r->n_commands; i++)
		if (strcmp(r->commands[i], command) == 0)
			return 1;
	return 0;
}

int route_filter_matches(const char *filter, const char *topic)
{
	const char *f = filter, *t = topic;
	/* a filter starting with a wildcard never matches a "$" topic */
	if (*t == '$' && (*f == '+' || *f == '#'))
		return 0;
	for (;;) {
		size_t fn = level_len(f), tn = level_len(t);
		if (fn == 1 && *f == '#')
			return 1;
		if (!(fn == 1 && *f == '+') && (fn != tn || memcmp(f, t, fn) != 0))
			return 0;
		int f_last = f[fn] == '\0', t_last = t[tn] == '\0';
		if (t_last)
			/* "a/#" matches "a" too */
			return f_last || strcmp(f + fn, "/#") == 0;
		if (f_last)
			return 0;
		f += fn + 1;
		t += tn + 1;
	}
}

char *route_default_response_topic(const struct route *r)
{
	const char *p = r->request_topic;
	for (;;) {
		size_t n = level_len(p);
		if (n == 7 && memcmp(p, "{thing}", 7) == 0) {
			struct sbuf b;
			sbuf_init(&b);
			sbuf_append(&b, r->request_topic, (size_t)(p + n - r->request_topic));
			sbuf_puts(&b, "/#");
			return sbuf_steal(&b);
		}
		if (!p[n])
			return NULL;
		p += n + 1;
	}
}

const char *route_response_topics_fill(struct route *r, char *bad, size_t n)
{
	if (!r->response_topics) {
		char *d = route_default_response_topic(r);
		r->response_topics = rt_calloc(2, sizeof(char *));
		if (d)
			r->response_topics[r->n_response_topics++] = d;
	}
	for (size_t i = 0; i < r->n_response_topics; i++)
		if (route_unknown_placeholder(r, r->response_topics[i], NULL, bad, n))
			return r->response_topics[i];
	return NULL;
}

int route_response_allowed(const struct route *r, const struct route_vars *v, const char *topic)
{
	if (!topic || !*topic || strpbrk(topic, "+#") || strlen(topic) > 65535)
		return 0;
	int ok = 0;
	for (size_t i = 0; i < r->n_response_topics && !ok; i++) {
		struct sbuf f;
		sbuf_init(&f);
		ok = route_template_expand(r->response_topics[i], v, &f, NULL) == CG_OK &&
		     route_filter_matches(f.data, topic);
		sbuf_clean_up(&f);
	}
	return ok;
}
