/* cred_parse: formats of the credential sources, kept apart from their I/O. */
#include "cred_parse.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime.h"
#include "url.h"

static void free_secret(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void credentials_clean_up(struct credentials *c)
{
	free(c->access_key_id);
	c->access_key_id = NULL;
	free_secret(&c->secret_access_key);
	free_secret(&c->session_token);
	c->expiration = 0;
	c->source = NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

enum cg_err cred_parse_profile(const char *text, const char *profile, struct credentials *out,
                               char *err)
{
	char *copy = rt_strdup(text);
	char *save = NULL, *section = NULL;
	char *id = NULL, *secret = NULL, *token = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *l = trim(line);
		if (*l == '#' || *l == ';' || *l == '\0')
			continue;
		if (*l == '[') {
			char *e = strchr(l, ']');
			if (e)
				*e = '\0';
			section = trim(l + 1);
			continue;
		}
		if (!section || strcmp(section, profile) != 0)
			continue;
		char *eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *k = trim(l), *v = trim(eq + 1);
		if (strcmp(k, "aws_access_key_id") == 0)
			id = v;
		else if (strcmp(k, "aws_secret_access_key") == 0)
			secret = v;
		else if (strcmp(k, "aws_session_token") == 0)
			token = v;
	}
	enum cg_err rc = CG_OK;
	if (!id || !*id || !secret || !*secret) {
		rc =
		    cg_fail(err, CG_CREDENTIALS,
		            "profile [%s] has no aws_access_key_id/aws_secret_access_key", profile);
	} else {
		out->access_key_id = rt_strdup(id);
		out->secret_access_key = rt_strdup(secret);
		out->session_token = token && *token ? rt_strdup(token) : NULL;
		out->source = "profile";
	}
	OPENSSL_cleanse(copy, strlen(text));
	free(copy);
	return rc;
}

int cred_parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	int n = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	const char *p = s + n;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return -1;
		offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm) - offset;
	return 0;
}

/* Take the three strings and the expiry from obj using the given names. */
static enum cg_err take(json_t *obj, const char *const names[4], const char *what,
                        struct credentials *out, char *err)
{
	const char *v[4];
	for (int i = 0; i < 4; i++) {
		json_t *j = json_object_get(obj, names[i]);
		v[i] = json_is_string(j) ? json_string_value(j) : NULL;
		if (!v[i] || !*v[i])
			return cg_fail(err, CG_CREDENTIALS, "%s: answer has no %s", what, names[i]);
	}
	time_t exp;
	if (cred_parse_time(v[3], &exp) != 0)
		return cg_fail(err, CG_CREDENTIALS, "%s: %s \"%.40s\" is not a timestamp", what,
		               names[3], v[3]);
	out->access_key_id = rt_strdup(v[0]);
	out->secret_access_key = rt_strdup(v[1]);
	out->session_token = rt_strdup(v[2]);
	out->expiration = exp;
	return CG_OK;
}

enum cg_err cred_parse_container(const char *body, size_t len, struct credentials *out, char *err)
{
	static const char *const names[4] = {"AccessKeyId", "SecretAccessKey", "Token",
	                                     "Expiration"};
	json_t *root = json_loadb(body, len, 0, NULL);
	enum cg_err rc;
	if (!json_is_object(root)) {
		rc = cg_fail(err, CG_CREDENTIALS, "answer is not a JSON object");
	} else {
		json_t *code = json_object_get(root, "Code");
		if (json_is_string(code) && strcmp(json_string_value(code), "Success") != 0)
			rc = cg_fail(err, CG_CREDENTIALS, "answer says Code=%.40s",
			             json_string_value(code));
		else
			rc = take(root, names, "credentials", out, err);
	}
	json_decref(root);
	return rc;
}

enum cg_err cred_parse_iot(const char *body, size_t len, struct credentials *out, char *err)
{
	static const char *const names[4] = {"accessKeyId", "secretAccessKey", "sessionToken",
	                                     "expiration"};
	json_t *root = json_loadb(body, len, 0, NULL);
	json_t *c = json_is_object(root) ? json_object_get(root, "credentials") : NULL;
	enum cg_err rc = json_is_object(c) ? take(c, names, "iot", out, err)
	                                   : cg_fail(err, CG_CREDENTIALS,
	                                             "iot: answer has no \"credentials\" object");
	json_decref(root);
	return rc;
}

int cred_container_uri_allowed(const char *uri)
{
	char scheme[16], host[256];
	if (url_scheme_host(uri, scheme, sizeof(scheme), host, sizeof(host)) != 0)
		return 0;
	if (strcmp(scheme, "https") == 0)
		return 1;
	return strcmp(scheme, "http") == 0 &&
	       (url_host_is_loopback(host) || strcmp(host, "169.254.170.2") == 0 ||
	        strcmp(host, "169.254.170.23") == 0);
}

time_t cred_refresh_at(time_t now, time_t exp, uint32_t rnd)
{
	if (exp <= 0)
		return 0;
	time_t life = exp - now;
	if (life <= 0)
		return now;
	time_t margin = life / 2 < 300 ? life / 2 : 300;
	time_t jitter = margin / 5 > 0 ? (time_t)(rnd % (uint32_t)(margin / 5 + 1)) : 0;
	return exp - margin - jitter;
}
