/*
 * backoff: retry delays and send-rate limiting. Pure: time and randomness
 * come in as arguments, so behaviour is reproducible in tests.
 */
#ifndef CMDGATE_BACKOFF_H
#define CMDGATE_BACKOFF_H

#include <stdint.h>

/*
 * Capped exponential backoff with full jitter: a delay uniformly drawn from
 * [0, min(cap_ms, base_ms * 2^(retry-1))], retry counting from 1. rnd is a
 * uniformly random 32-bit number.
 */
uint64_t backoff_full_jitter(unsigned retry, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd);

/*
 * The same ceiling with "equal jitter": a delay drawn from [ceiling/2,
 * ceiling]. For loops that must not hammer a peer that keeps failing
 * (credential refresh, reconnects): the wait never collapses to zero.
 */
uint64_t backoff_equal_jitter(unsigned retry, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd);

/*
 * Token bucket with an adaptive rate. rate <= 0 means unlimited unless the
 * service has throttled us. On throttling the rate drops to 70% of what was
 * being sent (at most once a second: one burst of throttled calls is one
 * signal, not many); each success adds 5% back, up to max_rate, and far
 * above the sending rate the limit is lifted again.
 */
struct rate_limiter {
	double max_rate; /* configured cap; 0 = none */
	double rate;     /* current allowed calls/s; 0 = unlimited */
	double tokens;
	uint64_t last_ms;
	double observed; /* smoothed calls/s actually sent */
	uint64_t window_start_ms;
	unsigned window_count;
	uint64_t last_cut_ms;
};

void rate_init(struct rate_limiter *r, double max_rate, uint64_t now_ms);
/* 0 when a call may start now (a token is taken), else ms to wait. */
uint64_t rate_take(struct rate_limiter *r, uint64_t now_ms);
void rate_on_throttle(struct rate_limiter *r, uint64_t now_ms);
void rate_on_success(struct rate_limiter *r);

#endif
