/* runtime: see runtime.h. */
#include "runtime.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Noreturn void rt_die(const char *msg)
{
	fflush(stderr); /* what was logged before (its buffer is static) */
	ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
	r = write(STDERR_FILENO, "\n", 1);
	(void)r;
	abort();
}

void *rt_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		rt_die("cmdgate: out of memory");
	return p;
}

void *rt_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		rt_die("cmdgate: out of memory");
	return p;
}

void *rt_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		rt_die("cmdgate: out of memory");
	return q;
}

char *rt_strdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		rt_die("cmdgate: out of memory");
	return d;
}

char *rt_strndup(const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (!d)
		rt_die("cmdgate: out of memory");
	return d;
}

uint64_t rt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t rt_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rt_random(void *buf, size_t len)
{
	if (len > (size_t)INT32_MAX)
		return -1;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

uint32_t rt_random_u32(void)
{
	uint32_t r = 0;
	if (rt_random(&r, sizeof(r)) != 0)
		r = (uint32_t)rt_now_ms() * 2654435761u;
	return r;
}
