/*
 * config_priv: what config.c, config_route.c and config_proxy.c share (not
 * for other modules): FILE:LINE errors and the parse of the routes list.
 */
#ifndef CMDGATE_CONFIG_PRIV_H
#define CMDGATE_CONFIG_PRIV_H

#include <libconfig.h>

#include "err.h"

struct config;

/* The error "FILE:LINE: message" at setting s (NULL: the file). */
enum cg_err config_fail_at(char *err, const char *file, const config_setting_t *s, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
#define fail_at config_fail_at

/* c->routes from the file's "routes" list (the default route when absent);
 * cross-field checks come later (config.c's check_route). */
enum cg_err config_parse_routes(struct config *c, const config_t *cfg, const char *file, char *err);
/* The cross-field rules of route r of c (the whole file read); s is its
 * setting, for the line of an error. */
struct route;
enum cg_err config_check_route(const struct config *c, struct route *r, config_setting_t *s,
                               const char *file, char *err);

#endif
