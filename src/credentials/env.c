/* credentials/env: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. */
#include <stdlib.h>

#include "runtime.h"
#include "source.h"

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	(void)cfg;
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret)
		return cg_fail(err, CG_CREDENTIALS,
		               "env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
	c->access_key_id = rt_strdup(id);
	c->secret_access_key = rt_strdup(secret);
	c->session_token = token && *token ? rt_strdup(token) : NULL;
	return CG_OK;
}

const struct cred_source cred_source_env = {"env", load};
