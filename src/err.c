/* err: names of the error classes and the single retry rule. */
#include "err.h"

#include <stdio.h>

const char *cg_strerror(enum cg_err e)
{
	switch (e) {
	case CG_OK:
		return "ok";
	case CG_INVALID:
		return "invalid input";
	case CG_NOMEM:
		return "out of memory";
	case CG_TIMEOUT:
		return "timed out";
	case CG_TRANSPORT:
		return "transport error";
	case CG_REMOTE:
		return "remote error";
	case CG_IO:
		return "I/O error";
	case CG_CONFIG:
		return "configuration error";
	case CG_CREDENTIALS:
		return "credentials unavailable";
	case CG_INTERNAL:
		return "internal error";
	}
	return "unknown error";
}

int cg_can_retry(enum cg_err e)
{
	return e == CG_TIMEOUT || e == CG_TRANSPORT;
}

enum cg_err cg_fail(char *err, enum cg_err code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, ERR_LEN, fmt, ap);
		va_end(ap);
	}
	return code;
}
