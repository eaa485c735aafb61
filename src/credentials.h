/*
 * credentials: where the AWS keys come from. This file does file and
 * environment I/O; the engine calls it only from its own thread.
 *
 * Sources implemented: static (access_key_id + secret_access_key_file),
 * env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
 * profile (the shared credentials file) and chain (env, then profile).
 * Secrets live only in struct credentials and are cleansed when replaced.
 */
#ifndef CMDGATE_CREDENTIALS_H
#define CMDGATE_CREDENTIALS_H

#include <stdint.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "sigv4.h"

struct credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL when none */
	time_t expiration;   /* 0: does not expire */
	const char *source;  /* static string: "env", "static", "profile" */
};

struct cred_provider;

struct cred_provider *cred_provider_new(const struct cred_config *cfg);
void cred_provider_free(struct cred_provider *p);

/*
 * Current credentials as sigv4 views, valid until the next call. Loads them
 * on first use and tries again (at most once per second) after a failure.
 */
enum cg_err cred_provider_get(struct cred_provider *p, uint64_t now_ms,
                              struct sigv4_credentials *out, char *err);

/* Exposed for tests: parse an INI credentials file's profile. */
enum cg_err cred_parse_profile(const char *text, const char *profile, struct credentials *out,
                               char *err);
void credentials_clean_up(struct credentials *c);

#endif
