/*
 * spool_format: the on-disk record format of the spool. Pure.
 *
 * A spool file is a sequence of records:
 *   magic "CGS1" | u32 body length | u32 CRC-32 of the body | body
 * little-endian. A body is a type byte and fields:
 *   ADD  (1): u64 seq, i64 received wall ms, i64 deadline wall ms, u8 qos,
 *             str token, str topic, str response topic, bytes correlation,
 *             bytes payload          (str/bytes: u32 length + data)
 *   DONE (2): u64 seq                (ends an ADD or a FOLLOW)
 *   FOLLOW (3): u64 seq, i64 started wall ms, i64 deadline wall ms, u8 qos,
 *             u8 last status published (enum follow_status), str thing,
 *             str command, str execution id, str target ARN, str execution
 *             topic (expanded), str id as JSON ("" none), u8 has correlation,
 *             bytes correlation
 *   STATUS (4): u64 seq, u8 status   (a FOLLOW published a non-final status)
 *   ANSWERED (5): u64 seq            (an ADD's reply is delivered, but its call's
 *             fate is unknown: it is resumed only to settle the call, unanswered)
 * A record that is cut short or whose CRC does not match ends the readable
 * part of a file (a torn tail after a crash); nothing after it is trusted.
 */
#ifndef CMDGATE_SPOOL_FORMAT_H
#define CMDGATE_SPOOL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"
#include "view.h"

enum spool_type {
	SPOOL_ADD = 1,
	SPOOL_DONE = 2,
	SPOOL_FOLLOW = 3,
	SPOOL_STATUS = 4,
	SPOOL_ANSWERED = 5,
};

/* One request as spooled. Decoded strings/bytes are views into the buffer
 * (not NUL-terminated). */
struct spool_entry {
	uint64_t seq;
	int64_t received_ms, deadline_ms; /* wall clock (CLOCK_REALTIME) */
	uint8_t qos;
	struct view token;
	struct view topic;
	struct view response_topic; /* len 0: none */
	struct view correlation;    /* valid with has_correlation (it may be empty) */
	struct view payload;
	int has_correlation;
	int answered; /* set by spool_recover: an ANSWERED record follows the ADD */
};

/* One follow (SPEC section 8) as spooled; views as in spool_entry. For a
 * STATUS record only seq and last_status are set. */
struct spool_follow {
	uint64_t seq;
	int64_t started_ms, deadline_ms; /* wall clock (CLOCK_REALTIME) */
	uint8_t qos;
	uint8_t last_status;
	struct view thing, command, execution_id, target_arn, topic, id_json;
	struct view correlation; /* valid with has_correlation (it may be empty) */
	int has_correlation;
};

uint32_t spool_crc32(const void *data, size_t n);
void spool_encode_add(struct sbuf *out, const struct spool_entry *e);
void spool_encode_done(struct sbuf *out, uint64_t seq);
void spool_encode_answered(struct sbuf *out, uint64_t seq);
void spool_encode_follow(struct sbuf *out, const struct spool_follow *f);
void spool_encode_status(struct sbuf *out, uint64_t seq, uint8_t status);

/*
 * Decode the record at *pos. Returns 1 (record decoded, *pos advanced),
 * 0 (clean end of data) or -1 (torn or corrupt: stop reading here).
 */
int spool_decode(const unsigned char *buf, size_t n, size_t *pos, enum spool_type *type,
                 struct spool_entry *e);
/* The same for every record type: FOLLOW and STATUS fill f (may be NULL;
 * e->seq is set for every type). spool_decode() is this with f NULL. */
int spool_decode_record(const unsigned char *buf, size_t n, size_t *pos, enum spool_type *type,
                        struct spool_entry *e, struct spool_follow *f);

/* What reading a spool hands back, one record at a time (spool.h). The
 * record's views are valid during the call only. */
typedef void (*spool_entry_fn)(const struct spool_entry *e, void *ctx);
typedef void (*spool_follow_fn)(const struct spool_follow *f, void *ctx);

#endif
