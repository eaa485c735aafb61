/*
 * cred_parse: the pure half of credentials. Parsing of every source's
 * answer (shared credentials file, container and IMDS JSON, the AWS IoT
 * credentials provider's JSON), expiry timestamps, the rule for which
 * container endpoints may be used over plain HTTP, and when to refresh.
 * No I/O and no clock: time comes in as an argument.
 */
#ifndef CMDGATE_CRED_PARSE_H
#define CMDGATE_CRED_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

/* Owned strings; wipe with credentials_clean_up(). */
struct credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL when none */
	time_t expiration;   /* 0: does not expire */
	const char *source;  /* static string naming the source */
};

void credentials_clean_up(struct credentials *c);

/* The [profile] section of an AWS CLI credentials file. */
enum cg_err cred_parse_profile(const char *text, const char *profile, struct credentials *out,
                               char *err);
/* {AccessKeyId, SecretAccessKey, Token, Expiration}: container and IMDS. */
enum cg_err cred_parse_container(const char *body, size_t len, struct credentials *out, char *err);
/* {"credentials":{accessKeyId, secretAccessKey, sessionToken, expiration}} */
enum cg_err cred_parse_iot(const char *body, size_t len, struct credentials *out, char *err);

/* "2026-11-26T10:45:16Z", with optional fraction and +hh:mm offset. 0 on success. */
int cred_parse_time(const char *s, time_t *out);

/* Whether the container provider may use this full URI: https anywhere,
 * http only to loopback or the ECS/EKS link-local agent addresses. The host
 * is the one libcurl's URL parser finds (url.h), user info is not a host. */
int cred_container_uri_allowed(const char *uri);

/* When to refresh credentials that expire at exp: a few minutes ahead (at
 * most half their remaining life), minus a jitter drawn from rnd. */
time_t cred_refresh_at(time_t now, time_t exp, uint32_t rnd);

#endif
