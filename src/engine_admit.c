/*
 * engine_admit: the way into the engine. What the inbox holds is admitted
 * (request.c decides; this file queues, answers or drops), made durable in
 * the spool before any of its calls starts, and resumed from the spool at
 * start; the broker's delivery confirmations take answered requests out of
 * the spool.
 */
#include "engine_priv.h"
#include "log.h"
#include "runtime.h"

static void admit(struct engine *e, struct message *m, const struct resume *res)
{
	uint64_t now = rt_now_ms();
	struct admit_env env = {
	    .cfg = e->cfg,
	    .now_ms = now,
	    .draining = e->draining && !e->spool,
	    .queued = fairq_len(e->waiting) + outbox_len(&e->outbox),
	    .buckets = e->waiting,
	};
	struct request *r;
	enum gw_code code = GW_INTERNAL_ERROR;
	char err[ERR_LEN] = "";
	switch (request_admit(&env, m, res, &r, &code, err)) {
	case ADMIT_DROP:
		log_warn("no route for topic %s; dropped", m->topic);
		if (e->spool && r->spool_seq)
			spool_done(e->spool, r->spool_seq);
		request_free(r);
		return;
	case ADMIT_ANSWER:
		if (!settler_unadmitted(&e->settle, r, res))
			engine_finish_gateway(e, r, code, err);
		return;
	case ADMIT_QUEUE:
		break;
	}
	if (e->spool && !r->spool_seq) {
		if (spool_live(e->spool) >= (size_t)e->cfg->gateway.spool_max) {
			engine_finish_gateway(e, r, GW_OVERLOADED, "the spool is full");
			return;
		}
		struct spool_entry se;
		request_spool_entry(r, e->cfg->gateway.deadline_ms, &se);
		spool_add(e->spool, &se);
		r->spool_seq = se.seq;
	}
	if (e->draining) { /* kept in the spool for the next start */
		engine_release(e, r);
		request_free(r);
		return;
	}
	engine_queue(e, r);
	settler_queued(&e->settle, r, res);
}

/* late: the MQTT client has stopped; what it still handed over goes to the
 * spool for the next start, or is left to the device's retry. */
void engine_admit_inbox(struct engine *e, int late)
{
	struct message *m = inbox_take(e->inbox);
	while (m) {
		struct message *next = m->next;
		m->next = NULL;
		if (late && !e->spool && !m->link) {
			log_warn("stopping: too late to answer a request on %s", m->topic);
			message_free(m);
		} else if (!proxy_take_message(e->proxy, m, rt_now_ms())) { /* SPEC 9 */
			admit(e, m, NULL);
		}
		m = next;
	}
}

/* The MQTT client confirmed a reply: delivered (its request leaves the
 * spool) or given back (the outbox sends it again). */
static void on_confirmed(uint64_t id, int ok, void *ctx)
{
	struct engine *e = ctx;
	int known;
	uint64_t seq = outbox_confirm(&e->outbox, id, ok, &known);
	if (e->spool && seq)
		spool_done(e->spool, seq);
}

/* Record DONE for delivered replies and make this turn's ADDs durable. */
void engine_sync_spool(struct engine *e)
{
	inbox_take_delivered(e->inbox, on_confirmed, e);
	if (!e->spool)
		return;
	char err[ERR_LEN];
	if (spool_flush(e->spool, 1, err) != CG_OK)
		log_error("%s", err);
}

/* A live spool entry found at start: admitted again with its original
 * token and deadline. */
void engine_resume_entry(const struct spool_entry *s, void *ctx)
{
	struct engine *e = ctx;
	if (proxy_resume(e->proxy, e->spool, s, rt_now_ms(), rt_wall_ms()))
		return; /* SPEC 9 */
	struct resume res;
	struct message *m = request_message_from_spool(s, rt_wall_ms(), rt_now_ms(), &res);
	admit(e, m, &res);
}
