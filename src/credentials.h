/*
 * credentials: where the AWS keys come from, kept fresh.
 *
 * Sources (docs/configuration.md, following the AWS SDKs): static, env,
 * profile, container, imds, iot, and chain (env, profile, container, imds:
 * the first that yields credentials wins), one file each in credentials/
 * behind struct cred_source. A provider (credentials/provider.c) owns one
 * background thread that loads credentials, refreshes temporary ones ahead of
 * expiry (with jitter) and retries failures with backoff while the old ones
 * stay in use. The engine only ever takes the current set under a short
 * lock: it never waits for the network. Secrets are wiped when a set is
 * released.
 */
#ifndef CMDGATE_CREDENTIALS_H
#define CMDGATE_CREDENTIALS_H

#include <stdint.h>
#include <time.h>

#include "config.h"
#include "cred_parse.h"
#include "err.h"
#include "sigv4.h"

struct cred_provider;

/* Start the provider (and its thread). cfg is copied. */
struct cred_provider *cred_provider_new(const struct cred_config *cfg);
/* Stop the thread and wipe everything. */
void cred_provider_free(struct cred_provider *p);

/* Wait up to timeout_ms for the first load attempt to finish. */
void cred_provider_wait_first(struct cred_provider *p, int timeout_ms);

/*
 * The current credentials as views, valid until the next call of this
 * function from the same (engine) thread. CG_CREDENTIALS with the reason
 * when none are usable now.
 */
enum cg_err cred_provider_get(struct cred_provider *p, struct sigv4_credentials *out, char *err);

/* The source of the current credentials (a static string, NULL when none)
 * and their expiry (0: never). */
void cred_provider_info(struct cred_provider *p, const char **source, time_t *expiry);

/* AWS said the credentials of this generation expired: refresh now. */
void cred_provider_invalidate(struct cred_provider *p, uint64_t generation);

/* Whether two credential configurations differ (a reload rebuilds the
 * provider only then). */
int cred_config_differ(const struct cred_config *a, const struct cred_config *b);

#endif
