/* libFuzzer: any bytes as the Date header of a "Signature expired" answer.
 * The clock correction it yields, at any local time, either is refused or
 * gives a whole 16-character x-amz-date the signer accepts (issue 18 item 5:
 * a year 99999 once left it unterminated). */
#include <stdint.h>
#include <string.h>

#include "awserr.h"
#include "sigv4.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char s[128];
	if (size >= sizeof(s) + 8)
		return 0;
	size_t n = size > 8 ? size - 8 : 0;
	memcpy(s, data, n);
	s[n] = '\0';
	int64_t local = 0; /* the local clock, also from the input */
	if (size > 8)
		memcpy(&local, data + n, 8);
	time_t server;
	if (awserr_http_date(s, &server) != 0)
		return 0;
	if (server < 946684800 || server > (time_t)7258118399)
		__builtin_trap(); /* outside 2000..2199 */
	long skew = (long)(server - (time_t)(local % 4102444800));
	char d[SIGV4_DATE_LEN + 1];
	if (sigv4_format_date((time_t)(local % 4102444800) + skew, d) != 0)
		return 0;
	if (strlen(d) != SIGV4_DATE_LEN)
		__builtin_trap();
	char hash[65];
	sigv4_sha256_hex("", 0, hash);
	struct sigv4_header h[] = {{"host", "h"}, {"x-amz-date", d}};
	struct sigv4_request r = {"GET", "/", NULL, h, 2, hash};
	struct sigv4_credentials c = {"AKID", "secret", NULL, 1};
	struct sbuf authz;
	sbuf_init(&authz);
	sigv4_authorize(&r, &c, "eu-west-1", "iot", d, NULL, &authz);
	if (authz.len == 0)
		__builtin_trap();
	sbuf_clean_up(&authz);
	return 0;
}
