/* libFuzzer: any payload through translate_request. Whatever it accepts must
 * be a JSON object with the model's members; nothing may crash or leak. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "translate.h"

static void token(char out[CLIENT_TOKEN_MAX + 1], void *ctx)
{
	(void)ctx;
	strcpy(out, "00000000-0000-4000-8000-000000000000");
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct param_type_entry pt[] = {{"i", PT_I}, {"bin", PT_BIN}, {"ul", PT_UL},
	                                       {"d", PT_D}, {"s", PT_S},     {"b", PT_B}};
	struct route r = {0};
	r.target_arn = "arn:aws:iot:{region}:{account}:thing/{thing}";
	r.command_arn = "arn:aws:iot:{region}:{account}:command/{command}";
	r.ptypes = pt;
	r.n_ptypes = 6;
	r.execution_timeout = 30;
	struct route_vars v = {0};
	route_vars_set(&v, "region", "eu-west-1");
	route_vars_set(&v, "account", "123456789012");
	route_vars_set(&v, "thing", "t1");
	route_vars_set(&v, "command", "c1");
	struct translated t;
	translate_result_init(&t);
	char err[ERR_LEN];
	if (translate_request(&r, &v, view_of(data, size), token, NULL, &t, err) == CG_OK) {
		json_t *body = json_loadb(t.body.data, t.body.len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(body) || !json_object_get(body, "clientToken") ||
		    !json_object_get(body, "targetArn"))
			abort();
		json_decref(body);
	}
	translate_result_clean_up(&t);
	return 0;
}
