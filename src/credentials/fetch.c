/* credentials/fetch: one blocking libcurl easy request for the credential sources. */
#include "fetch.h"
#include "http.h"
#include "proxyenv.h"

#include <curl/curl.h>
#include <string.h>

#define TIMEOUT_MS         3000L
#define CONNECT_TIMEOUT_MS 1000L
#define BODY_MAX           (64 * 1024)

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct sbuf *b = ud;
	if (b->len + size * n > BODY_MAX)
		return 0; /* curl fails the transfer: an answer this large is not credentials */
	sbuf_append(b, p, size * n);
	return size * n;
}

static void set_tls(CURL *e, const struct cred_fetch *req)
{
	if (req->cert_file && *req->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLCERT, req->cert_file);
	if (req->key_file && *req->key_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, req->key_file);
	if (req->ca_file && *req->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
}

enum cg_err cred_fetch(const struct cred_fetch *req, long *status, struct sbuf *body, char *err)
{
	*status = 0;
	CURL *e = curl_easy_init();
	if (!e)
		return cg_fail(err, CG_NOMEM, "curl_easy_init failed");
	struct curl_slist *h = NULL;
	for (size_t i = 0; i < CRED_FETCH_HEADERS && req->headers[i]; i++)
		h = curl_slist_append(h, req->headers[i]);
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	if (strcmp(req->method, "PUT") == 0)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	/* container agent, IMDS, a local helper: never through a proxy */
	proxyenv_apply(e, req->url, 1);
	set_tls(e, req);
	CURLcode rc = curl_easy_perform(e);
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(e);
	http_headers_free(h);
	if (rc != CURLE_OK)
		return cg_fail(err, rc == CURLE_OPERATION_TIMEDOUT ? CG_TIMEOUT : CG_TRANSPORT,
		               "%s %s: %s", req->method, req->url,
		               cerr[0] ? cerr : curl_easy_strerror(rc));
	return CG_OK;
}
