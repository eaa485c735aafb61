/*
 * proxyenv: which HTTP proxy each outgoing connection uses (SPEC section 7).
 *
 * The proxy variables apply to the AWS endpoints as in the AWS SDKs, and
 * never to the local broker or to credential endpoints on loopback or
 * link-local addresses (a container credentials token or an IMDS session
 * token must not travel through a proxy).
 *
 * Paho (1.3.11/12) reads the lowercase http_proxy and https_proxy itself
 * whenever its connect options name no proxy, and has no "no proxy"
 * setting and no no_proxy support: with http_proxy set the loopback broker
 * connection went through the proxy. So proxyenv_take() moves those two
 * variables out of the environment, before any thread starts, and libcurl
 * gets them back per handle with proxyenv_apply(). Everything else libcurl
 * reads from the environment (no_proxy, HTTPS_PROXY, ALL_PROXY) stays
 * where it is and keeps working as before.
 */
#ifndef CMDGATE_PROXYENV_H
#define CMDGATE_PROXYENV_H

#include <curl/curl.h>

/* At start, single-threaded: keep http_proxy/https_proxy, unset them. */
void proxyenv_take(void);
/* Set e's proxy for url. local_direct: a loopback or link-local url (by
 * libcurl's URL parser) goes direct, whatever the variables say. */
void proxyenv_apply(CURL *e, const char *url, int local_direct);

#endif
