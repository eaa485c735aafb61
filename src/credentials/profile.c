/* credentials/profile: the shared credentials file that `aws configure`
 * writes (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials); the profile
 * is aws.credentials.profile, else AWS_PROFILE, else "default". */
#include <stdlib.h>

#include "sbuf.h"
#include "secretfile.h"
#include "source.h"

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	struct sbuf path, text;
	sbuf_init(&path);
	sbuf_init(&text);
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
	if (file && *file) {
		sbuf_puts(&path, file);
	} else {
		const char *home = getenv("HOME");
		sbuf_printf(&path, "%s/.aws/credentials", home ? home : "");
	}
	const char *profile = *cfg->profile ? cfg->profile : getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	enum cg_err rc = secretfile_slurp(path.data, 0, &text, err);
	if (rc == CG_OK)
		rc = cred_parse_profile(text.data, profile, c, err);
	sbuf_wipe(&text);
	sbuf_clean_up(&path);
	return rc;
}

const struct cred_source cred_source_profile = {"profile", load};
