/*
 * credentials/container: ECS and EKS container credentials.
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is a path on the ECS agent
 * (169.254.170.2); AWS_CONTAINER_CREDENTIALS_FULL_URI a whole URL, which must
 * be https, or http to a loopback or container-agent address
 * (cred_container_uri_allowed). The Authorization header comes from
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, else AWS_CONTAINER_AUTHORIZATION_TOKEN.
 */
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "sbuf.h"
#include "secretfile.h"
#include "source.h"

#define ECS_AGENT "http://169.254.170.2"

/* "Authorization: <token>" into hdr, or nothing when no token is configured. */
static enum cg_err authorization(struct sbuf *hdr, char *err)
{
	const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *val = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct sbuf tok;
	sbuf_init(&tok);
	enum cg_err rc = CG_OK;
	if (file && *file)
		rc = secretfile_slurp(file, 0, &tok, err);
	else if (val)
		sbuf_puts(&tok, val);
	sbuf_rtrim(&tok, " \t\r\n");
	if (rc == CG_OK && strpbrk(tok.data, "\r\n"))
		rc =
		    cg_fail(err, CG_CREDENTIALS, "container: authorization token has a line break");
	if (rc == CG_OK && tok.len)
		sbuf_printf(hdr, "Authorization: %s", tok.data);
	sbuf_wipe(&tok);
	return rc;
}

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	(void)cfg;
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	struct sbuf url, auth, body;
	sbuf_init(&url);
	sbuf_init(&auth);
	sbuf_init(&body);
	long status = 0;
	enum cg_err rc;
	if (rel && *rel)
		sbuf_printf(&url, ECS_AGENT "%s", rel);
	else if (full && *full)
		sbuf_puts(&url, full);
	if (url.len == 0) {
		rc = cg_fail(err, CG_CREDENTIALS,
		             "container: AWS_CONTAINER_CREDENTIALS_*_URI not set");
		goto out;
	}
	if (!cred_container_uri_allowed(url.data)) {
		rc = cg_fail(err, CG_CREDENTIALS,
		             "container: %s is not https and not a loopback or container-agent "
		             "address",
		             url.data);
		goto out;
	}
	if ((rc = authorization(&auth, err)))
		goto out;
	struct cred_fetch req = {.method = "GET", .url = url.data};
	size_t nh = 0;
	if (auth.len)
		req.headers[nh++] = auth.data;
	req.headers[nh] = "Accept: application/json";
	if ((rc = cred_fetch(&req, &status, &body, err)))
		goto out;
	if (status != 200)
		rc = cg_fail(err, CG_CREDENTIALS, "container: %s answered HTTP %ld", url.data,
		             status);
	else
		rc = cred_parse_container(body.data, body.len, c, err);
out:
	sbuf_clean_up(&url);
	sbuf_wipe(&auth);
	sbuf_wipe(&body);
	return rc;
}

const struct cred_source cred_source_container = {"container", load};
