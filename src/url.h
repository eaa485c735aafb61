/*
 * url: questions about URLs, answered with libcurl's own URL parser
 * (curl_url), never by string matching, so that a check sees the host that
 * libcurl will connect to: "http://localhost:80@evil/" is a URL for the
 * host "evil" with a user name, and "http://127.1/" is 127.0.0.1.
 * No network I/O: parsing only.
 */
#ifndef CMDGATE_URL_H
#define CMDGATE_URL_H

#include <stddef.h>

/* The scheme ("http", lowercase) and host (IPv6 without brackets) of url
 * into the buffers: 0, or -1 if url does not parse or a part does not fit. */
int url_scheme_host(const char *url, char *scheme, size_t scheme_n, char *host, size_t host_n);

/* Whether url can be an AWS endpoint: http or https, a host, no user info
 * (the signed Host header is what libcurl connects to). */
int url_is_endpoint(const char *url);

/* Whether host (as url_scheme_host gives it) is a loopback address
 * (127.0.0.0/8, ::1, "localhost") or link-local (169.254.0.0/16, fe80::/10). */
int url_host_is_loopback(const char *host);
int url_host_is_link_local(const char *host);

/* Whether url reaches a loopback or link-local host: such endpoints (the
 * container agent, IMDS, a local credentials helper) are never proxied. */
int url_is_local(const char *url);

#endif
