/*
 * spool_hostile: a CRC-valid spool record crafted against a 32-bit size_t,
 * shared by the unit test (tests/unit/test_spool_format.c) and the 32-bit
 * decoder check (tests/fuzz/spool32.c).
 *
 * Its ADD body declares a token of 0xFFFFFFFC bytes. Where bounds were
 * checked as "at + len > n", that sum wraps on armhf/i386 to a small number,
 * the record decodes "cleanly" (every later field lines up again, the body
 * ends where the header says) and the token view points gigabytes past the
 * buffer: resume segfaulted copying it. A right decoder refuses the record.
 * Writes into buf (at least SPOOL_HOSTILE_LEN bytes) and returns the length.
 */
#ifndef CMDGATE_SPOOL_HOSTILE_H
#define CMDGATE_SPOOL_HOSTILE_H

#include <stdint.h>
#include <string.h>

#include "spool_format.h"

#define SPOOL_HOSTILE_BODY 289u
#define SPOOL_HOSTILE_LEN  (12u + SPOOL_HOSTILE_BODY)

static inline size_t spool_hostile_record(unsigned char *buf)
{
	unsigned char *b = buf + 12;
	memset(buf, 0, SPOOL_HOSTILE_LEN);
	b[0] = SPOOL_ADD; /* seq, received, deadline: zero */
	b[25] = 1;        /* qos */
	/* token length 0xFFFFFFFC: "at" wraps from 30 back to 26, so the
	 * topic and response topic read the same length again */
	b[26] = 0xFC;
	b[27] = b[28] = b[29] = 0xFF;
	/* has_correlation is b[26]; the correlation length is b[27..30] =
	 * 0xFFFFFFFF (back to 30); the payload length b[30..33] = 255 ends
	 * the body exactly at 289 bytes */
	b[30] = 0xFF;
	uint32_t len = SPOOL_HOSTILE_BODY, crc = spool_crc32(b, SPOOL_HOSTILE_BODY);
	memcpy(buf, "CGS1", 4);
	for (int i = 0; i < 4; i++) {
		buf[4 + i] = (unsigned char)(len >> (8 * i));
		buf[8 + i] = (unsigned char)(crc >> (8 * i));
	}
	return SPOOL_HOSTILE_LEN;
}

#endif
