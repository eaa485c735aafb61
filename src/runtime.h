/*
 * runtime: the one place for three low-level concerns every module shares.
 *
 * Allocation: rt_malloc and friends never return NULL. Running out of
 * memory is not an error a daemon can handle request by request, so it is
 * reported once, with write(2) (no stdio buffer, no allocation), and the
 * process aborts; systemd or the container runtime restarts it and the spool
 * resumes what was in progress.
 *
 * Clocks: rt_now_ms() is monotonic, for deadlines, timeouts and rates;
 * rt_wall_s() is the calendar time, for signing dates, credential expiry and
 * timestamps. The pure core never calls either: time comes in as arguments.
 *
 * Randomness: rt_random() fills a buffer from OpenSSL's CSPRNG and fails
 * closed: -1 when RAND_bytes fails, never a weaker fallback. Callers that
 * need a token answer an error instead.
 */
#ifndef CMDGATE_RUNTIME_H
#define CMDGATE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

void *rt_malloc(size_t n);
void *rt_calloc(size_t n, size_t size);
void *rt_realloc(void *p, size_t n);
/* A copy of s; NULL is copied as "". */
char *rt_strdup(const char *s);
/* A NUL-terminated copy of n bytes at p (which need not be a string). */
char *rt_memdup(const void *p, size_t n);
/* Write "cmdgate: out of memory (what)" to stderr and abort. */
_Noreturn void rt_oom(const char *what);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t rt_now_ms(void);
/* Seconds since the epoch (CLOCK_REALTIME). */
time_t rt_wall_s(void);
/* Milliseconds since the epoch (CLOCK_REALTIME), for the spool. */
int64_t rt_wall_ms(void);
/* CLOCK_REALTIME now plus ms, as an absolute time for pthread_cond_timedwait. */
struct timespec rt_wall_after_ms(long ms);

/* Fill buf with len cryptographically random bytes: 0, or -1 on failure
 * (buf is then zeroed). */
int rt_random(void *buf, size_t len);
/* A random number for jitter (never for tokens or secrets): from the strong
 * source, else from the clock. */
uint32_t rt_random_u32(void);

#endif
