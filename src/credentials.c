/*
 * credentials: each source is one function that fills a struct credentials
 * or explains why it could not. The provider keeps the last good set and a
 * generation number that changes with it (the signer caches derived keys by
 * generation).
 */
#include "credentials.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sbuf.h"

struct cred_provider {
	const struct cred_config *cfg; /* borrowed from the live config */
	char *source;
	char *access_key_id, *secret_file, *profile;
	struct credentials cur;
	int have;
	uint64_t generation;
	uint64_t last_try_ms;
	char last_err[ERR_LEN];
};

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
}

static char *dup_or_die(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

static enum cg_err from_env(struct credentials *c, char *err)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret)
		return cg_fail(err, CG_CREDENTIALS,
		               "env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
	c->access_key_id = dup_or_die(id);
	c->secret_access_key = dup_or_die(secret);
	c->session_token = token && *token ? dup_or_die(token) : NULL;
	c->source = "env";
	return CG_OK;
}

/* Read a whole small file, refusing one that group or others may read. */
static enum cg_err read_secret_file(const char *path, int check_mode, struct sbuf *out, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cg_fail(err, CG_CREDENTIALS, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && check_mode && (st.st_mode & 077)) {
		close(fd);
		return cg_fail(err, CG_CREDENTIALS,
		               "%s is readable by group or others (mode %03o); chmod 600 it", path,
		               (unsigned)(st.st_mode & 0777));
	}
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sbuf_append(out, buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return CG_OK;
}

static enum cg_err from_static(struct cred_provider *p, struct credentials *c, char *err)
{
	struct sbuf b;
	sbuf_init(&b);
	enum cg_err rc = read_secret_file(p->secret_file, 1, &b, err);
	if (rc == CG_OK) {
		while (b.len && isspace((unsigned char)b.data[b.len - 1]))
			b.data[--b.len] = '\0';
		if (b.len == 0)
			rc = cg_fail(err, CG_CREDENTIALS, "%s is empty", p->secret_file);
	}
	if (rc == CG_OK) {
		c->access_key_id = dup_or_die(p->access_key_id);
		c->secret_access_key = dup_or_die(b.data);
		c->session_token = NULL;
		c->source = "static";
	}
	sbuf_wipe(&b);
	return rc;
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
	char *copy = dup_or_die(text);
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
		out->access_key_id = dup_or_die(id);
		out->secret_access_key = dup_or_die(secret);
		out->session_token = token && *token ? dup_or_die(token) : NULL;
		out->source = "profile";
	}
	OPENSSL_cleanse(copy, strlen(text));
	free(copy);
	return rc;
}

static enum cg_err from_profile(struct cred_provider *p, struct credentials *c, char *err)
{
	char path[1024];
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	if (file && *file) {
		snprintf(path, sizeof(path), "%s", file);
	} else {
		const char *home = getenv("HOME");
		snprintf(path, sizeof(path), "%s/.aws/credentials", home ? home : "");
	}
	const char *profile = *p->profile ? p->profile : getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	struct sbuf b;
	sbuf_init(&b);
	enum cg_err rc = read_secret_file(path, 0, &b, err);
	if (rc == CG_OK)
		rc = cred_parse_profile(b.data, profile, c, err);
	sbuf_wipe(&b);
	return rc;
}

static enum cg_err load(struct cred_provider *p, struct credentials *c, char *err)
{
	if (strcmp(p->source, "env") == 0)
		return from_env(c, err);
	if (strcmp(p->source, "static") == 0)
		return from_static(p, c, err);
	if (strcmp(p->source, "profile") == 0)
		return from_profile(p, c, err);
	if (strcmp(p->source, "chain") == 0) {
		char e1[ERR_LEN], e2[ERR_LEN];
		if (from_env(c, e1) == CG_OK)
			return CG_OK;
		if (from_profile(p, c, e2) == CG_OK)
			return CG_OK;
		return cg_fail(err, CG_CREDENTIALS, "chain: %s; profile: %s", e1, e2);
	}
	return cg_fail(err, CG_CREDENTIALS,
	               "credential source \"%s\" is not available in this build", p->source);
}

struct cred_provider *cred_provider_new(const struct cred_config *cfg)
{
	struct cred_provider *p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	p->source = dup_or_die(cfg->source);
	p->access_key_id = dup_or_die(cfg->access_key_id);
	p->secret_file = dup_or_die(cfg->secret_access_key_file);
	p->profile = dup_or_die(cfg->profile);
	return p;
}

void cred_provider_free(struct cred_provider *p)
{
	if (!p)
		return;
	credentials_clean_up(&p->cur);
	free(p->source);
	free(p->access_key_id);
	free(p->secret_file);
	free(p->profile);
	free(p);
}

enum cg_err cred_provider_get(struct cred_provider *p, uint64_t now_ms,
                              struct sigv4_credentials *out, char *err)
{
	if (!p->have) {
		if (p->last_try_ms && now_ms - p->last_try_ms < 1000)
			return cg_fail(err, CG_CREDENTIALS, "%s", p->last_err);
		p->last_try_ms = now_ms;
		struct credentials c = {0};
		if (load(p, &c, p->last_err) != CG_OK) {
			credentials_clean_up(&c);
			log_warn("credentials unavailable: %s", p->last_err);
			return cg_fail(err, CG_CREDENTIALS, "%s", p->last_err);
		}
		credentials_clean_up(&p->cur);
		p->cur = c;
		p->have = 1;
		p->generation++;
		log_info("credentials loaded from %s (access key %.4s...)", c.source,
		         c.access_key_id);
	}
	out->access_key_id = p->cur.access_key_id;
	out->secret_access_key = p->cur.secret_access_key;
	out->session_token = p->cur.session_token;
	out->generation = p->generation;
	return CG_OK;
}
