/*
 * spool_format: the on-disk record format of the spool. Pure.
 *
 * A spool file is a sequence of records:
 *   magic "CGS1" | u32 body length | u32 CRC-32 of the body | body
 * little-endian. A body is a type byte and fields:
 *   ADD  (1): u64 seq, i64 received wall ms, i64 deadline wall ms, u8 qos,
 *             str token, str topic, str response topic, bytes correlation,
 *             bytes payload          (str/bytes: u32 length + data)
 *   DONE (2): u64 seq
 * A record that is cut short or whose CRC does not match ends the readable
 * part of a file (a torn tail after a crash); nothing after it is trusted.
 */
#ifndef CMDGATE_SPOOL_FORMAT_H
#define CMDGATE_SPOOL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

enum spool_type { SPOOL_ADD = 1, SPOOL_DONE = 2 };

/* One request as spooled. Decoded strings/bytes are views into the buffer. */
struct spool_entry {
	uint64_t seq;
	int64_t received_ms, deadline_ms; /* wall clock (CLOCK_REALTIME) */
	uint8_t qos;
	const char *token;
	size_t token_len;
	const char *topic;
	size_t topic_len;
	const char *response_topic; /* len 0: none */
	size_t response_topic_len;
	const void *correlation;
	size_t correlation_len;
	const void *payload;
	size_t payload_len;
	int has_correlation;
};

uint32_t spool_crc32(const void *data, size_t n);
void spool_encode_add(struct sbuf *out, const struct spool_entry *e);
void spool_encode_done(struct sbuf *out, uint64_t seq);

/*
 * Decode the record at *pos. Returns 1 (record decoded, *pos advanced),
 * 0 (clean end of data) or -1 (torn or corrupt: stop reading here).
 */
int spool_decode(const unsigned char *buf, size_t n, size_t *pos, enum spool_type *type,
                 struct spool_entry *e);

#endif
