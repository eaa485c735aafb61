/*
 * view: a (pointer, length) pair that owns nothing, beside sbuf, which owns
 * its bytes (aws-c-common's cursor and buffer). A view names bytes someone
 * else keeps alive: a field of a record being encoded or decoded, a part of
 * a message being handed on. The bytes need not be NUL-terminated and may
 * hold NULs; ptr NULL (len 0) is "none" where a field is optional.
 */
#ifndef CMDGATE_VIEW_H
#define CMDGATE_VIEW_H

#include <stddef.h>
#include <string.h>

struct view {
	const char *ptr;
	size_t len;
};

/* A view of n bytes at p. */
static inline struct view view_of(const void *p, size_t n)
{
	struct view v = {(const char *)p, n};
	return v;
}

/* A view of a C string without its NUL; NULL gives the empty view. */
static inline struct view view_of_str(const char *s)
{
	struct view v = {s, s ? strlen(s) : 0};
	return v;
}

#endif
