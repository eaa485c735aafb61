/* credentials/static: a key id from the configuration, the secret from a
 * file only the gateway may read (secretfile's rule). */
#include <openssl/crypto.h>

#include "runtime.h"
#include "secretfile.h"
#include "source.h"

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	char secret[1024];
	enum cg_err rc = secretfile_read(cfg->secret_access_key_file, secret, sizeof(secret), err);
	if (rc == CG_OK && !secret[0])
		rc = cg_fail(err, CG_CREDENTIALS, "%s is empty", cfg->secret_access_key_file);
	if (rc == CG_OK) {
		c->access_key_id = rt_strdup(cfg->access_key_id);
		c->secret_access_key = rt_strdup(secret);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

const struct cred_source cred_source_static = {"static", load};
