/* url: see url.h. */
#include "url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int copy_part(CURLU *u, CURLUPart part, char *out, size_t n)
{
	char *v = NULL;
	if (curl_url_get(u, part, &v, 0) != CURLUE_OK || !v)
		return -1;
	size_t len = strlen(v);
	const char *s = v;
	if (part == CURLUPART_HOST && len >= 2 && v[0] == '[' && v[len - 1] == ']') {
		s++; /* [::1] -> ::1 */
		len -= 2;
	}
	int ok = len < n;
	if (ok) {
		memcpy(out, s, len);
		out[len] = '\0';
	}
	curl_free(v);
	return ok ? 0 : -1;
}

int url_scheme_host(const char *url, char *scheme, size_t scheme_n, char *host, size_t host_n)
{
	CURLU *u = curl_url();
	if (!u)
		return -1;
	int rc = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	                 copy_part(u, CURLUPART_SCHEME, scheme, scheme_n) == 0 &&
	                 copy_part(u, CURLUPART_HOST, host, host_n) == 0 && *host
	             ? 0
	             : -1;
	curl_url_cleanup(u);
	return rc;
}

int url_is_endpoint(const char *url)
{
	char scheme[16], host[256], *user = NULL;
	if (url_scheme_host(url, scheme, sizeof(scheme), host, sizeof(host)) != 0 ||
	    (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
		return 0;
	CURLU *u = curl_url();
	int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	         curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER;
	curl_free(user);
	curl_url_cleanup(u);
	return ok;
}

int url_host_is_loopback(const char *host)
{
	unsigned char a[16];
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	static const unsigned char v6_loopback[16] = {[15] = 1};
	return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, v6_loopback, 16) == 0;
}

int url_host_is_link_local(const char *host)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 169 && a[1] == 254;
	return inet_pton(AF_INET6, host, a) == 1 && a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

int url_is_local(const char *url)
{
	char scheme[16], host[256];
	return url_scheme_host(url, scheme, sizeof(scheme), host, sizeof(host)) == 0 &&
	       (url_host_is_loopback(host) || url_host_is_link_local(host));
}
