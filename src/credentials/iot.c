/*
 * credentials/iot: the AWS IoT credentials provider. The gateway's X.509
 * certificate is traded for temporary credentials of an IAM role over mutual
 * TLS: GET /role-aliases/{alias}/credentials on the iot:CredentialProvider
 * endpoint (a host name, or an https:// URL with an optional port), with the
 * thing name in x-amzn-iot-thingname.
 */
#include <string.h>
#include <strings.h>

#include "fetch.h"
#include "sbuf.h"
#include "source.h"

static const char *why(long status)
{
	if (status == 403)
		return "certificate, thing name or role alias policy not accepted";
	if (status == 404)
		return "unknown role alias";
	return "error";
}

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	const struct iot_cred_config *iot = &cfg->iot;
	struct sbuf url, thing, body;
	sbuf_init(&url);
	sbuf_init(&thing);
	sbuf_init(&body);
	if (strncasecmp(iot->endpoint, "https://", 8) != 0)
		sbuf_puts(&url, "https://");
	sbuf_puts(&url, iot->endpoint);
	sbuf_rtrim(&url, "/");
	sbuf_printf(&url, "/role-aliases/%s/credentials", iot->role_alias);
	struct cred_fetch req = {.method = "GET",
	                         .url = url.data,
	                         .cert_file = iot->cert_file,
	                         .key_file = iot->key_file,
	                         .ca_file = iot->ca_file};
	if (*iot->thing_name) {
		sbuf_printf(&thing, "x-amzn-iot-thingname: %s", iot->thing_name);
		req.headers[0] = thing.data;
	}
	long status = 0;
	enum cg_err rc = cred_fetch(&req, &status, &body, err);
	if (rc == CG_OK && status != 200)
		rc = cg_fail(err, CG_CREDENTIALS, "iot: %s answered HTTP %ld (%s): %.120s",
		             url.data, status, why(status), body.data);
	if (rc == CG_OK)
		rc = cred_parse_iot(body.data, body.len, c, err);
	sbuf_clean_up(&url);
	sbuf_clean_up(&thing);
	sbuf_wipe(&body);
	return rc;
}

const struct cred_source cred_source_iot = {"iot", load};
