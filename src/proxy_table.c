/*
 * proxy_table: the executions the proxy knows, in a chained hash table
 * keyed by thing and executionId (FNV-1a), grown by doubling when it holds
 * as many executions as buckets. Engine thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_priv.h"
#include "runtime.h"

static size_t hash(const char *thing, const char *id, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const char *s = thing; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h = (h ^ '/') * 1099511628211ull;
	for (const char *s = id; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h % n);
}

struct proxy_exec *proxy_table_find(const struct proxy *p, const char *thing, const char *id)
{
	for (struct proxy_exec *ex = p->buckets[hash(thing, id, p->n_buckets)]; ex; ex = ex->next)
		if (strcmp(ex->thing, thing) == 0 && strcmp(ex->id, id) == 0)
			return ex;
	return NULL;
}

static void grow(struct proxy *p)
{
	size_t n = p->n_buckets * 2;
	struct proxy_exec **b = rt_calloc(n, sizeof(*b));
	for (size_t i = 0; i < p->n_buckets; i++)
		for (struct proxy_exec *ex = p->buckets[i], *next; ex; ex = next) {
			next = ex->next;
			size_t h = hash(ex->thing, ex->id, n);
			ex->next = b[h];
			b[h] = ex;
		}
	free(p->buckets);
	p->buckets = b;
	p->n_buckets = n;
}

struct proxy_exec *proxy_table_add(struct proxy *p, const char *thing, const char *id, uint64_t now,
                                   long timeout_s)
{
	if (p->n_execs >= p->n_buckets)
		grow(p);
	struct proxy_exec *ex = rt_malloc(sizeof(*ex));
	proxy_exec_init(ex, thing, id, now, timeout_s);
	timer_task_init(&ex->task, proxy_exec_due);
	ex->owner = p;
	size_t h = hash(thing, id, p->n_buckets);
	ex->next = p->buckets[h];
	p->buckets[h] = ex;
	p->n_execs++;
	return ex;
}

void proxy_table_remove(struct proxy *p, struct proxy_exec *ex)
{
	struct proxy_exec **pp = &p->buckets[hash(ex->thing, ex->id, p->n_buckets)];
	while (*pp != ex)
		pp = &(*pp)->next;
	*pp = ex->next;
	p->n_execs--;
}
