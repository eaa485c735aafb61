/*
 * follow: the rules of following one command execution to its end (SPEC
 * section 8). Pure: no I/O and no clock; time and randomness come in as
 * arguments, so every rule is a unit test.
 *
 * A follow polls GetCommandExecution and publishes each status change once,
 * in lifecycle order. Statuses have ranks and only a higher rank is ever
 * published (never the same twice, never backwards):
 *
 *   CREATED 1 < IN_PROGRESS 2 < TIMED_OUT with $NO_RESPONSE_FROM_DEVICE 3
 *     < SUCCEEDED, FAILED, REJECTED, any other TIMED_OUT 4 (final)
 *
 * A rank-3 TIMED_OUT is published final:false and following goes on: the
 * device may still report, and a late SUCCEEDED/FAILED is then published as
 * the end. A 404 before any status was seen is AWS's eventual consistency
 * right after the start and is retried for FOLLOW_NOT_FOUND_GRACE_MS; other
 * retryable failures (429, 5xx, transport, no credentials) keep polling on
 * the schedule; a non-retryable one (403, 400, a late 404) ends the follow
 * with one final message carrying code and retryable, as does passing
 * gateway.follow_max_s.
 *
 * Poll schedule: the first poll 375-500 ms after the accepted reply, then
 * intervals of 1, 2, 4, 8, 16 s capped at 30 s, each shortened by up to a
 * quarter (jitter) so that executions started together drift apart.
 */
#ifndef CMDGATE_FOLLOW_H
#define CMDGATE_FOLLOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "route.h"
#include "sbuf.h"

#define FOLLOW_DEFAULT_TOPIC      "commands/{thing}/{command}/executions/{execution}"
#define FOLLOW_NO_RESPONSE        "$NO_RESPONSE_FROM_DEVICE"
#define FOLLOW_POLL_STEP_MS       1000
#define FOLLOW_POLL_CAP_MS        30000
#define FOLLOW_NOT_FOUND_GRACE_MS 15000
#define FOLLOW_EXECUTION_ID_MAX   128

/* The default control-plane endpoint (aws.control_endpoint) of a region:
 * "https://iot.{region}.amazonaws.com" (".cn" for cn-*). Caller frees. */
char *follow_default_endpoint(const char *region);

/* AWS CommandExecutionStatus; the numbers are stored in the spool. */
enum follow_status {
	FOLLOW_NONE = 0, /* nothing seen yet */
	FOLLOW_CREATED = 1,
	FOLLOW_IN_PROGRESS = 2,
	FOLLOW_SUCCEEDED = 3,
	FOLLOW_FAILED = 4,
	FOLLOW_REJECTED = 5,
	FOLLOW_TIMED_OUT = 6,
	FOLLOW_UNKNOWN = 7, /* a status this version does not know */
};

/* "SUCCEEDED" ...; NULL for FOLLOW_NONE and FOLLOW_UNKNOWN. */
const char *follow_status_name(enum follow_status s);
/* FOLLOW_UNKNOWN for anything else. */
enum follow_status follow_status_parse(const char *s);
/* Whether a status with this reason code ends following. */
int follow_is_final(enum follow_status s, const char *reason_code);

/* What GetCommandExecution said. status_reason and result are owned
 * references (NULL when AWS gave none); follow_answer_clean_up drops them. */
struct follow_answer {
	enum follow_status status;
	char status_text[32];
	char reason_code[128]; /* statusReason.reasonCode, "" when none */
	json_t *status_reason;
	json_t *result;
};

/* Parse a 2xx body. CG_INVALID with the reason when it is not an object with
 * a string status. */
enum cg_err follow_parse_answer(const char *body, size_t len, struct follow_answer *out, char *err);
void follow_answer_clean_up(struct follow_answer *a);

/* Delay before poll number polls_done + 1 (0: the first, counted from the
 * accepted reply): step_ms / 2 first (gateway.follow_poll_ms, 0: 1000),
 * then step_ms, twice that, ... up to FOLLOW_POLL_CAP_MS, less up to a
 * quarter of jitter. rnd: a uniformly random 32-bit number. */
uint64_t follow_poll_delay_ms(unsigned polls_done, uint64_t step_ms, uint32_t rnd);

/* One follow's progress. Times are monotonic ms. */
struct follow_state {
	uint64_t started_ms;     /* when the accepted reply went out */
	uint64_t deadline_ms;    /* started_ms + gateway.follow_max_s */
	enum follow_status last; /* last status published (FOLLOW_NONE: none) */
	int last_rank;
	unsigned polls;   /* polls that led to another (the schedule's step): the
	                     one that ends a follow is not counted here */
	uint64_t poll_ms; /* the back-off step (gateway.follow_poll_ms; 0: default) */
	int ended;
	/* the last poll's failure, for the final message if time runs out */
	int failing;
	char fail_code[128];
	int fail_retryable;
};

void follow_state_init(struct follow_state *st, uint64_t started_ms, long max_s);
/* Resume a follow whose last published status was last (spool). */
void follow_state_resume(struct follow_state *st, uint64_t started_ms, uint64_t deadline_ms,
                         enum follow_status last);

/* What to do after an event. */
struct follow_step {
	int publish;               /* a message is due */
	int final;                 /* ... and it is the last one: following ends */
	enum follow_status status; /* the status to publish (or the last known) */
	const char *code;          /* set for an early end: the error code */
	int retryable;             /* with code */
	uint64_t next_poll_ms;     /* when not ended */
};

/* A poll answered 2xx with a. */
void follow_on_answer(struct follow_state *st, const struct follow_answer *a, uint64_t now,
                      uint32_t rnd, struct follow_step *out);
/* A poll failed: http_status 0 when no HTTP answer came; code is the AWS
 * error code or a gateway code (Unavailable, CredentialsUnavailable). */
void follow_on_failure(struct follow_state *st, int http_status, const char *code, int retryable,
                       uint64_t now, uint32_t rnd, struct follow_step *out);
/* Before a poll starts: 1 (and out filled with the final message) when
 * gateway.follow_max_s has passed. */
int follow_check_deadline(struct follow_state *st, uint64_t now, struct follow_step *out);

/* Messages, as SPEC section 8 shows them. id_json: the request's id as JSON
 * text, NULL when it had none. */
void follow_render_status(struct sbuf *out, const char *id_json, const char *execution_id,
                          const struct follow_answer *a, int final);
void follow_render_end(struct sbuf *out, const char *id_json, const char *execution_id,
                       enum follow_status last, const char *code, int retryable);

/*
 * The execution topic in two steps: at admission, while the request's
 * captured values are at hand, everything but {execution} is expanded
 * ({execution} stays as it is); once AWS gave the executionId, it fills
 * {execution}. Both append to out.
 */
enum cg_err follow_topic_prepare(const char *tmpl, const struct route_vars *v, struct sbuf *out,
                                 char *err);
enum cg_err follow_topic_finish(const char *prepared, const char *execution_id, struct sbuf *out,
                                char *err);

/*
 * The configuration rules of route r's execution_topic (SPEC 2 and 8),
 * checked when r follows or sets one: placeholders known ({execution} here
 * only: a request topic may not capture it), no wildcards, no loop into any
 * route's request topic (all, n), {account} only with have_account. NULL
 * when it passes; else the route key at fault ("request_topic",
 * "execution_topic", or "" for the route) and the reason in msg.
 */
const char *follow_topic_check(const struct route *r, const struct route *all, size_t n,
                               int have_account, char *msg, size_t len);

/* The request: path "/command-executions/{id}" (prefix: the endpoint's own
 * path, "" for none) and the query "includeResult=true&targetArn=<ARN>",
 * percent-encoded as SigV4 canonicalises it, so the same text is the URL's
 * query and the signer's. 0 on success, -1 when execution_id is not a
 * plausible execution id (1-128 of [A-Za-z0-9_.-], as AWS's UUIDs are). */
int follow_request_path(struct sbuf *out, const char *prefix, const char *execution_id);
void follow_request_query(struct sbuf *out, const char *target_arn);

#endif
