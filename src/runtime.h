/*
 * runtime: the process's low-level choke points. Allocation that cannot
 * fail quietly (out of memory is reported with write(2), which needs no
 * memory, then abort), the clocks, and a random source that fails closed.
 */
#ifndef CMDGATE_RUNTIME_H
#define CMDGATE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

void *rt_malloc(size_t n);
void *rt_calloc(size_t n, size_t size);
void *rt_realloc(void *p, size_t n);
char *rt_strdup(const char *s);
char *rt_strndup(const char *s, size_t n);

/* Monotonic milliseconds. */
uint64_t rt_now_ms(void);
/* Wall-clock milliseconds since the epoch. */
int64_t rt_wall_ms(void);

/* Fill buf with cryptographically strong random bytes: 0, or -1 when the
 * generator fails (never a weaker fallback). */
int rt_random(void *buf, size_t len);

/* A random number for jitter (never for secrets or tokens): from the
 * strong source, else from the clock. */
uint32_t rt_random_u32(void);

/* Write msg to stderr with write(2) and abort. */
_Noreturn void rt_die(const char *msg);

#endif
