/*
 * jsonw: a tiny JSON writer into an sbuf, for the two documents written per
 * request (the AWS body and the device reply). jansson's json_dumps cost
 * about a third of the gateway's own instructions per request; this writes
 * the same bytes directly. Pure.
 */
#ifndef CMDGATE_JSONW_H
#define CMDGATE_JSONW_H

#include <jansson.h>

#include "sbuf.h"

/* A JSON string literal with the escapes JSON requires ("\"", "\\", control
 * characters); s must be valid UTF-8 (bytes >= 0x80 are copied). */
void jsonw_string(struct sbuf *b, const char *s, size_t n);
/* "name": — with a leading comma unless first. */
void jsonw_key(struct sbuf *b, const char *name, int first);
/* Any jansson value, compact, in insertion order (as json_dumps with
 * JSON_COMPACT | JSON_REAL_PRECISION(17) writes it). */
void jsonw_value(struct sbuf *b, const json_t *v);

#endif
