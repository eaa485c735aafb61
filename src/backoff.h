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
 * Token bucket with an adaptive rate. rate <= 0 means unlimited unless the
 * service has throttled us. On throttling the rate halves (from the observed
 * rate when unlimited); each success adds back a little, up to max_rate.
 */
struct rate_limiter {
	double max_rate; /* configured cap; 0 = none */
	double rate;     /* current allowed calls/s; 0 = unlimited */
	double tokens;
	uint64_t last_ms;
	double observed; /* smoothed calls/s actually sent */
	uint64_t window_start_ms;
	unsigned window_count;
};

void rate_init(struct rate_limiter *r, double max_rate, uint64_t now_ms);
/* 0 when a call may start now (a token is taken), else ms to wait. */
uint64_t rate_take(struct rate_limiter *r, uint64_t now_ms);
void rate_on_throttle(struct rate_limiter *r, uint64_t now_ms);
void rate_on_success(struct rate_limiter *r);

#endif
