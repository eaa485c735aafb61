/* answer: see answer.h. */
#include "answer.h"

#include <stdlib.h>

#include "jsonw.h"
#include "log.h"

/* Publish r's reply and log its line; r stays r's caller's. */
static void reply(const struct answer_env *env, struct request *r, const struct outcome *o)
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
		int rc = outbox_put(env->outbox, topic, json.data, json.len, r->msg->qos,
		                    r->msg->correlation, r->msg->correlation_len, cookie, err);
		delivery = rc > 0 ? "sent" : rc == 0 ? "waiting" : "failed";
		if (rc < 0) /* answer_publish took it out of the spool */
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
}

static void answer(const struct answer_env *env, struct request *r, const struct outcome *o)
{
	reply(env, r, o);
	if (!r->settle.active) /* else the engine keeps r to settle its call */
		request_free(r);
}

/* Hand an accepted execution of a following route to the follower. */
static void follow(const struct answer_env *env, struct request *r, const char *execution_id)
{
	struct sbuf topic, id;
	sbuf_init(&topic);
	sbuf_init(&id);
	if (r->tr.id)
		jsonw_value(&id, r->tr.id);
	char err[ERR_LEN];
	if (follow_topic_finish(r->follow_topic, execution_id, &topic, err) == CG_OK) {
		struct follow_info fi = {
		    r->thing,    r->command,          execution_id,
		    r->target,   topic.data,          r->tr.id ? id.data : NULL,
		    r->msg->qos, r->msg->correlation, r->msg->correlation_len};
		if (follower_add(env->follower, &fi, env->now_ms, env->follow_max_s, err) != CG_OK)
			log_warn("not followed: %s", err);
	}
	sbuf_clean_up(&topic);
	sbuf_clean_up(&id);
}

int answer_follow_publish(void *ctx, const char *topic, const char *payload, size_t len, int qos,
                          const void *corr, size_t corr_len, uint64_t cookie)
{
	char err[ERR_LEN] = "";
	int rc = outbox_put(ctx, topic, payload, len, qos, corr, corr_len, cookie, err);
	if (rc < 0)
		log_error("follow message to %s cannot be published: %s", topic, err);
	return rc < 0 ? -1 : 0;
}

/* SPEC 5: with gateway.follow_max executions followed, one more ends at
 * once with its one final message (status null, code Overloaded, after the
 * accepted reply), so memory and polls stay bounded whatever devices start. */
static void refuse_follow(const struct answer_env *env, struct request *r, const char *execution_id)
{
	struct sbuf topic, id, msg;
	sbuf_init(&topic);
	sbuf_init(&id);
	sbuf_init(&msg);
	if (r->tr.id)
		jsonw_value(&id, r->tr.id);
	if (follow_topic_finish(r->follow_topic, execution_id, &topic, NULL) == CG_OK) {
		follow_render_end(&msg, r->tr.id ? id.data : NULL, execution_id, FOLLOW_NONE,
		                  "Overloaded", 1);
		log_warn("follow thing=%s execution=%s: %zu executions are followed "
		         "(gateway.follow_max); ended at once",
		         r->thing, execution_id, follower_active(env->follower));
		answer_follow_publish(env->outbox, topic.data, msg.data, msg.len, r->msg->qos,
		                      r->msg->correlation, r->msg->correlation_len, 0);
	}
	sbuf_clean_up(&msg);
	sbuf_clean_up(&id);
	sbuf_clean_up(&topic);
}

void answer_accepted(const struct answer_env *env, struct request *r, const char *execution_id)
{
	int followed = env->follower && r->follow_topic;
	int refused = followed && follower_active(env->follower) >= (size_t)env->follow_max;
	if (followed && !refused)
		follow(env, r, execution_id);
	struct outcome o = {.accepted = 1,
	                    .execution_id = execution_id,
	                    .id = r->tr.id,
	                    .client_token = r->tr.client_token};
	reply(env, r, &o);
	if (refused)
		refuse_follow(env, r, execution_id);
	request_free(r);
}

void answer_gateway(const struct answer_env *env, struct request *r, enum gw_code c,
                    const char *msg)
{
	struct outcome o = {0};
	outcome_gateway(&o, c, msg);
	o.id = r->tr.id;
	o.client_token = r->tr.client_token;
	answer(env, r, &o);
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
	answer(env, r, &o);
}

enum cg_err answer_publish(void *ctx, const struct outbox_msg *m, char *err)
{
	struct answer_sink *sink = ctx;
	if (!sink->mqtt)
		return cg_fail(err, CG_TRANSPORT, "not connected yet");
	enum cg_err rc = mqtt_publish_tracked(sink->mqtt, m->topic, m->payload, m->len, m->qos,
	                                      m->correlation, m->correlation_len, m->id, err);
	if (rc != CG_OK && rc != CG_TRANSPORT && sink->spool && m->cookie)
		spool_done(sink->spool, m->cookie); /* will never be published */
	return rc;
}
