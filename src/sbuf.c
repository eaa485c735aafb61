/*
 * sbuf: growable string buffer. Capacity doubles; the terminating NUL is
 * always present so data can be handed to C string APIs at any moment.
 * Growing wipes the old block before freeing it, so a secret appended to a
 * buffer leaves no copy behind in freed heap; sbuf_wipe clears the last one.
 */
#include "sbuf.h"
#include "runtime.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(struct sbuf *b)
{
	b->cap = 64;
	b->len = 0;
	b->data = rt_realloc(NULL, b->cap);
	b->data[0] = '\0';
}

void sbuf_clean_up(struct sbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void sbuf_wipe(struct sbuf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	sbuf_clean_up(b);
}

void sbuf_reset(struct sbuf *b)
{
	b->len = 0;
	b->data[0] = '\0';
}

void sbuf_rtrim(struct sbuf *b, const char *chars)
{
	while (b->len && b->data[b->len - 1] && strchr(chars, b->data[b->len - 1]))
		b->data[--b->len] = '\0';
}

void sbuf_reserve(struct sbuf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	/* Not realloc: the old block would go back to the heap with its bytes,
	 * and buffers here carry session tokens and signatures. */
	char *d = rt_malloc(cap);
	if (b->data) {
		memcpy(d, b->data, b->len + 1);
		OPENSSL_cleanse(b->data, b->cap);
		free(b->data);
	}
	b->data = d;
	b->cap = cap;
}

void sbuf_append(struct sbuf *b, const void *p, size_t n)
{
	sbuf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void sbuf_puts(struct sbuf *b, const char *s)
{
	sbuf_append(b, s, strlen(s));
}

void sbuf_putc(struct sbuf *b, char c)
{
	sbuf_append(b, &c, 1);
}

void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		sbuf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *sbuf_steal(struct sbuf *b)
{
	char *s = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

void sbuf_hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}
