/* awserr: error shapes of the AWS restJson1 protocol, and their meaning. */
#include "awserr.h"
#include "sigv4.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void awserr_code_normalise(char *code)
{
	char *hash = strrchr(code, '#');
	if (hash)
		memmove(code, hash + 1, strlen(hash + 1) + 1);
	char *colon = strchr(code, ':');
	if (colon)
		*colon = '\0';
	/* trim spaces */
	size_t n = strlen(code);
	while (n && code[n - 1] == ' ')
		code[--n] = '\0';
	size_t lead = strspn(code, " ");
	if (lead)
		memmove(code, code + lead, n - lead + 1);
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

void awserr_parse(int http_status, const char *error_type_header, const char *body, size_t len,
                  struct awserr *out)
{
	memset(out, 0, sizeof(*out));
	out->http_status = http_status;
	json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	if (error_type_header && *error_type_header)
		copy_str(out->code, sizeof(out->code), error_type_header);
	else if (json_is_object(root)) {
		json_t *c = json_object_get(root, "__type");
		if (!json_is_string(c))
			c = json_object_get(root, "code");
		if (json_is_string(c))
			copy_str(out->code, sizeof(out->code), json_string_value(c));
	}
	awserr_code_normalise(out->code);
	if (!out->code[0])
		copy_str(out->code, sizeof(out->code), "UnknownError");
	if (json_is_object(root)) {
		json_t *m = json_object_get(root, "message");
		if (!json_is_string(m))
			m = json_object_get(root, "Message");
		if (json_is_string(m))
			copy_str(out->message, sizeof(out->message), json_string_value(m));
	}
	json_decref(root);

	out->throttled = http_status == 429 || strcmp(out->code, "ThrottlingException") == 0 ||
	                 strcmp(out->code, "TooManyRequestsException") == 0;
	out->retryable = out->throttled || http_status >= 500;
	if (http_status == 403 || http_status == 400) {
		out->clock_skew = strcmp(out->code, "RequestTimeTooSkewed") == 0 ||
		                  strcmp(out->code, "RequestExpired") == 0 ||
		                  strstr(out->message, "Signature expired") != NULL ||
		                  strstr(out->message, "Signature not yet current") != NULL;
		out->expired_token = strcmp(out->code, "ExpiredTokenException") == 0 ||
		                     strstr(out->message, "security token included in the request "
		                                          "is expired") != NULL;
	}
}

enum cg_err awserr_execution_id(const char *body, size_t len, char *out, size_t n, char *err)
{
	json_error_t je;
	json_t *root = json_loadb(body, len, 0, &je);
	json_t *id = json_is_object(root) ? json_object_get(root, "executionId") : NULL;
	if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) >= n) {
		json_decref(root);
		return cg_fail(err, CG_REMOTE, "success response without a usable executionId");
	}
	copy_str(out, n, json_string_value(id));
	json_decref(root);
	return CG_OK;
}

int awserr_http_date(const char *s, time_t *out)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	char wd[4], mon[4], tz[4];
	int day, year, h, m, sec;
	if (!s ||
	    sscanf(s, "%3s, %d %3s %d %d:%d:%d %3s", wd, &day, mon, &year, &h, &m, &sec, tz) != 8 ||
	    strcmp(tz, "GMT") != 0)
		return -1;
	struct tm tm = {0};
	tm.tm_mon = -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(mon, months[i]) == 0)
			tm.tm_mon = i;
	/* SPEC section 5: only a date between the years 2000 and 2200 corrects the
	 * clock; anything else from a hostile endpoint is ignored */
	if (tm.tm_mon < 0 || day < 1 || day > 31 || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 ||
	    sec > 60 || year < SIGV4_YEAR_MIN || year > SIGV4_YEAR_MAX)
		return -1;
	tm.tm_mday = day;
	tm.tm_year = year - 1900;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1) /* not representable (a 32-bit time_t past 2038) */
		return -1;
	/* timegm normalised tm: a leap second at the end of 31 Dec 2199, or a
	 * 31 Feb, may have carried it past the last year the signer takes */
	if (tm.tm_year + 1900 < SIGV4_YEAR_MIN || tm.tm_year + 1900 > SIGV4_YEAR_MAX)
		return -1;
	*out = t;
	return 0;
}
