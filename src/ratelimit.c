/* ratelimit: an adaptive token bucket (see ratelimit.h for the rules). */
#include "ratelimit.h"

void ratelimit_init(struct ratelimit *r, double max_rate, uint64_t now_ms)
{
	r->max_rate = max_rate;
	r->rate = max_rate;
	r->tokens = max_rate > 0 ? max_rate : 0;
	r->last_ms = now_ms;
	r->observed = 0;
	r->window_start_ms = now_ms;
	r->window_count = 0;
}

static void observe(struct ratelimit *r, uint64_t now_ms)
{
	r->window_count++;
	uint64_t span = now_ms - r->window_start_ms;
	if (span >= 1000) {
		double cur = (double)r->window_count * 1000.0 / (double)span;
		r->observed = r->observed > 0 ? 0.5 * r->observed + 0.5 * cur : cur;
		r->window_start_ms = now_ms;
		r->window_count = 0;
	}
}

uint64_t ratelimit_take(struct ratelimit *r, uint64_t now_ms)
{
	if (r->rate <= 0) {
		observe(r, now_ms);
		return 0;
	}
	double burst = r->rate < 1 ? 1 : r->rate;
	r->tokens += (double)(now_ms - r->last_ms) * r->rate / 1000.0;
	if (r->tokens > burst)
		r->tokens = burst;
	r->last_ms = now_ms;
	if (r->tokens >= 1) {
		r->tokens -= 1;
		observe(r, now_ms);
		return 0;
	}
	return (uint64_t)((1 - r->tokens) * 1000.0 / r->rate) + 1;
}

void ratelimit_on_throttle(struct ratelimit *r, uint64_t now_ms)
{
	if (r->last_cut_ms && now_ms - r->last_cut_ms < 1000)
		return;
	r->last_cut_ms = now_ms;
	double sent = r->observed;
	uint64_t span = now_ms - r->window_start_ms;
	if (span > 0 && r->window_count > 0) {
		double cur = (double)r->window_count * 1000.0 / (double)span;
		if (cur > sent)
			sent = cur;
	}
	double base = r->rate > 0 && (sent <= 0 || r->rate < sent) ? r->rate : sent;
	double next = base * 0.7;
	if (next < 1)
		next = 1;
	if (r->tokens > 1)
		r->tokens = 1;
	r->rate = next;
	r->last_ms = now_ms;
}

void ratelimit_on_success(struct ratelimit *r)
{
	if (r->rate <= 0)
		return;
	double step = r->rate * 0.05;
	r->rate += step < 0.5 ? 0.5 : step;
	if (r->max_rate > 0 && r->rate >= r->max_rate)
		r->rate = r->max_rate;
	else if (r->max_rate <= 0 && r->observed > 0 && r->rate > 4 * r->observed + 10)
		r->rate = 0; /* recovered well past what we send: unlimited again */
}
