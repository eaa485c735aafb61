/*
 * engine_priv: what the engine's files share. Private to engine.c (the loop),
 * request.c (admission and answers) and call.c (calls to AWS); nothing else
 * includes it.
 */
#ifndef CMDGATE_ENGINE_PRIV_H
#define CMDGATE_ENGINE_PRIV_H

#include "engine.h"
#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "awserr.h"
#include "backoff.h"
#include "ratelimit.h"
#include "credentials.h"
#include "fairq.h"
#include "http.h"
#include "jsonw.h"
#include "log.h"
#include "notify.h"
#include "reply.h"
#include "sigv4.h"
#include "spool.h"
#include "stats.h"
#include "translate.h"

#define SERVICE       "iot-jobs-data"
#define RETRY_BASE_MS 100
#define RETRY_CAP_MS  5000

enum req_state { RS_QUEUED, RS_FLIGHT, RS_RETRY };

/* fq is the first member: a struct fq_item * from the fair queue is the
 * request itself. */
struct request {
	struct fq_item fq; /* while waiting for its first call (RS_QUEUED) */
	struct request *next, *prev;
	enum req_state state;
	struct inbound *in; /* owned */
	char thing[130], command[66];
	char *reply_accepted, *reply_rejected; /* owned topics */
	struct translated tr;
	uint64_t deadline_ms, next_try_ms;
	unsigned attempts;
	int skew_retried, token_retried;
	unsigned waits; /* retries that used no attempt (endpoint unreachable) */
	uint64_t cred_generation;
	struct http_call call;
	/* the last failure, for the final reply when retries run out */
	struct awserr last_aws;
	int last_was_aws;
	char last_err[ERR_LEN];
};

struct list {
	struct request *head, *tail;
	size_t n;
};

struct engine {
	struct config *cfg;
	struct cred_provider *creds;
	struct http_client *http;
	struct mqtt *mqtt;
	int wake_fd;
	pthread_mutex_t lock; /* guards inbox */
	struct inbound *inbox, **inbox_tail;
	struct fairq *waiting; /* RS_QUEUED: per thing, round-robin */
	struct list retry, flight;
	struct sigv4_key_cache keys;
	long skew_s; /* server clock minus ours */
	struct ratelimit rate;
	int ready, draining;
	uint64_t drain_until_ms;
	struct stats stats;
	uint64_t last_stats_ms;
	struct spool *spool; /* NULL without gateway.spool_dir */
	uint64_t *delivered; /* spool seqs whose reply the broker has; guarded by lock */
	size_t n_delivered, cap_delivered;
	char *host;     /* "host[:port]" of the endpoint */
	char *url;      /* endpoint + "/command-executions" */
	char *url_path; /* path part of url */
};

uint64_t now_ms(void);
void wake(int fd);

/* request.c */
void list_push(struct list *l, struct request *r);
void list_remove(struct list *l, struct request *r);
void request_free(struct request *r);
void finish(struct engine *e, struct request *r, const struct outcome *o);
void finish_gateway(struct engine *e, struct request *r, enum gw_code c, const char *msg);
void finish_aws(struct engine *e, struct request *r, const struct awserr *ae);
void finish_last_error(struct engine *e, struct request *r);
void drain_inbox(struct engine *e);
void on_inbound(struct inbound *in, void *ctx);
void on_delivered(uint64_t seq, void *ctx);
void on_ready(void *ctx);
void sync_spool(struct engine *e);
void resume_entry(const struct spool_entry *s, void *ctx);

/* call.c */
void launch(struct engine *e, struct request *r, uint64_t now);
void on_done(struct http_call *call, void *ctx);

#endif
