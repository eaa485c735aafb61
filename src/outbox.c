/* outbox: see outbox.h. Two FIFOs of owned copies. */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime.h"

void outbox_init(struct outbox *o, size_t window, outbox_publish_fn publish, void *ctx)
{
	memset(o, 0, sizeof(*o));
	o->window = window;
	o->next_id = 1;
	o->publish = publish;
	o->ctx = ctx;
}

static void msg_free(struct outbox_msg *m)
{
	free((char *)m->out.topic);
	free((char *)m->out.payload.ptr);
	free((char *)m->out.correlation.ptr);
	free((char *)m->out.response_topic);
	free((char *)m->out.content_type);
	free(m);
}

static char *copy_or_null(const char *s)
{
	return s ? rt_strdup(s) : NULL;
}

static struct view copy_view(struct view v)
{
	return view_of(v.ptr ? rt_memdup(v.ptr, v.len) : NULL, v.len);
}

static void list_free(struct outbox_list *l)
{
	for (struct outbox_msg *m = l->head, *next; m; m = next) {
		next = m->next;
		msg_free(m);
	}
	memset(l, 0, sizeof(*l));
}

void outbox_clean_up(struct outbox *o)
{
	list_free(&o->waiting);
	list_free(&o->sent);
}

static void push_tail(struct outbox_list *l, struct outbox_msg *m)
{
	m->next = NULL;
	if (l->tail)
		l->tail->next = m;
	else
		l->head = m;
	l->tail = m;
	l->n++;
}

static void push_head(struct outbox_list *l, struct outbox_msg *m)
{
	m->next = l->head;
	l->head = m;
	if (!l->tail)
		l->tail = m;
	l->n++;
}

static struct outbox_msg *pop_head(struct outbox_list *l)
{
	struct outbox_msg *m = l->head;
	l->head = m->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	m->next = NULL;
	return m;
}

/* Hand over the head of the waiting queue: the publish function's answer
 * (a message refused for good is freed). */
static int hand_over(struct outbox *o, char *err)
{
	struct outbox_msg *m = o->waiting.head;
	int rc = o->publish(o->ctx, m, err);
	if (rc == MQTT_OUT_LATER)
		return rc;
	pop_head(&o->waiting);
	if (rc == MQTT_OUT_TAKEN) {
		push_tail(&o->sent, m);
		return rc;
	}
	o->refused++;
	if (o->on_refused && m->cookie)
		o->on_refused(o->refused_ctx, m->cookie);
	msg_free(m);
	return MQTT_OUT_NEVER;
}

static int window_open(const struct outbox *o)
{
	return o->window == 0 || o->sent.n < o->window;
}

int outbox_put(struct outbox *o, const struct mqtt_out *out, uint64_t cookie, char *err)
{
	struct outbox_msg *m = rt_calloc(1, sizeof(*m));
	m->id = o->next_id++;
	m->cookie = cookie;
	m->out = *out;
	m->out.topic = rt_strdup(out->topic);
	m->out.payload = view_of(rt_memdup(out->payload.ptr, out->payload.len), out->payload.len);
	m->out.correlation = copy_view(out->correlation);
	m->out.response_topic = copy_or_null(out->response_topic);
	m->out.content_type = copy_or_null(out->content_type);
	int alone = o->waiting.head == NULL;
	push_tail(&o->waiting, m);
	if (!alone || !window_open(o))
		return MQTT_OUT_LATER;
	return hand_over(o, err);
}

size_t outbox_flush(struct outbox *o)
{
	size_t moved = 0;
	while (o->waiting.head && window_open(o)) {
		char err[ERR_LEN] = "";
		char topic[128];
		snprintf(topic, sizeof(topic), "%s", o->waiting.head->out.topic);
		int rc = hand_over(o, err);
		if (rc == MQTT_OUT_LATER)
			break;
		if (rc == MQTT_OUT_NEVER)
			log_error("reply to %s given up: %s", topic, err);
		moved++;
	}
	return moved;
}

uint64_t outbox_confirm(struct outbox *o, uint64_t id, int ok, int *known)
{
	struct outbox_msg *prev = NULL, *m = o->sent.head;
	while (m && m->id != id) {
		prev = m;
		m = m->next;
	}
	*known = m != NULL;
	if (!m)
		return 0;
	if (prev)
		prev->next = m->next;
	else
		o->sent.head = m->next;
	if (o->sent.tail == m)
		o->sent.tail = prev;
	o->sent.n--;
	if (!ok) { /* given back: first in line again */
		push_head(&o->waiting, m);
		return 0;
	}
	uint64_t cookie = m->cookie;
	msg_free(m);
	return cookie;
}
