/*
 * credentials/chain: the sources by name, and the default chain of the AWS
 * SDKs: env, then profile, then container, then imds; the first that yields
 * credentials wins, and the result is named after it. When all fail, the
 * error lists each member's reason.
 */
#include <stdio.h>
#include <string.h>

#include "source.h"

static const struct cred_source *const members[] = {&cred_source_env, &cred_source_profile,
                                                    &cred_source_container, &cred_source_imds};
#define N_MEMBERS (sizeof(members) / sizeof(members[0]))

static const struct cred_source *const all[] = {
    &cred_source_chain, &cred_source_static,    &cred_source_env, &cred_source_profile,
    &cred_source_iot,   &cred_source_container, &cred_source_imds};

const struct cred_source *cred_source_find(const char *name)
{
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

enum cg_err cred_source_load(const struct cred_source *src, const struct cred_config *cfg,
                             struct credentials *out, char *err)
{
	enum cg_err rc = src->load(cfg, out, err);
	if (rc != CG_OK)
		credentials_clean_up(out);
	else if (!out->source)
		out->source = src->name;
	return rc;
}

static enum cg_err load(const struct cred_config *cfg, struct credentials *c, char *err)
{
	char why[N_MEMBERS][ERR_LEN];
	for (size_t i = 0; i < N_MEMBERS; i++)
		if (cred_source_load(members[i], cfg, c, why[i]) == CG_OK)
			return CG_OK;
	return cg_fail(err, CG_CREDENTIALS, "chain: %.55s; %.55s; %.55s; %.55s", why[0], why[1],
	               why[2], why[3]);
}

const struct cred_source cred_source_chain = {"chain", load};

int cred_config_differ(const struct cred_config *a, const struct cred_config *b)
{
	const char *x[] = {a->source,         a->access_key_id, a->secret_access_key_file,
	                   a->profile,        a->iot.endpoint,  a->iot.role_alias,
	                   a->iot.thing_name, a->iot.cert_file, a->iot.key_file,
	                   a->iot.ca_file};
	const char *y[] = {b->source,         b->access_key_id, b->secret_access_key_file,
	                   b->profile,        b->iot.endpoint,  b->iot.role_alias,
	                   b->iot.thing_name, b->iot.cert_file, b->iot.key_file,
	                   b->iot.ca_file};
	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		if (strcmp(x[i], y[i]) != 0)
			return 1;
	return 0;
}
