/*
 * ratectl: the adaptive send-rate controller for calls to AWS (SPEC §5
 * "Throttling"). It finds an account quota from AWS's 429s and keeps the
 * gateway just under it, the way the AWS SDKs' adaptive retry mode does:
 *
 *   - Until the first throttle there is no limit (only aws.max_rate, when
 *     set, with a burst of one second's worth of calls).
 *   - A token bucket gates every call; its fill rate is the allowed rate.
 *   - The rate actually sent is measured (half-second windows, smoothed).
 *   - On a throttle the rate is cut to 0.7 x the rate that was being sent
 *     (never more than the bucket allowed): that rate becomes the curve's
 *     peak, w_max.
 *   - On a success the rate follows a cubic curve of the time since that
 *     cut: concave back up to w_max in 2 s, a plateau there, then convex,
 *     so a quota that went away is found again in seconds (5 x w_max after
 *     6.7 s, 10 x after 8.2 s, and then the limit is lifted altogether).
 *     The curve is scaled by w_max, so a cycle takes the same time at
 *     2 calls/s and at 2,000.
 *   - The allowed rate never runs ahead of twice the measured send rate: a
 *     rate that was never tried is not trusted.
 *   - A 429 answering a call started before the last cut says nothing about
 *     the new rate and does not cut again (one cut per congestion event).
 *
 * Pure: time comes in as an argument (ms on one monotonic clock), no I/O.
 * Not thread-safe: owned by the engine thread.
 */
#ifndef CMDGATE_RATECTL_H
#define CMDGATE_RATECTL_H

#include <stdint.h>

struct ratectl {
	double max_rate; /* aws.max_rate; 0 = no cap */
	int limited;     /* a throttle was seen and the curve has not lifted yet */
	/* token bucket; active while limited or while max_rate > 0 */
	double fill; /* calls/s */
	double tokens;
	uint64_t fill_ms; /* when tokens were last brought up to date */
	/* measured send rate */
	double measured; /* smoothed calls/s; valid once a window closed */
	int measured_ok;
	uint64_t win_start_ms;
	unsigned win_count;
	int win_open;
	/* the cubic curve */
	double w_max;    /* the send rate at the last cut */
	uint64_t cut_ms; /* when the rate was last cut */
	/* for stats and the log */
	uint64_t throttles, cuts, last_log_ms;
	int logged;
};

/* Starts unlimited (or at max_rate with a full one-second burst). */
void ratectl_init(struct ratectl *rc, double max_rate, uint64_t now_ms);

/* A new aws.max_rate (configuration reload); 0 removes the cap. */
void ratectl_set_max(struct ratectl *rc, double max_rate, uint64_t now_ms);

/* Ask to start one call now: 0 when it may (a token is taken and the send
 * is counted), else the ms to wait before asking again (>= 1). */
uint64_t ratectl_take(struct ratectl *rc, uint64_t now_ms);

/* A call was answered and was not throttled (any answer but a 429). */
void ratectl_on_success(struct ratectl *rc, uint64_t now_ms);

/* A call started at sent_ms was answered 429 (throttled). Returns 1 when
 * the rate was cut now, 0 when this throttle was counted but belongs to a
 * congestion event already acted on. */
int ratectl_on_throttle(struct ratectl *rc, uint64_t now_ms, uint64_t sent_ms);

/* Any answer from AWS to a call started at sent_ms: on_throttle for a 429,
 * on_success otherwise. Returns 1 when the rate was cut now. */
int ratectl_on_answer(struct ratectl *rc, uint64_t now_ms, int throttled, uint64_t sent_ms);

/* 1 at most once a second (the first call included): whether a log line
 * about a cut may be written now. */
int ratectl_log_due(struct ratectl *rc, uint64_t now_ms);

/* The allowed rate in calls/s for stats; 0 means unlimited. */
double ratectl_rate(const struct ratectl *rc);

/* Throttled answers seen since init. */
uint64_t ratectl_throttles(const struct ratectl *rc);

#endif
