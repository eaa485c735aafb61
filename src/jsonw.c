/* jsonw: direct JSON output; escapes match jansson's compact output. */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void jsonw_string(struct sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	/* the characters with a two-character escape, and that escape's letter */
	static const char short_from[] = "\"\\\b\f\n\r\t", short_to[] = "\"\\bfnrt";
	sbuf_reserve(b, n + 2);
	sbuf_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sbuf_append(b, s + run, i - run);
		run = i + 1;
		const char *k = c ? strchr(short_from, c) : NULL;
		if (k) {
			char e[2] = {'\\', short_to[k - short_from]};
			sbuf_append(b, e, 2);
		} else {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			sbuf_append(b, e, 6);
		}
	}
	sbuf_append(b, s + run, n - run);
	sbuf_putc(b, '"');
}

void jsonw_key(struct sbuf *b, const char *name, int first)
{
	if (!first)
		sbuf_putc(b, ',');
	jsonw_string(b, name, strlen(name));
	sbuf_putc(b, ':');
}

static void write_real(struct sbuf *b, double d)
{
	char buf[40];
	int n = snprintf(buf, sizeof(buf), "%.17g", d);
	if (n < 0)
		return;
	/* as jansson writes reals: keep a '.' or an exponent ("5.0"), and
	 * drop '+' and leading zeros from the exponent ("1e+05" -> "1e5") */
	if (!strpbrk(buf, ".eE"))
		memcpy(buf + n, ".0", 3);
	char *e = strpbrk(buf, "eE");
	if (e) {
		char *p = e + 1, *q = e + 1;
		if (*p == '+')
			p++;
		else if (*p == '-')
			*q++ = *p++;
		while (*p == '0' && p[1])
			p++;
		memmove(q, p, strlen(p) + 1);
	}
	sbuf_puts(b, buf);
}

void jsonw_value(struct sbuf *b, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		sbuf_putc(b, '{');
		int first = 1;
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x)
		{
			jsonw_key(b, k, first);
			jsonw_value(b, x);
			first = 0;
		}
		sbuf_putc(b, '}');
		break;
	}
	case JSON_ARRAY: {
		sbuf_putc(b, '[');
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				sbuf_putc(b, ',');
			jsonw_value(b, json_array_get(v, i));
		}
		sbuf_putc(b, ']');
		break;
	}
	case JSON_STRING:
		jsonw_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER: {
		char buf[24];
		int n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		sbuf_append(b, buf, (size_t)n);
		break;
	}
	case JSON_REAL:
		write_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		sbuf_append(b, "true", 4);
		break;
	case JSON_FALSE:
		sbuf_append(b, "false", 5);
		break;
	case JSON_NULL:
		sbuf_append(b, "null", 4);
		break;
	}
}
