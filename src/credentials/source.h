/*
 * credentials/source: the interface every credential source implements, and
 * the table of sources by name.
 *
 * A source is a name and one function, load(), that makes one attempt to
 * obtain a set of credentials. load() blocks (files, or HTTP through
 * cred_fetch() with short timeouts); it runs on the provider's thread only,
 * never on the engine's. It fills out (owned strings) and returns CG_OK, or
 * returns an error class with the reason in err (never a secret) and leaves
 * out empty. Sources keep no state between calls.
 */
#ifndef CMDGATE_CREDENTIALS_SOURCE_H
#define CMDGATE_CREDENTIALS_SOURCE_H

#include "config.h"
#include "cred_parse.h"
#include "err.h"

struct cred_source {
	const char *name;
	enum cg_err (*load)(const struct cred_config *cfg, struct credentials *out, char *err);
};

extern const struct cred_source cred_source_static;
extern const struct cred_source cred_source_env;
extern const struct cred_source cred_source_profile;
extern const struct cred_source cred_source_container;
extern const struct cred_source cred_source_imds;
extern const struct cred_source cred_source_iot;
/* env, profile, container, imds: the first that yields credentials wins. */
extern const struct cred_source cred_source_chain;

/* The source called name (the values of aws.credentials.source); NULL when
 * there is none. */
const struct cred_source *cred_source_find(const char *name);

/* One attempt at src; names the result after the source that produced it
 * (a member of the chain names itself). out is wiped on failure. */
enum cg_err cred_source_load(const struct cred_source *src, const struct cred_config *cfg,
                             struct credentials *out, char *err);

#endif
