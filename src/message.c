/* message: see message.h. */
#include "message.h"

#include <stdlib.h>

void message_free(struct message *m)
{
	if (!m)
		return;
	free(m->topic);
	free(m->payload);
	free(m->response_topic);
	free(m->correlation);
	free(m->content_type);
	free(m);
}
