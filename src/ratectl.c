/*
 * ratectl: adaptive send rate (see ratectl.h for the design).
 *
 * Why a cubic curve and not "+5 % per success": growth per success is
 * growth in proportion to the rate itself, i.e. exponential in time; at a
 * quota it overshoots within a second and most calls meet 429s. The curve
 * here depends on time since the cut only: it dwells near the rate that
 * was last throttled (where the quota is) and leaves it fast once that rate
 * has held for a while. Between cuts the rate spends ~2 s below w_max; the
 * service's own bucket saves those calls and they are spent in the ~2 s
 * above it, so AWS keeps accepting at its quota and one cycle of ~4 s costs
 * one or two 429s.
 *
 * Taken from botocore's adaptive mode (retries/adaptive.py, throttling.py,
 * bucket.py; aws-sdk-go-v2 aws/retry/adaptive_ratelimit.go is the same):
 * beta 0.7, a bucket holding one second of calls, a 0.5 calls/s floor, the
 * send rate measured in half-second windows smoothed 0.8, the cut based on
 * min(measured, allowed), the allowed rate capped at 2 x measured. Changed:
 *   - The curve's scale is w_max-relative (botocore's is 0.4 calls/s^3
 *     absolute: back from a cut in 2.5 s at 20/s but 5.3 s at 200/s, and 5 x
 *     a 200/s quota only after ~18 s, past the 10 s the spec allows).
 *   - One cut per congestion event: a 429 for a call started before the
 *     last cut is counted, not acted on (botocore cuts on each one, so the
 *     throttled calls of one burst cut the rate many times over).
 *   - The bucket is emptied at a cut, so the first call after it waits one
 *     interval instead of meeting the still-empty service bucket at once.
 *   - The limit is lifted again once the curve passes 10 x w_max (botocore
 *     keeps it forever; aws-sdk-go-v2 documents "eventually restored").
 *
 * Invariants: fill >= RATECTL_MIN_RATE whenever the bucket is active;
 * 0 <= tokens <= burst(fill); cut_ms <= every later now_ms.
 */
#include "ratectl.h"

#include <math.h>

#define RATECTL_BETA        0.7   /* a cut keeps 70 % of the rate sent */
#define RATECTL_K_S         2.0   /* seconds for the curve to climb back to w_max */
#define RATECTL_LIFT        10.0  /* at 10 x w_max the limit is lifted */
#define RATECTL_MIN_RATE    0.5   /* calls/s: the floor of any cut */
#define RATECTL_WINDOW_MS   500   /* send-rate measurement window */
#define RATECTL_SMOOTH      0.8   /* weight of the newest window */
#define RATECTL_AHEAD       2.0   /* allowed rate <= 2 x measured */
#define RATECTL_MIN_SPAN_MS 250.0 /* an open window shorter than this counts as this long */

/* Curve scale: w(t) = w_max * (1 + C (t - K)^3), with w(0) = BETA * w_max. */
static double curve_c(void)
{
	return (1.0 - RATECTL_BETA) / (RATECTL_K_S * RATECTL_K_S * RATECTL_K_S);
}

/* Seconds after a cut at which the curve reaches RATECTL_LIFT x w_max. */
static double lift_after_s(void)
{
	return RATECTL_K_S + cbrt((RATECTL_LIFT - 1.0) / curve_c());
}

static int bucket_active(const struct ratectl *rc)
{
	return rc->limited || rc->max_rate > 0;
}

static double burst(double fill)
{
	return fill < 1.0 ? 1.0 : fill;
}

/* Bring tokens up to now at the current fill rate. */
static void refill(struct ratectl *rc, uint64_t now_ms)
{
	if (now_ms > rc->fill_ms && bucket_active(rc)) {
		rc->tokens += (double)(now_ms - rc->fill_ms) * rc->fill / 1000.0;
		if (rc->tokens > burst(rc->fill))
			rc->tokens = burst(rc->fill);
	}
	if (now_ms > rc->fill_ms)
		rc->fill_ms = now_ms;
}

/* Change the fill rate from now on (tokens earned so far at the old one). */
static void set_fill(struct ratectl *rc, double rate, uint64_t now_ms)
{
	refill(rc, now_ms);
	if (rc->max_rate > 0 && rate > rc->max_rate)
		rate = rc->max_rate;
	if (rate < RATECTL_MIN_RATE)
		rate = RATECTL_MIN_RATE;
	rc->fill = rate;
	if (rc->tokens > burst(rate))
		rc->tokens = burst(rate);
}

/* Count one call sent at now_ms into the measured send rate. */
static void count_send(struct ratectl *rc, uint64_t now_ms)
{
	if (!rc->win_open) {
		rc->win_open = 1;
		rc->win_start_ms = now_ms;
		rc->win_count = 0;
	} else if (now_ms >= rc->win_start_ms + RATECTL_WINDOW_MS) {
		double cur = (double)rc->win_count * 1000.0 / (double)(now_ms - rc->win_start_ms);
		rc->measured = rc->measured_ok
		                   ? RATECTL_SMOOTH * cur + (1 - RATECTL_SMOOTH) * rc->measured
		                   : cur;
		rc->measured_ok = 1;
		rc->win_start_ms = now_ms;
		rc->win_count = 0;
	}
	rc->win_count++;
}

/* The send rate as best known at now_ms: the smoothed rate, or the open
 * window's when that is higher (a burst after a quiet spell must not be
 * mistaken for the quiet spell). */
static double send_rate(const struct ratectl *rc, uint64_t now_ms)
{
	double est = rc->measured_ok ? rc->measured : 0;
	if (rc->win_open && rc->win_count > 0) {
		double span = now_ms > rc->win_start_ms ? (double)(now_ms - rc->win_start_ms) : 0;
		if (span < RATECTL_MIN_SPAN_MS)
			span = RATECTL_MIN_SPAN_MS;
		double cur = (double)rc->win_count * 1000.0 / span;
		if (cur > est)
			est = cur;
	}
	return est;
}

void ratectl_init(struct ratectl *rc, double max_rate, uint64_t now_ms)
{
	*rc = (struct ratectl){0};
	rc->max_rate = max_rate > 0 ? max_rate : 0;
	rc->fill = rc->max_rate;
	rc->tokens = rc->max_rate > 0 ? burst(rc->max_rate) : 0;
	rc->fill_ms = now_ms;
}

void ratectl_set_max(struct ratectl *rc, double max_rate, uint64_t now_ms)
{
	refill(rc, now_ms);
	int was_active = bucket_active(rc);
	rc->max_rate = max_rate > 0 ? max_rate : 0;
	if (rc->limited)
		set_fill(rc, rc->fill, now_ms); /* clamps to the new cap */
	else if (rc->max_rate > 0) {
		rc->fill = rc->max_rate;
		if (!was_active)
			rc->tokens = burst(rc->fill); /* a cap where there was none: start full */
		else if (rc->tokens > burst(rc->fill))
			rc->tokens = burst(rc->fill);
	}
}

uint64_t ratectl_take(struct ratectl *rc, uint64_t now_ms)
{
	refill(rc, now_ms);
	if (bucket_active(rc)) {
		if (rc->tokens < 1.0) {
			double wait = ceil((1.0 - rc->tokens) * 1000.0 / rc->fill);
			return wait < 1 ? 1 : (uint64_t)wait;
		}
		rc->tokens -= 1.0;
	}
	count_send(rc, now_ms);
	return 0;
}

void ratectl_on_success(struct ratectl *rc, uint64_t now_ms)
{
	if (!rc->limited)
		return;
	double t = now_ms > rc->cut_ms ? (double)(now_ms - rc->cut_ms) / 1000.0 : 0;
	if (t >= lift_after_s()) {
		/* the quota is far behind us: unlimited again (max_rate aside) */
		refill(rc, now_ms);
		rc->limited = 0;
		if (rc->max_rate > 0)
			set_fill(rc, rc->max_rate, now_ms);
		return;
	}
	double d = t - RATECTL_K_S;
	double rate = rc->w_max * (1.0 + curve_c() * d * d * d);
	/* the smoothed rate here, not send_rate(): one call in a fresh window
	 * must not count as a trial of a higher rate */
	double ahead = RATECTL_AHEAD * (rc->measured_ok ? rc->measured : send_rate(rc, now_ms));
	if (rate > ahead)
		rate = ahead;
	set_fill(rc, rate, now_ms);
}

int ratectl_on_throttle(struct ratectl *rc, uint64_t now_ms, uint64_t sent_ms)
{
	rc->throttles++;
	if (rc->limited && sent_ms < rc->cut_ms)
		return 0; /* started before the last cut: that cut already answered it */
	double sent = send_rate(rc, now_ms);
	if (bucket_active(rc) && (sent <= 0 || rc->fill < sent))
		sent = rc->fill;
	if (sent < RATECTL_MIN_RATE)
		sent = RATECTL_MIN_RATE;
	refill(rc, now_ms);
	rc->limited = 1;
	rc->w_max = sent;
	rc->cut_ms = now_ms;
	rc->cuts++;
	set_fill(rc, RATECTL_BETA * sent, now_ms);
	rc->tokens = 0; /* the service's bucket is empty now: wait one interval */
	return 1;
}

int ratectl_log_due(struct ratectl *rc, uint64_t now_ms)
{
	if (rc->logged && now_ms < rc->last_log_ms + 1000)
		return 0;
	rc->logged = 1;
	rc->last_log_ms = now_ms;
	return 1;
}

double ratectl_rate(const struct ratectl *rc)
{
	return bucket_active(rc) ? rc->fill : 0;
}

uint64_t ratectl_throttles(const struct ratectl *rc)
{
	return rc->throttles;
}

int ratectl_on_answer(struct ratectl *rc, uint64_t now_ms, int throttled, uint64_t sent_ms)
{
	if (throttled)
		return ratectl_on_throttle(rc, now_ms, sent_ms);
	ratectl_on_success(rc, now_ms);
	return 0;
}
