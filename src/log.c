/*
 * log: lines are built in memory and written with one fputs so that lines
 * from Paho's threads and the engine never interleave.
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

	struct sbuf msg, line;
	sbuf_init(&msg);
	sbuf_init(&line);
	if (!json) { /* one formatting pass straight into the line */
		sbuf_puts(&line, when);
		sbuf_putc(&line, ' ');
		sbuf_puts(&line, names[lvl]);
		sbuf_putc(&line, ' ');
	}
	va_list ap;
	va_start(ap, fmt);
	sbuf_vprintf(json ? &msg : &line, fmt, ap);
	va_end(ap);
	if (json) {
		json_t *o = json_pack("{s:s,s:s,s:s%}", "time", when, "level", names[lvl], "msg",
		                      msg.data, msg.len);
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
	sbuf_clean_up(&line);
}
