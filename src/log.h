/*
 * log: one line per event on stderr, text or JSON. Levels are checked
 * before formatting; format strings are type-checked by the compiler.
 * Nothing secret is ever passed here: callers log names and ids, never keys,
 * signatures or tokens (the session token, the Authorization header).
 */
#ifndef CMDGATE_LOG_H
#define CMDGATE_LOG_H

#include <stdatomic.h>
#include <stddef.h>

enum log_level { CG_LOG_ERROR = 0, CG_LOG_WARN, CG_LOG_INFO, CG_LOG_DEBUG };

/* Thread notes: Paho's threads log too. The threshold and the format are
 * C11 atomics (set by the engine thread at start and on reload, read by
 * every thread); a line is written with one fputs, which stdio locks. */
extern atomic_int log_threshold;

void log_configure(const char *level, const char *format);
/* Fix the level (the command line's --log-level): later log_configure()
 * calls change only the format. */
void log_pin_level(const char *level);
int log_level_parse(const char *s, enum log_level *out);
/* Errors are flushed at once: the line reaches stderr even if the process
 * aborts right after. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct sbuf;
/* Append s[0..n) as it may appear in a log line. Text (json 0): control
 * characters (C0, DEL, C1) become \n \r \t or \xNN. Both: bytes that are not
 * UTF-8 become \xNN, and a character cut short at the end is dropped, so
 * the result is always valid UTF-8 (jansson refuses anything else). */
void log_escape(struct sbuf *out, const char *s, size_t n, int json);
/* The length of s[0..n) without a UTF-8 character cut short at its end:
 * where a bounded copy of a device's value must stop. */
size_t log_utf8_boundary(const char *s, size_t n);

#define log_error(...) log_msg(CG_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(CG_LOG_WARN, __VA_ARGS__)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (atomic_load_explicit(&log_threshold, memory_order_relaxed) >= CG_LOG_INFO)     \
			log_msg(CG_LOG_INFO, __VA_ARGS__);                                         \
	} while (0)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (atomic_load_explicit(&log_threshold, memory_order_relaxed) >= CG_LOG_DEBUG)    \
			log_msg(CG_LOG_DEBUG, __VA_ARGS__);                                        \
	} while (0)

#endif
