/*
 * err: the one error enum of cmdgate. Values are classes, not causes; the
 * cause travels as text in a caller-supplied buffer (char err[ERR_LEN]).
 * Library codes (curl, Paho, OpenSSL) are translated into these in exactly one
 * place each, next to the code that calls the library.
 */
#ifndef CMDGATE_ERR_H
#define CMDGATE_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define ERR_LEN 256

enum cg_err {
	CG_OK = 0,
	CG_INVALID,     /* input does not satisfy the contract */
	CG_NOMEM,       /* allocation failed */
	CG_TIMEOUT,     /* a deadline or timeout passed */
	CG_TRANSPORT,   /* connection refused/reset, DNS, TLS: may succeed later */
	CG_REMOTE,      /* the peer answered, with an error */
	CG_IO,          /* local file system */
	CG_CONFIG,      /* configuration is wrong */
	CG_CREDENTIALS, /* no usable credentials */
	CG_INTERNAL,    /* a bug */
};

const char *cg_strerror(enum cg_err e);
/* Whether an operation that failed with e may succeed if repeated. */
int cg_can_retry(enum cg_err e);
/* Format into err (ERR_LEN bytes) and return code; err may be NULL. */
enum cg_err cg_fail(char *err, enum cg_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
