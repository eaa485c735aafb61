/*
 * translate: a device's request payload -> the StartCommandExecution body.
 * Pure: the random token is passed in, nothing is read from the clock.
 *
 * Validation and the body follow docs/protocol.md (request payload, the AWS call). On failure
 * the error text names the offending member or parameter, and out->id is still
 * set when the payload carried a usable id, so the reply can echo it.
 */
#ifndef CMDGATE_TRANSLATE_H
#define CMDGATE_TRANSLATE_H

#include <jansson.h>

#include "err.h"
#include "route.h"
#include "sbuf.h"
#include "view.h"

#define CLIENT_TOKEN_MAX 64

enum token_kind { TOKEN_NONE = 0, TOKEN_EXPLICIT, TOKEN_DERIVED, TOKEN_RANDOM };

struct translated {
	json_t *id; /* owned reference; NULL when the request had none */
	enum token_kind token_kind;
	char client_token[CLIENT_TOKEN_MAX + 1];
	struct sbuf body; /* the exact bytes that are hashed, signed and sent */
};

void translate_result_init(struct translated *t);
void translate_result_clean_up(struct translated *t);

/*
 * vars must hold thing, command and every name the route's ARN templates
 * use. new_token writes a fresh random token (a UUIDv4 text); it is called
 * only when the request has neither clientToken nor id.
 */
typedef void (*token_fn)(char out[CLIENT_TOKEN_MAX + 1], void *ctx);
enum cg_err translate_request(const struct route *r, const struct route_vars *vars,
                              struct view payload, token_fn new_token, void *token_ctx,
                              struct translated *out, char *err);

/* Lowercase hex SHA-256 of thing "\n" command "\n" id. */
void translate_token_derive(const char *thing, const char *command, const char *id_text,
                            char out[65]);
/* A device's explicit clientToken bound to its thing and command: lowercase
 * hex SHA-256 of "token\n" thing "\n" command "\n" token. The prefix keeps
 * it apart from every derived token, the thing from every other thing's. */
void translate_token_bind(const char *thing, const char *command, const char *token, char out[65]);

/* "^[\x21-\x7E]{1,64}$" */
int translate_token_valid(const char *s);

#endif
