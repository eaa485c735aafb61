/*
 * credentials: the provider thread and every source's I/O.
 *
 * A loaded set is an immutable, reference-counted snapshot. The thread
 * replaces `cur`; the engine keeps a reference to the snapshot it signs with
 * (`held`), so a refresh never frees keys that are being used. Generations
 * number the snapshots so the signer can cache derived keys per generation.
 * HTTP sources use blocking libcurl easy handles: they run on this thread
 * only, with short timeouts, never on the engine's.
 */
#include "credentials.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"
#include "sbuf.h"

#define HTTP_TIMEOUT_MS 3000
#define RETRY_MIN_MS    500
#define RETRY_MAX_MS    10000

struct snapshot {
	atomic_int refs;
	struct credentials c;
	uint64_t generation;
};

struct cred_provider {
	struct cred_config cfg; /* owned copies */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct snapshot *cur;  /* guarded by lock */
	struct snapshot *held; /* the engine's reference; engine thread only */
	int stop, want_refresh, attempted;
	uint64_t generation;
	char last_err[ERR_LEN];
};

static void snap_unref(struct snapshot *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		credentials_clean_up(&s->c);
		free(s);
	}
}

/* ---- file and environment sources ------------------------------------ */

static enum cg_err from_env(struct credentials *c, char *err)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret)
		return cg_fail(err, CG_CREDENTIALS,
		               "env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
	c->access_key_id = rt_strdup(id);
	c->secret_access_key = rt_strdup(secret);
	c->session_token = token && *token ? rt_strdup(token) : NULL;
	c->source = "env";
	return CG_OK;
}

/* Read a small file; with private set, refuse one that group or others may read. */
static enum cg_err read_file(const char *path, int private, struct sbuf *out, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cg_fail(err, CG_CREDENTIALS, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && private && (st.st_mode & 077)) {
		close(fd);
		return cg_fail(err, CG_CREDENTIALS,
		               "%s is readable by group or others (mode %03o); chmod 600 it", path,
		               (unsigned)(st.st_mode & 0777));
	}
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && out->len < 1024 * 1024)
		sbuf_append(out, buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return CG_OK;
}

static void rtrim(struct sbuf *b)
{
	while (b->len && isspace((unsigned char)b->data[b->len - 1]))
		b->data[--b->len] = '\0';
}

static enum cg_err from_static(const struct cred_config *cfg, struct credentials *c, char *err)
{
	struct sbuf b;
	sbuf_init(&b);
	enum cg_err rc = read_file(cfg->secret_access_key_file, 1, &b, err);
	rtrim(&b);
	if (rc == CG_OK && b.len == 0)
		rc = cg_fail(err, CG_CREDENTIALS, "%s is empty", cfg->secret_access_key_file);
	if (rc == CG_OK) {
		c->access_key_id = rt_strdup(cfg->access_key_id);
		c->secret_access_key = rt_strdup(b.data);
		c->source = "static";
	}
	sbuf_wipe(&b);
	return rc;
}

static enum cg_err from_profile(const struct cred_config *cfg, struct credentials *c, char *err)
{
	struct sbuf path;
	sbuf_init(&path);
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	if (file && *file) {
		sbuf_puts(&path, file);
	} else {
		const char *home = getenv("HOME");
		sbuf_printf(&path, "%s/.aws/credentials", home ? home : "");
	}
	const char *profile = *cfg->profile ? cfg->profile : getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	struct sbuf b;
	sbuf_init(&b);
	enum cg_err rc = read_file(path.data, 0, &b, err);
	if (rc == CG_OK)
		rc = cred_parse_profile(b.data, profile, c, err);
	sbuf_wipe(&b);
	sbuf_clean_up(&path);
	return rc;
}

/* ---- HTTP sources ------------------------------------------------------ */

struct tls_client {
	const char *cert, *key, *ca;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct sbuf *b = ud;
	if (b->len + size * n > 64 * 1024)
		return 0;
	sbuf_append(b, p, size * n);
	return size * n;
}

/* One blocking request; CG_OK when any HTTP answer came back. */
static enum cg_err fetch(const char *method, const char *url, struct curl_slist *hdrs,
                         const struct tls_client *tls, long *status, struct sbuf *body, char *err)
{
	CURL *e = curl_easy_init();
	if (!e)
		return cg_fail(err, CG_NOMEM, "curl_easy_init failed");
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 0L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	if (tls) {
		if (tls->cert && *tls->cert)
			curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert);
		if (tls->key && *tls->key)
			curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key);
		if (tls->ca && *tls->ca)
			curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca);
	}
	CURLcode rc = curl_easy_perform(e);
	*status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(e);
	if (rc != CURLE_OK)
		return cg_fail(err, CG_CREDENTIALS, "%s %s: %s", method, url,
		               cerr[0] ? cerr : curl_easy_strerror(rc));
	return CG_OK;
}

static struct curl_slist *header(struct curl_slist *l, const char *name, const char *value)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s: %s", name, value);
	l = curl_slist_append(l, b.data);
	sbuf_wipe(&b);
	return l;
}

static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

/* The container's Authorization token: file first, then the variable. */
static enum cg_err container_token(struct sbuf *tok, char *err)
{
	const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *val = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	if (file && *file) {
		enum cg_err rc = read_file(file, 0, tok, err);
		if (rc)
			return rc;
		rtrim(tok);
	} else if (val) {
		sbuf_puts(tok, val);
	}
	if (strpbrk(tok->data, "\r\n"))
		return cg_fail(err, CG_CREDENTIALS,
		               "container: authorization token has a line break");
	return CG_OK;
}

static enum cg_err from_container(struct credentials *c, char *err)
{
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	struct sbuf url, tok, body;
	sbuf_init(&url);
	sbuf_init(&tok);
	sbuf_init(&body);
	struct curl_slist *h = NULL;
	long status = 0;
	enum cg_err rc;
	if (rel && *rel)
		sbuf_printf(&url, "http://169.254.170.2%s", rel);
	else if (full && *full)
		sbuf_puts(&url, full);
	if (url.len == 0) {
		rc = cg_fail(err, CG_CREDENTIALS,
		             "container: AWS_CONTAINER_CREDENTIALS_*_URI not set");
		goto out;
	}
	if (!cred_container_uri_allowed(url.data)) {
		rc = cg_fail(err, CG_CREDENTIALS,
		             "container: %s is not https and not a loopback or container-agent "
		             "address",
		             url.data);
		goto out;
	}
	if ((rc = container_token(&tok, err)))
		goto out;
	if (tok.len)
		h = header(h, "Authorization", tok.data);
	h = curl_slist_append(h, "Accept: application/json");
	if ((rc = fetch("GET", url.data, h, NULL, &status, &body, err)))
		goto out;
	if (status != 200)
		rc = cg_fail(err, CG_CREDENTIALS, "container: %s answered HTTP %ld", url.data,
		             status);
	else if ((rc = cred_parse_container(body.data, body.len, c, err)) == CG_OK)
		c->source = "container";
out:
	free_headers(h);
	sbuf_clean_up(&url);
	sbuf_wipe(&tok);
	sbuf_wipe(&body);
	return rc;
}

static enum cg_err imds_get(const char *url, const char *token, struct sbuf *body, char *err)
{
	struct curl_slist *h = header(NULL, "X-aws-ec2-metadata-token", token);
	long status = 0;
	enum cg_err rc = fetch("GET", url, h, NULL, &status, body, err);
	free_headers(h);
	if (rc == CG_OK && status != 200)
		rc = cg_fail(err, CG_CREDENTIALS, "imds: GET %s answered HTTP %ld", url, status);
	return rc;
}

static enum cg_err from_imds(struct credentials *c, char *err)
{
	const char *off = getenv("AWS_EC2_METADATA_DISABLED");
	if (off && strcasecmp(off, "true") == 0)
		return cg_fail(err, CG_CREDENTIALS, "imds: disabled by AWS_EC2_METADATA_DISABLED");
	const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (!base || !*base)
		base = "http://169.254.169.254";
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	struct sbuf url, token, role, body;
	sbuf_init(&url);
	sbuf_init(&token);
	sbuf_init(&role);
	sbuf_init(&body);
	long status = 0;
	sbuf_printf(&url, "%.*s/latest/api/token", (int)bl, base);
	struct curl_slist *h =
	    curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
	enum cg_err rc = fetch("PUT", url.data, h, NULL, &status, &token, err);
	curl_slist_free_all(h);
	if (rc == CG_OK && (status != 200 || token.len == 0))
		rc = cg_fail(err, CG_CREDENTIALS, "imds: token request answered HTTP %ld", status);
	if (rc)
		goto out;
	rtrim(&token);
	sbuf_reset(&url);
	sbuf_printf(&url, "%.*s/latest/meta-data/iam/security-credentials/", (int)bl, base);
	if ((rc = imds_get(url.data, token.data, &role, err)))
		goto out;
	role.data[strcspn(role.data, "\r\n")] = '\0';
	role.len = strlen(role.data);
	if (role.len == 0 || strchr(role.data, '/')) {
		rc = cg_fail(err, CG_CREDENTIALS, "imds: no instance role is attached");
		goto out;
	}
	sbuf_puts(&url, role.data);
	if ((rc = imds_get(url.data, token.data, &body, err)) == CG_OK &&
	    (rc = cred_parse_container(body.data, body.len, c, err)) == CG_OK)
		c->source = "imds";
out:
	sbuf_clean_up(&url);
	sbuf_wipe(&token);
	sbuf_clean_up(&role);
	sbuf_wipe(&body);
	return rc;
}

static enum cg_err from_iot(const struct iot_cred_config *iot, struct credentials *c, char *err)
{
	struct sbuf url, body;
	sbuf_init(&url);
	sbuf_init(&body);
	if (strncasecmp(iot->endpoint, "https://", 8) == 0)
		sbuf_puts(&url, iot->endpoint);
	else
		sbuf_printf(&url, "https://%s", iot->endpoint);
	while (url.len && url.data[url.len - 1] == '/')
		url.data[--url.len] = '\0';
	sbuf_printf(&url, "/role-aliases/%s/credentials", iot->role_alias);
	struct curl_slist *h = NULL;
	if (*iot->thing_name)
		h = header(h, "x-amzn-iot-thingname", iot->thing_name);
	struct tls_client tls = {iot->cert_file, iot->key_file, iot->ca_file};
	long status = 0;
	enum cg_err rc = fetch("GET", url.data, h, &tls, &status, &body, err);
	if (rc == CG_OK && status != 200) {
		const char *why = status == 403   ? "certificate, thing name or role alias policy "
		                                    "not accepted"
		                  : status == 404 ? "unknown role alias"
		                                  : "error";
		rc = cg_fail(err, CG_CREDENTIALS, "iot: %s answered HTTP %ld (%s): %.120s",
		             url.data, status, why, body.data);
	}
	if (rc == CG_OK && (rc = cred_parse_iot(body.data, body.len, c, err)) == CG_OK)
		c->source = "iot";
	free_headers(h);
	sbuf_clean_up(&url);
	sbuf_wipe(&body);
	return rc;
}

/* One attempt at the configured source. */
static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	const char *s = cfg->source;
	if (strcmp(s, "env") == 0)
		return from_env(c, err);
	if (strcmp(s, "static") == 0)
		return from_static(cfg, c, err);
	if (strcmp(s, "profile") == 0)
		return from_profile(cfg, c, err);
	if (strcmp(s, "container") == 0)
		return from_container(c, err);
	if (strcmp(s, "imds") == 0)
		return from_imds(c, err);
	if (strcmp(s, "iot") == 0)
		return from_iot(&cfg->iot, c, err);
	char e[4][ERR_LEN];
	if (from_env(c, e[0]) == CG_OK)
		return CG_OK;
	credentials_clean_up(c);
	if (from_profile(cfg, c, e[1]) == CG_OK)
		return CG_OK;
	credentials_clean_up(c);
	if (from_container(c, e[2]) == CG_OK)
		return CG_OK;
	credentials_clean_up(c);
	if (from_imds(c, e[3]) == CG_OK)
		return CG_OK;
	credentials_clean_up(c);
	return cg_fail(err, CG_CREDENTIALS, "chain: %.55s; %.55s; %.55s; %.55s", e[0], e[1], e[2],
	               e[3]);
}

/* ---- the provider --------------------------------------------------------- */

static uint32_t rnd32(void)
{
	uint32_t r = 0;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	return r;
}

/* Install a new set (takes c). Called with the lock held. */
static void install(struct cred_provider *p, struct credentials *c, time_t now)
{
	struct snapshot *s = rt_calloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->c = *c;
	memset(c, 0, sizeof(*c));
	s->generation = ++p->generation;
	struct snapshot *old = p->cur;
	p->cur = s;
	snap_unref(old);
	if (s->c.expiration)
		log_info("credentials from %s (access key %.4s...), valid for %lds", s->c.source,
		         s->c.access_key_id, (long)(s->c.expiration - now));
	else
		log_info("credentials from %s (access key %.4s...)", s->c.source,
		         s->c.access_key_id);
}

static void wait_until(struct cred_provider *p, time_t when_s, long extra_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (when_s) {
		ts.tv_sec = when_s;
		ts.tv_nsec = 0;
	}
	ts.tv_sec += extra_ms / 1000;
	ts.tv_nsec += (extra_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

static void *refresher(void *arg)
{
	struct cred_provider *p = arg;
	long retry_ms = RETRY_MIN_MS;
	time_t refresh_at = 0;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		time_t now = time(NULL);
		int need = !p->cur || p->want_refresh || (refresh_at && now >= refresh_at);
		if (!need) {
			wait_until(p, refresh_at, refresh_at ? 0 : 3600 * 1000L);
			continue;
		}
		p->want_refresh = 0;
		pthread_mutex_unlock(&p->lock);
		struct credentials c = {0};
		char err[ERR_LEN];
		enum cg_err rc = load(&p->cfg, &c, err);
		pthread_mutex_lock(&p->lock);
		now = time(NULL);
		if (rc == CG_OK && (c.expiration == 0 || c.expiration > now)) {
			install(p, &c, now);
			refresh_at = cred_refresh_at(now, p->cur->c.expiration, rnd32());
			retry_ms = RETRY_MIN_MS;
			p->last_err[0] = '\0';
		} else {
			if (rc == CG_OK)
				snprintf(err, sizeof(err), "%s: credentials are already expired",
				         c.source);
			credentials_clean_up(&c);
			if (strcmp(err, p->last_err) != 0)
				log_warn("credentials unavailable: %s", err);
			snprintf(p->last_err, sizeof(p->last_err), "%s", err);
			refresh_at = 0;
			if (p->cur && p->cur->c.expiration && p->cur->c.expiration <= now) {
				snap_unref(p->cur); /* expired: stop signing with it */
				p->cur = NULL;
			}
		}
		p->attempted = 1;
		pthread_cond_broadcast(&p->cond);
		if (rc != CG_OK && !p->stop) {
			long wait = retry_ms / 2 + (long)(rnd32() % (uint32_t)(retry_ms / 2 + 1));
			wait_until(p, 0, wait);
			retry_ms = retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
			if (p->cur) /* still valid: refresh when the wait is over */
				p->want_refresh = 1;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void copy_config(struct cred_config *d, const struct cred_config *s)
{
	d->source = rt_strdup(s->source);
	d->access_key_id = rt_strdup(s->access_key_id);
	d->secret_access_key_file = rt_strdup(s->secret_access_key_file);
	d->profile = rt_strdup(s->profile);
	d->iot.endpoint = rt_strdup(s->iot.endpoint);
	d->iot.role_alias = rt_strdup(s->iot.role_alias);
	d->iot.thing_name = rt_strdup(s->iot.thing_name);
	d->iot.cert_file = rt_strdup(s->iot.cert_file);
	d->iot.key_file = rt_strdup(s->iot.key_file);
	d->iot.ca_file = rt_strdup(s->iot.ca_file);
}

static void free_config(struct cred_config *c)
{
	char **all[] = {&c->source,         &c->access_key_id, &c->secret_access_key_file,
	                &c->profile,        &c->iot.endpoint,  &c->iot.role_alias,
	                &c->iot.thing_name, &c->iot.cert_file, &c->iot.key_file,
	                &c->iot.ca_file};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		free(*all[i]);
		*all[i] = NULL;
	}
}

struct cred_provider *cred_provider_new(const struct cred_config *cfg)
{
	struct cred_provider *p = rt_calloc(1, sizeof(*p));
	copy_config(&p->cfg, cfg);
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(p->last_err, sizeof(p->last_err), "credentials are not loaded yet");
	if (pthread_create(&p->thread, NULL, refresher, p) != 0)
		abort();
	return p;
}

void cred_provider_free(struct cred_provider *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	snap_unref(p->cur);
	snap_unref(p->held);
	free_config(&p->cfg);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void cred_provider_wait_first(struct cred_provider *p, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (!p->attempted)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) != 0)
			break;
	pthread_mutex_unlock(&p->lock);
}

enum cg_err cred_provider_get(struct cred_provider *p, struct sigv4_credentials *out, char *err)
{
	pthread_mutex_lock(&p->lock);
	struct snapshot *s = p->cur;
	if (s && s->c.expiration && s->c.expiration <= time(NULL))
		s = NULL; /* the thread will notice; never sign with an expired set */
	if (!s) {
		enum cg_err rc = cg_fail(err, CG_CREDENTIALS, "%s", p->last_err);
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	if (s != p->held) {
		atomic_fetch_add(&s->refs, 1);
		snap_unref(p->held);
		p->held = s;
	}
	pthread_mutex_unlock(&p->lock);
	out->access_key_id = s->c.access_key_id;
	out->secret_access_key = s->c.secret_access_key;
	out->session_token = s->c.session_token;
	out->generation = s->generation;
	return CG_OK;
}

void cred_provider_invalidate(struct cred_provider *p, uint64_t generation)
{
	pthread_mutex_lock(&p->lock);
	if (p->cur && p->cur->generation == generation && !p->want_refresh) {
		log_info("credentials of %s expired early; refreshing", p->cur->c.source);
		p->want_refresh = 1;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

void cred_provider_info(struct cred_provider *p, const char **source, time_t *expiry)
{
	pthread_mutex_lock(&p->lock);
	*source = p->cur ? p->cur->c.source : NULL;
	*expiry = p->cur ? p->cur->c.expiration : 0;
	pthread_mutex_unlock(&p->lock);
}
