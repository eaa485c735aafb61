/*
 * credentials/fetch: the one small blocking HTTP client the credential
 * sources share (container, imds, iot). A request is a method, a URL, a few
 * headers and optional client TLS; the answer is a status and a body of at
 * most 64 KiB. Timeouts are short (1 s to connect, 3 s in all), redirects are
 * not followed, only http and https are spoken. Runs on the provider's
 * thread only. Unit tests replace this function with their own.
 */
#ifndef CMDGATE_CREDENTIALS_FETCH_H
#define CMDGATE_CREDENTIALS_FETCH_H

#include "err.h"
#include "sbuf.h"

#define CRED_FETCH_HEADERS 4

struct cred_fetch {
	const char *method; /* "GET" or "PUT" (with an empty body) */
	const char *url;
	/* "Name: value" lines, NULL-terminated; may carry secrets (the caller
	 * owns and wipes them; fetch wipes its own copies). */
	const char *headers[CRED_FETCH_HEADERS + 1];
	const char *cert_file, *key_file, *ca_file; /* client TLS; NULL or "": none */
};

/* CG_OK when any HTTP answer came back (*status set, body filled); else the
 * error class with the reason in err, and *status 0. */
enum cg_err cred_fetch(const struct cred_fetch *req, long *status, struct sbuf *body, char *err);

#endif
