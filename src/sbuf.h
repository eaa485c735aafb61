/*
 * sbuf: an owning, growable, always NUL-terminated byte buffer.
 *
 * Used wherever the core builds text (canonical requests, JSON bodies,
 * replies). An sbuf owns its memory; sbuf_clean_up() releases it and
 * sbuf_wipe() also zeroes it first, for buffers that held a secret.
 * Allocation failure aborts: the daemon cannot make progress without memory
 * and a half-built string must never be sent.
 */
#ifndef CMDGATE_SBUF_H
#define CMDGATE_SBUF_H

#include <stdarg.h>
#include <stddef.h>

struct sbuf {
	char *data; /* NUL-terminated; never NULL after sbuf_init() */
	size_t len;
	size_t cap;
};

void sbuf_init(struct sbuf *b);
void sbuf_clean_up(struct sbuf *b);
/* Zero the contents, then release them. */
void sbuf_wipe(struct sbuf *b);
void sbuf_reset(struct sbuf *b);
/* Drop trailing bytes that are in chars (e.g. " \t\r\n", or "/"). */
void sbuf_rtrim(struct sbuf *b, const char *chars);
void sbuf_reserve(struct sbuf *b, size_t extra);
void sbuf_append(struct sbuf *b, const void *p, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_putc(struct sbuf *b, char c);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Hand the string to the caller (who frees it); the buffer is left empty. */
char *sbuf_steal(struct sbuf *b);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void sbuf_hex_encode(const unsigned char *in, size_t n, char *out);

#endif
