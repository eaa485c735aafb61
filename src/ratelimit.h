/*
 * ratelimit: how fast calls may start. Pure: time comes in as an argument,
 * so behaviour is reproducible in tests.
 *
 * A token bucket with an adaptive rate. rate <= 0 means unlimited unless the
 * service has throttled us. On throttling the rate drops to 70% of what was
 * being sent (at most once a second: one burst of throttled calls is one
 * signal, not many); each success adds 5% back, up to max_rate, and far
 * above the sending rate the limit is lifted again.
 */
#ifndef CMDGATE_RATELIMIT_H
#define CMDGATE_RATELIMIT_H

#include <stdint.h>

struct ratelimit {
	double max_rate; /* configured cap; 0 = none */
	double rate;     /* current allowed calls/s; 0 = unlimited */
	double tokens;
	uint64_t last_ms;
	double observed; /* smoothed calls/s actually sent */
	uint64_t window_start_ms;
	unsigned window_count;
	uint64_t last_cut_ms;
};

void ratelimit_init(struct ratelimit *r, double max_rate, uint64_t now_ms);
/* 0 when a call may start now (a token is taken), else ms to wait. */
uint64_t ratelimit_take(struct ratelimit *r, uint64_t now_ms);
void ratelimit_on_throttle(struct ratelimit *r, uint64_t now_ms);
void ratelimit_on_success(struct ratelimit *r);

#endif
