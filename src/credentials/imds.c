/*
 * credentials/imds: EC2 instance metadata, IMDSv2 only. A session token is
 * fetched with PUT /latest/api/token, then the role name and the role's
 * credentials with that token. AWS_EC2_METADATA_SERVICE_ENDPOINT moves the
 * service; AWS_EC2_METADATA_DISABLED=true turns the source off.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"
#include "sbuf.h"
#include "source.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define ROLES_PATH   "/latest/meta-data/iam/security-credentials/"

/* GET url with the session token header; CG_OK only for a 200. */
static enum cg_err get(const char *url, const struct sbuf *token_hdr, struct sbuf *body, char *err)
{
	struct cred_fetch req = {.method = "GET", .url = url, .headers = {token_hdr->data}};
	long status = 0;
	enum cg_err rc = cred_fetch(&req, &status, body, err);
	if (rc == CG_OK && status != 200)
		rc = cg_fail(err, CG_CREDENTIALS, "imds: GET %s answered HTTP %ld", url, status);
	return rc;
}

/* PUT for a session token; on success token_hdr holds the header line. */
static enum cg_err session(const struct sbuf *base, struct sbuf *token_hdr, char *err)
{
	struct sbuf url, tok;
	sbuf_init(&url);
	sbuf_init(&tok);
	sbuf_printf(&url, "%s/latest/api/token", base->data);
	struct cred_fetch req = {.method = "PUT",
	                         .url = url.data,
	                         .headers = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"}};
	long status = 0;
	enum cg_err rc = cred_fetch(&req, &status, &tok, err);
	sbuf_rtrim(&tok, " \t\r\n");
	if (rc == CG_OK && (status != 200 || tok.len == 0))
		rc = cg_fail(err, CG_CREDENTIALS, "imds: token request answered HTTP %ld", status);
	if (rc == CG_OK)
		sbuf_printf(token_hdr, "X-aws-ec2-metadata-token: %s", tok.data);
	sbuf_clean_up(&url);
	sbuf_wipe(&tok);
	return rc;
}

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	(void)cfg;
	const char *off = getenv("AWS_EC2_METADATA_DISABLED");
	if (off && strcasecmp(off, "true") == 0)
		return cg_fail(err, CG_CREDENTIALS, "imds: disabled by AWS_EC2_METADATA_DISABLED");
	const char *env = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	struct sbuf base, hdr, url, role, body;
	sbuf_init(&base);
	sbuf_init(&hdr);
	sbuf_init(&url);
	sbuf_init(&role);
	sbuf_init(&body);
	sbuf_puts(&base, env && *env ? env : IMDS_DEFAULT);
	sbuf_rtrim(&base, "/");
	enum cg_err rc = session(&base, &hdr, err);
	if (rc)
		goto out;
	sbuf_printf(&url, "%s" ROLES_PATH, base.data);
	if ((rc = get(url.data, &hdr, &role, err)))
		goto out;
	role.data[strcspn(role.data, "\r\n")] = '\0';
	role.len = strlen(role.data);
	if (role.len == 0 || strchr(role.data, '/')) {
		rc = cg_fail(err, CG_CREDENTIALS, "imds: no instance role is attached");
		goto out;
	}
	sbuf_puts(&url, role.data);
	if ((rc = get(url.data, &hdr, &body, err)) == CG_OK)
		rc = cred_parse_container(body.data, body.len, c, err);
out:
	sbuf_clean_up(&base);
	sbuf_wipe(&hdr);
	sbuf_clean_up(&url);
	sbuf_clean_up(&role);
	sbuf_wipe(&body);
	return rc;
}

const struct cred_source cred_source_imds = {"imds", load};
