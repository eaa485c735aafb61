/*
 * credentials/provider: the configured source, kept fresh on a thread of its
 * own. Implements credentials.h.
 *
 * struct snapshot is immutable once installed, ref-counted and thread-safe:
 * the refresh thread replaces `cur` under the lock, and the engine keeps a
 * reference to the snapshot it signs with (`held`), so a refresh never frees
 * keys that are being used. Generations number the snapshots, so the signer
 * can cache derived keys per generation and AWS's "token expired" can name
 * the set it refused.
 *
 * The refresh loop: load when there is no set, when asked to, or at the time
 * cred_refresh_at() chose (a few minutes before expiry, with jitter). A
 * failure is retried with backoff (backoff_equal_jitter, 0.5 s doubling to
 * 10 s) while a still-valid set stays in use; an expired set is dropped so
 * nothing is signed with it.
 */
#include "credentials.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "runtime.h"
#include "source.h"

#define RETRY_BASE_MS 500
#define RETRY_CAP_MS  10000
#define IDLE_WAIT_MS  (3600 * 1000L)

/* Ref-counted, thread-safe: the last unref (any thread) wipes the secrets. */
struct snapshot {
	atomic_int refs;
	struct credentials c; /* immutable once installed */
	uint64_t generation;
};

struct cred_provider {
	struct cred_config cfg; /* owned copies */
	const struct cred_source *source;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct snapshot *cur;              /* guarded by lock */
	struct snapshot *held;             /* the engine's reference; engine thread only */
	int stop, want_refresh, attempted; /* guarded by lock */
	uint64_t generation;               /* guarded by lock */
	char last_err[ERR_LEN];            /* guarded by lock */
};

static void snap_unref(struct snapshot *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		credentials_clean_up(&s->c);
		free(s);
	}
}

/* Jitter needs no secrecy: if the CSPRNG fails, rt_random leaves 0 and the
 * delay is simply the lower bound. */
static uint32_t jitter(void)
{
	uint32_t r = 0;
	(void)rt_random(&r, sizeof(r));
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
	snap_unref(p->cur);
	p->cur = s;
	if (s->c.expiration)
		log_info("credentials from %s (access key %.4s...), valid for %lds", s->c.source,
		         s->c.access_key_id, (long)(s->c.expiration - now));
	else
		log_info("credentials from %s (access key %.4s...)", s->c.source,
		         s->c.access_key_id);
}

/* Note a failed load. Called with the lock held. */
static void failed(struct cred_provider *p, const char *err, time_t now)
{
	if (strcmp(err, p->last_err) != 0)
		log_warn("credentials unavailable: %s", err);
	snprintf(p->last_err, sizeof(p->last_err), "%s", err);
	if (p->cur && p->cur->c.expiration && p->cur->c.expiration <= now) {
		snap_unref(p->cur); /* expired: stop signing with it */
		p->cur = NULL;
	}
}

/* Wait on the condition until the wall-clock second when_s (0: now) plus ms. */
static void wait_until(struct cred_provider *p, time_t when_s, long ms)
{
	struct timespec ts = rt_wall_after_ms(ms);
	if (when_s)
		ts.tv_sec = when_s + ms / 1000;
	pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

/* One load, made without the lock. Returns 1 when a usable set was installed. */
static int refresh_once(struct cred_provider *p, time_t *refresh_at)
{
	p->want_refresh = 0;
	pthread_mutex_unlock(&p->lock);
	struct credentials c = {0};
	char err[ERR_LEN];
	enum cg_err rc = cred_source_load(p->source, &p->cfg, &c, err);
	pthread_mutex_lock(&p->lock);
	time_t now = rt_wall_s();
	int ok = rc == CG_OK && (c.expiration == 0 || c.expiration > now);
	if (ok) {
		install(p, &c, now);
		*refresh_at = cred_refresh_at(now, p->cur->c.expiration, jitter());
		p->last_err[0] = '\0';
	} else {
		if (rc == CG_OK)
			snprintf(err, sizeof(err), "%s: credentials are already expired", c.source);
		credentials_clean_up(&c);
		failed(p, err, now);
		*refresh_at = 0;
	}
	p->attempted = 1;
	pthread_cond_broadcast(&p->cond);
	return ok;
}

static void *refresher(void *arg)
{
	struct cred_provider *p = arg;
	unsigned failures = 0;
	time_t refresh_at = 0;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		int due = refresh_at && rt_wall_s() >= refresh_at;
		if (p->cur && !p->want_refresh && !due) {
			wait_until(p, refresh_at, refresh_at ? 0 : IDLE_WAIT_MS);
			continue;
		}
		if (refresh_once(p, &refresh_at)) {
			failures = 0;
			continue;
		}
		if (p->stop)
			break;
		failures++;
		wait_until(
		    p, 0,
		    (long)backoff_equal_jitter(failures, RETRY_BASE_MS, RETRY_CAP_MS, jitter()));
		if (p->cur) /* still valid: refresh when the wait is over */
			p->want_refresh = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The string members of a cred_config, for copying and freeing alike. */
static void config_strings(struct cred_config *c, char **out[10])
{
	char **all[10] = {&c->source,         &c->access_key_id, &c->secret_access_key_file,
	                  &c->profile,        &c->iot.endpoint,  &c->iot.role_alias,
	                  &c->iot.thing_name, &c->iot.cert_file, &c->iot.key_file,
	                  &c->iot.ca_file};
	memcpy(out, all, sizeof(all));
}

static void copy_config(struct cred_config *d, const struct cred_config *s)
{
	char **dst[10], **src[10];
	*d = *s;
	config_strings(d, dst);
	config_strings((struct cred_config *)s, src);
	for (size_t i = 0; i < 10; i++)
		*dst[i] = rt_strdup(*src[i]);
}

static void free_config(struct cred_config *c)
{
	char **all[10];
	config_strings(c, all);
	for (size_t i = 0; i < 10; i++) {
		free(*all[i]);
		*all[i] = NULL;
	}
}

struct cred_provider *cred_provider_new(const struct cred_config *cfg)
{
	struct cred_provider *p = rt_calloc(1, sizeof(*p));
	copy_config(&p->cfg, cfg);
	p->source = cred_source_find(p->cfg.source);
	if (!p->source) /* config.c only lets known names through */
		p->source = &cred_source_chain;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	snprintf(p->last_err, sizeof(p->last_err), "credentials are not loaded yet");
	if (pthread_create(&p->thread, NULL, refresher, p) != 0)
		rt_oom("credentials thread");
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
	struct timespec until = rt_wall_after_ms(timeout_ms);
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
	if (s && s->c.expiration && s->c.expiration <= rt_wall_s())
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
