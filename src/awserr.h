/*
 * awserr: what an AWS response means. Pure.
 *
 * Reads the error code from x-amzn-ErrorType, else the body's __type or
 * code, normalised ("prefix#Code:suffix" -> "Code"), the message from
 * message/Message, and classifies the answer: retryable (429, 5xx,
 * throttling), clock skew (signature expired / not yet current), expired
 * session token.
 */
#ifndef CMDGATE_AWSERR_H
#define CMDGATE_AWSERR_H

#include <stddef.h>
#include <time.h>

#include "err.h"

struct awserr {
	int http_status;
	char code[128];
	char message[512];
	int retryable;     /* may succeed when the same request is sent again */
	int throttled;     /* the service asked us to slow down */
	int clock_skew;    /* our clock is off; re-sign with the server's time */
	int expired_token; /* the session token expired; refresh and re-sign */
};

void awserr_parse(int http_status, const char *error_type_header, const char *body, size_t len,
                  struct awserr *out);

/* Normalise an error code in place: drop up to the last '#', then from ':'. */
void awserr_code_normalise(char *code);

/* executionId from a 2xx body. */
enum cg_err awserr_execution_id(const char *body, size_t len, char *out, size_t n, char *err);

/* An RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); 0 on success. */
int awserr_http_date(const char *s, time_t *out);

#endif
