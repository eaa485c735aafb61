/* answer: see answer.h. */
#include "answer.h"

#include <stdlib.h>

#include "jsonw.h"
#include "log.h"

/* A message the engine asked to follow an accepted reply. */
static void send_then(const struct answer_env *env, const struct mqtt_out *then)
{
	char err[ERR_LEN] = "";
	if (outbox_put(env->outbox, then, 0, err) == MQTT_OUT_NEVER)
		log_error("follow message to %s cannot be published: %s", then->topic, err);
}

static void answer(const struct answer_env *env, struct request *r, const struct outcome *o,
                   const struct mqtt_out *then)
{
	uint64_t latency_ms = env->now_ms - r->msg->received_ms;
	stats_record(env->stats, o->accepted ? NULL : o->code, latency_ms * 1000);
	const char *topic = o->accepted ? r->reply_accepted : r->reply_rejected;
	struct sbuf json;
	sbuf_init(&json);
	reply_render(o, &json);
	char err[ERR_LEN] = "";
	const char *delivery = "none";
	if (topic) {
		uint64_t cookie = env->spool ? r->spool_seq : 0;
		struct mqtt_out out = {
		    .topic = topic,
		    .payload = view_of(json.data, json.len),
		    .qos = r->msg->qos,
		    .correlation = view_of(r->msg->correlation, r->msg->correlation_len),
		};
		int rc = outbox_put(env->outbox, &out, cookie, err);
		delivery = rc == MQTT_OUT_TAKEN   ? "sent"
		           : rc == MQTT_OUT_LATER ? "waiting"
		                                  : "failed";
		if (rc == MQTT_OUT_NEVER) /* the outbox took it out of the spool */
			log_error("reply to %s cannot be published: %s", topic, err);
	} else if (env->spool && r->spool_seq) {
		spool_done(env->spool, r->spool_seq); /* nowhere to answer: do not resume it */
	}
	struct sbuf idtext;
	sbuf_init(&idtext);
	if (r->tr.id)
		jsonw_value(&idtext, r->tr.id);
	log_info("request thing=%s command=%s id=%s token=%s outcome=%s%s%s attempts=%u "
	         "latency_ms=%llu reply=%s",
	         r->thing[0] ? r->thing : "-", r->command[0] ? r->command : "-",
	         r->tr.id ? idtext.data : "-", r->tr.client_token[0] ? r->tr.client_token : "-",
	         o->accepted ? "accepted" : "rejected",
	         o->accepted ? "" : " code=", o->accepted ? "" : o->code, r->at.attempts,
	         (unsigned long long)latency_ms, delivery);
	if (!o->accepted && o->message)
		log_debug("request token=%s message=%s", r->tr.client_token, o->message);
	sbuf_clean_up(&idtext);
	sbuf_clean_up(&json);
	if (then)
		send_then(env, then);
	if (!r->settle.active) /* else the engine keeps r to settle its call */
		request_free(r);
}

void answer_accepted(const struct answer_env *env, struct request *r, const char *execution_id,
                     const struct mqtt_out *then)
{
	struct outcome o = {.accepted = 1,
	                    .execution_id = execution_id,
	                    .id = r->tr.id,
	                    .client_token = r->tr.client_token};
	answer(env, r, &o, then);
}

void answer_gateway(const struct answer_env *env, struct request *r, enum gw_code c,
                    const char *msg)
{
	struct outcome o = {0};
	reply_outcome_gateway(&o, c, msg);
	o.id = r->tr.id;
	o.client_token = r->tr.client_token;
	answer(env, r, &o, NULL);
}

void answer_aws(const struct answer_env *env, struct request *r, const struct awserr *ae)
{
	struct outcome o = {0};
	o.code = ae->code;
	o.message = ae->message;
	o.aws = 1;
	o.http_status = ae->http_status;
	o.retryable = ae->retryable;
	o.id = r->tr.id;
	o.client_token = r->tr.client_token;
	answer(env, r, &o, NULL);
}
