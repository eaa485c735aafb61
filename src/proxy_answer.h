/*
 * proxy_answer: a machine's answer to an execution, checked before it
 * leaves for AWS (SPEC 9), and the small JSON documents the proxy writes
 * to the machine. Pure.
 *
 * An answer is a JSON object {"status", "statusReason", "result"}; only
 * those three members are sent to AWS (members some SDKs add are dropped),
 * result value types written as AWS wants them (lower-case s, b, bin:
 * GetCommandExecution shows them upper-case, and machines may copy that).
 */
#ifndef CMDGATE_PROXY_ANSWER_H
#define CMDGATE_PROXY_ANSWER_H

#include <stddef.h>

#include "err.h"
#include "sbuf.h"

enum proxy_status {
	PROXY_S_NONE = 0,
	PROXY_S_IN_PROGRESS,
	PROXY_S_SUCCEEDED,
	PROXY_S_FAILED,
	PROXY_S_REJECTED,
	PROXY_S_TIMED_OUT,
};

#define PROXY_REASON_DESC_MAX 1024
#define PROXY_RESULT_NAME_MAX 192

/* "IN_PROGRESS", ... ("" for PROXY_S_NONE). */
const char *proxy_status_name(enum proxy_status s);
/* PROXY_S_NONE when name is not one a machine may send (CREATED is AWS's). */
enum proxy_status proxy_status_parse(const char *name);
/* SUCCEEDED, FAILED, REJECTED and a device-sent TIMED_OUT end an execution. */
int proxy_status_terminal(enum proxy_status s);

/* Why an answer was refused: the error code for the machine and a message
 * naming the field ("status: ..."). */
struct proxy_answer_error {
	const char *code; /* "InvalidRequest" or "InvalidJson" */
	char message[256];
};

/*
 * Check payload (len bytes) as an answer. CG_OK: aws_body holds the JSON to
 * publish to AWS and *status its status. CG_INVALID: why says what is wrong
 * and aws_body is left as it was.
 */
enum cg_err proxy_answer_check(const char *payload, size_t len, struct sbuf *aws_body,
                               enum proxy_status *status, struct proxy_answer_error *why);

/* {"error":code,"errorMessage":message,"executionId":id} */
void proxy_answer_rejection(struct sbuf *out, const char *code, const char *message,
                            const char *execution_id);
/* {"executionId":id}: what the machine gets when a re-sent terminal update
 * meets TerminalStateReached (it was applied before). */
void proxy_answer_accepted(struct sbuf *out, const char *execution_id);
/* The "error" member of one of AWS's rejections into code (size n); ""
 * when the payload has none. */
void proxy_answer_error_code(const char *payload, size_t len, char *code, size_t n);

#endif
