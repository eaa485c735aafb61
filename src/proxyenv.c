/* proxyenv: see proxyenv.h. */
#include "proxyenv.h"

#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "url.h"

/* Written once by proxyenv_take() before threads exist; read-only after. */
static char *http_proxy, *https_proxy;

static char *take(const char *name)
{
	const char *v = getenv(name);
	char *copy = v && *v ? rt_strdup(v) : NULL;
	unsetenv(name);
	return copy;
}

void proxyenv_take(void)
{
	http_proxy = take("http_proxy");
	https_proxy = take("https_proxy");
}

void proxyenv_apply(CURL *e, const char *url, int local_direct)
{
	if (local_direct && url_is_local(url)) {
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
		return;
	}
	char scheme[16], host[256];
	if (url_scheme_host(url, scheme, sizeof(scheme), host, sizeof(host)) != 0)
		return;
	/* libcurl's own rule: http_proxy for http://, https_proxy for https://;
	 * unset, it goes on to HTTPS_PROXY / ALL_PROXY and no_proxy itself */
	const char *p = strcmp(scheme, "https") == 0 ? https_proxy : http_proxy;
	if (p)
		curl_easy_setopt(e, CURLOPT_PROXY, p);
}
