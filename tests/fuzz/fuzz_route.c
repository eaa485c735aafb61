/* libFuzzer: "template\ntopic\nreply-template" through compile, match,
 * expand and the loop check. */
#include <stdlib.h>
#include <string.h>

#include "route.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	char *topic = strchr(text, '\n');
	if (!topic) {
		free(text);
		return 0;
	}
	*topic++ = '\0';
	char *reply = strchr(topic, '\n');
	if (reply)
		*reply++ = '\0';
	struct route r = {0};
	r.request_topic = strdup(text);
	if (route_compile(&r, NULL) == CG_OK) {
		char *storage = NULL;
		struct route_vars v = {0};
		if (route_match(&r, topic, &storage, &v)) {
			for (size_t i = 0; i < v.n; i++)
				route_check_capture(v.name[i], v.value[i], NULL);
			struct sbuf out;
			sbuf_init(&out);
			/* an expansion that succeeds is one string, whole */
			if (route_template_expand(reply ? reply : text, &v, &out, NULL) == CG_OK &&
			    strlen(out.data) != out.len)
				__builtin_trap();
			sbuf_clean_up(&out);
			free(storage);
		}
		if (reply)
			route_reply_could_loop(reply, text);
	}
	route_clean_up(&r);
	free(text);
	return 0;
}
