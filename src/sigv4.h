/*
 * sigv4: AWS Signature Version 4, pure.
 *
 * No clock and no credential lookup happen here: the caller passes the
 * request time (as the 16-character x-amz-date text) and the credentials.
 * Each stage of the algorithm is a public function so that tests can compare
 * it with the published test suite: canonical request, string to sign,
 * signing key, signature, Authorization header.
 *
 * The derived signing key depends only on (secret, day, region, service), so
 * struct sigv4_key_cache keeps the last one; it is wiped when replaced.
 */
#ifndef CMDGATE_SIGV4_H
#define CMDGATE_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sbuf.h"

#define SIGV4_DATE_LEN 16 /* "20150830T123600Z" */

struct sigv4_header {
	const char *name;  /* any case; lowercased when canonicalised */
	const char *value; /* trimmed and space-collapsed when canonicalised */
};

/* A request as the signer sees it. Views only: nothing here is owned. */
struct sigv4_request {
	const char *method;
	const char *path;  /* e.g. "/command-executions" */
	const char *query; /* raw query without '?', or NULL */
	const struct sigv4_header *headers;
	size_t n_headers;
	const char *payload_hash; /* lowercase hex SHA-256 of the exact body */
};

/* Credentials as views; the caller keeps them alive and wipes them. */
struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL or "" when none */
	uint64_t generation;       /* changes whenever the secret changes */
};

struct sigv4_key_cache {
	char date[9];
	char region[64];
	char service[64];
	uint64_t generation;
	int valid;
	unsigned char key[32];
};

/* The x-amz-date text of t: 0, or -1 (out "") when t is not a time AWS
 * would accept from a sane clock (years SIGV4_YEAR_MIN..SIGV4_YEAR_MAX), so
 * a hostile clock correction can never produce a short or unterminated date. */
#define SIGV4_YEAR_MIN 2000
#define SIGV4_YEAR_MAX 2199
int sigv4_format_date(time_t t, char out[SIGV4_DATE_LEN + 1]);
void sigv4_sha256_hex(const void *data, size_t n, char out[65]);

/* Canonical request into creq, and the ';'-joined signed header names into
 * signed_headers. Both buffers are appended to. */
void sigv4_canonical_request(const struct sigv4_request *req, struct sbuf *creq,
                             struct sbuf *signed_headers);
void sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                          const char *creq, struct sbuf *out);
void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32]);
void sigv4_signature(const unsigned char key[32], const char *sts, char out[65]);

/*
 * The whole thing: appends the Authorization header value to authz. The key
 * cache may be NULL. The headers must already contain host and x-amz-date
 * (and x-amz-security-token when the credentials have one).
 */
void sigv4_authorize(const struct sigv4_request *req, const struct sigv4_credentials *cred,
                     const char *region, const char *service, const char *amz_date,
                     struct sigv4_key_cache *cache, struct sbuf *authz);

void sigv4_key_cache_clean_up(struct sigv4_key_cache *cache);

#endif
