/* runtime: allocation that aborts on out-of-memory, the clocks, randomness. */
#include "runtime.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Noreturn void rt_oom(const char *what)
{
	static const char head[] = "cmdgate: out of memory (";
	fflush(stderr); /* what was logged before: its buffer is static */
	ssize_t r = write(STDERR_FILENO, head, sizeof(head) - 1);
	r = write(STDERR_FILENO, what, strlen(what));
	r = write(STDERR_FILENO, ")\n", 2);
	(void)r;
	abort();
}

void *rt_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		rt_oom("malloc");
	return p;
}

void *rt_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		rt_oom("calloc");
	return p;
}

void *rt_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		rt_oom("realloc");
	return q;
}

char *rt_memdup(const void *p, size_t n)
{
	char *d = rt_malloc(n + 1);
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

char *rt_strdup(const char *s)
{
	return s ? rt_memdup(s, strlen(s)) : rt_memdup("", 0);
}

uint64_t rt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

time_t rt_wall_s(void)
{
	return time(NULL);
}

struct timespec rt_wall_after_ms(long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int rt_random(void *buf, size_t len)
{
	if (len > (size_t)INT32_MAX || RAND_bytes(buf, (int)len) != 1) {
		memset(buf, 0, len);
		return -1;
	}
	return 0;
}

int64_t rt_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint32_t rt_random_u32(void)
{
	uint32_t r = 0;
	if (rt_random(&r, sizeof(r)) != 0)
		r = (uint32_t)rt_now_ms() * 2654435761u;
	return r;
}
