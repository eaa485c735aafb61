/* outbox: see outbox.h. A plain FIFO of owned copies. */
#include "outbox.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"

void outbox_init(struct outbox *o, outbox_publish_fn publish, void *ctx)
{
	memset(o, 0, sizeof(*o));
	o->publish = publish;
	o->ctx = ctx;
}

static void msg_free(struct outbox_msg *m)
{
	free(m->topic);
	free(m->payload);
	free(m->correlation);
	free(m);
}

void outbox_clean_up(struct outbox *o)
{
	for (struct outbox_msg *m = o->head, *next; m; m = next) {
		next = m->next;
		msg_free(m);
	}
	o->head = o->tail = NULL;
	o->n = 0;
}

/* 1 taken, 0 not now, -1 never. */
static int try_publish(struct outbox *o, const struct outbox_msg *m, char *err)
{
	enum cg_err rc = o->publish(o->ctx, m, err);
	if (rc == CG_OK)
		return 1;
	if (rc == CG_TRANSPORT)
		return 0;
	o->refused++;
	return -1;
}

int outbox_put(struct outbox *o, const char *topic, const char *payload, size_t len, int qos,
               const void *correlation, size_t correlation_len, uint64_t cookie, char *err)
{
	struct outbox_msg view = {NULL, (char *)topic, (char *)payload, len, qos,
	                          (void *)correlation, correlation_len, cookie};
	if (!o->head) {
		int rc = try_publish(o, &view, err);
		if (rc != 0)
			return rc;
	}
	struct outbox_msg *m = rt_calloc(1, sizeof(*m));
	m->topic = rt_strdup(topic);
	m->payload = rt_malloc(len + 1);
	memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->len = len;
	m->qos = qos;
	if (correlation) {
		m->correlation = rt_malloc(correlation_len ? correlation_len : 1);
		memcpy(m->correlation, correlation, correlation_len);
		m->correlation_len = correlation_len;
	}
	m->cookie = cookie;
	if (o->tail)
		o->tail->next = m;
	else
		o->head = m;
	o->tail = m;
	o->n++;
	return 0;
}

size_t outbox_flush(struct outbox *o)
{
	size_t sent = 0;
	while (o->head) {
		struct outbox_msg *m = o->head;
		char err[ERR_LEN] = "";
		int rc = try_publish(o, m, err);
		if (rc == 0)
			break;
		if (rc < 0)
			log_error("reply to %s given up: %s", m->topic, err);
		o->head = m->next;
		if (!o->head)
			o->tail = NULL;
		o->n--;
		msg_free(m);
		sent++;
	}
	return sent;
}

void outbox_drain(struct outbox *o, uint64_t until_ms)
{
	while (o->head && rt_now_ms() < until_ms)
		if (outbox_flush(o) == 0)
			usleep(10000);
}
