/*
 * log: lines are built in memory and written with one fputs so that lines
 * from Paho's threads and the engine never interleave.
 *
 * Messages carry values from devices and endpoints (topics, JSON keys, AWS
 * error types), so every message passes log_escape() before it is written:
 * a text line never contains a control character (a device cannot forge a
 * second line or drive a terminal), and a JSON line is always valid UTF-8
 * (a value cut mid-character by a bounded buffer loses that character, not
 * the whole line).
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sbuf.h"
#include "runtime.h"

atomic_int log_threshold = CG_LOG_INFO;
static atomic_int log_json;
static atomic_int level_pinned;

static const char *const names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i <= CG_LOG_DEBUG; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void set_threshold(const char *level)
{
	enum log_level l;
	if (log_level_parse(level, &l) == 0)
		atomic_store(&log_threshold, (int)l);
}

void log_pin_level(const char *level)
{
	set_threshold(level);
	atomic_store(&level_pinned, 1);
}

void log_configure(const char *level, const char *format)
{
	if (level && !atomic_load(&level_pinned))
		set_threshold(level);
	if (format)
		atomic_store(&log_json, strcmp(format, "json") == 0);
}

/* Length of the UTF-8 sequence at s[0..n) (1..4) with its code point in *cp,
 * 0 if it is invalid (overlong, surrogate, past U+10FFFF, bad continuation),
 * or -1 if it is a valid start that n cuts short. */
static int utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
	static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
	int len = s[0] < 0x80                   ? 1
	          : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
	          : (s[0] & 0xf0) == 0xe0       ? 3
	          : s[0] >= 0xf0 && s[0] < 0xf5 ? 4
	                                        : 0;
	if (len == 0)
		return 0;
	unsigned c = len == 1 ? s[0] : s[0] & (0x7fu >> len);
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3fu);
	}
	if (c < min[len] || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	*cp = c;
	return len;
}

static void put_escape(struct sbuf *out, unsigned c)
{
	if (c == '\n')
		sbuf_puts(out, "\\n");
	else if (c == '\r')
		sbuf_puts(out, "\\r");
	else if (c == '\t')
		sbuf_puts(out, "\\t");
	else
		sbuf_printf(out, "\\x%02x", c);
}

size_t log_utf8_boundary(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = n;
	/* back over at most 3 continuation bytes to the start of the last char */
	while (i > 0 && n - i < 3 && (p[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return n;
	unsigned cp;
	int len = utf8_seq(p + i - 1, n - (i - 1), &cp);
	return len < 0 ? i - 1 : n; /* a character cut short is left out */
}

void log_escape(struct sbuf *out, const char *s, size_t n, int json)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned cp = 0;
		int len = utf8_seq(p + i, n - i, &cp);
		if (len < 0) /* cut mid-character: end on the last whole one */
			return;
		if (len == 0) { /* not UTF-8: shown as its byte value */
			put_escape(out, p[i++]);
			continue;
		}
		if (!json && (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)))
			put_escape(out, cp); /* C0, DEL, C1: JSON escapes its own */
		else
			sbuf_append(out, p + i, (size_t)len);
		i += (size_t)len;
	}
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > atomic_load_explicit(&log_threshold, memory_order_relaxed))
		return;
	int json = atomic_load_explicit(&log_json, memory_order_relaxed);
	struct timespec ts = rt_wall_after_ms(0);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

	struct sbuf msg, clean, line;
	sbuf_init(&msg);
	sbuf_init(&clean);
	sbuf_init(&line);
	va_list ap;
	va_start(ap, fmt);
	sbuf_vprintf(&msg, fmt, ap);
	va_end(ap);
	log_escape(&clean, msg.data, msg.len, json);
	if (!json) {
		sbuf_puts(&line, when);
		sbuf_putc(&line, ' ');
		sbuf_puts(&line, names[lvl]);
		sbuf_putc(&line, ' ');
		sbuf_append(&line, clean.data, clean.len);
	} else {
		json_t *o = json_pack("{s:s,s:s,s:s%}", "time", when, "level", names[lvl], "msg",
		                      clean.data, clean.len);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		sbuf_puts(&line, s ? s : "{\"msg\":\"(unencodable log line)\"}");
		free(s);
		json_decref(o);
	}
	sbuf_putc(&line, '\n');
	fputs(line.data, stderr);
	if (lvl == CG_LOG_ERROR)
		fflush(stderr);
	sbuf_clean_up(&msg);
	sbuf_clean_up(&clean);
	sbuf_clean_up(&line);
}
