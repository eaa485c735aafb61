/*
 * spool: file handling. The file only grows while requests are live; when
 * the last one is done it is truncated, and at start it is compacted, so it
 * stays about as large as the requests actually waiting.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sbuf.h"
#include "runtime.h"

#define TRUNCATE_AT (4u << 20) /* bytes; truncate once idle past this */

struct spool {
	char *path, *tmp_path, *dir;
	int fd;
	struct sbuf batch;
	int batch_adds;
	uint64_t next_seq;
	size_t live;
	off_t size;
	spool_follow_fn follow_cb;
	void *follow_ctx;
	struct settling *settling; /* entries kept to settle their call */
	size_t n_settling, cap_settling;
};

/* An entry whose call is being settled: its reply's DONE becomes ANSWERED. */
struct settling {
	uint64_t seq;
	int answered;
};

/* A STATUS record seen at recovery; sorted by seq, then file order. */
struct status_rec {
	uint64_t seq;
	size_t order;
	uint8_t status;
};

static int cmp_status(const void *a, const void *b)
{
	const struct status_rec *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The last status recorded for seq, or dflt. */
static uint8_t last_status(const struct status_rec *v, size_t n, uint64_t seq, uint8_t dflt)
{
	size_t lo = 0, hi = n;
	while (lo < hi) { /* first index with v[i].seq > seq */
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && v[lo - 1].seq == seq ? v[lo - 1].status : dflt;
}

void spool_on_follow(struct spool *s, spool_follow_fn cb, void *ctx)
{
	s->follow_cb = cb;
	s->follow_ctx = ctx;
}

void spool_add_follow(struct spool *s, struct spool_follow *f)
{
	f->seq = s->next_seq++;
	spool_encode_follow(&s->batch, f);
	s->batch_adds = 1;
	s->live++;
}

void spool_follow_status(struct spool *s, uint64_t seq, uint8_t status)
{
	spool_encode_status(&s->batch, seq, status);
}

static char *join(const char *dir, const char *name)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, dir);
	sbuf_putc(&b, '/');
	sbuf_puts(&b, name);
	return sbuf_steal(&b);
}

struct spool *spool_open(const char *dir, char *err)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		cg_fail(err, CG_IO, "spool: cannot create %s: %s", dir, strerror(errno));
		return NULL;
	}
	struct spool *s = rt_calloc(1, sizeof(*s));
	s->dir = rt_strdup(dir);
	s->path = join(dir, "spool.log");
	s->tmp_path = join(dir, "spool.log.new");
	s->fd = open(s->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		cg_fail(err, CG_IO, "spool: cannot open %s: %s", s->path, strerror(errno));
		spool_close(s);
		return NULL;
	}
	sbuf_init(&s->batch);
	s->next_seq = 1;
	return s;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	sbuf_clean_up(&s->batch);
	free(s->settling);
	free(s->path);
	free(s->tmp_path);
	free(s->dir);
	free(s);
}

static int read_all(int fd, struct sbuf *out)
{
	char buf[65536];
	ssize_t n;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sbuf_append(out, buf, (size_t)n);
	return n < 0 ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Is seq among the DONE records? Linear over a sorted array. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

enum cg_err spool_recover(struct spool *s, spool_entry_fn cb, void *ctx, char *err)
{
	struct sbuf data;
	sbuf_init(&data);
	if (read_all(s->fd, &data) != 0) {
		sbuf_clean_up(&data);
		return cg_fail(err, CG_IO, "spool: cannot read %s: %s", s->path, strerror(errno));
	}
	/* pass 1: DONE set and the end of the trusted part */
	size_t cap = 64, ndone = 0, pos = 0, end, nstat = 0, cap_stat = 0, nans = 0, cap_ans = 0;
	uint64_t *done = rt_malloc(cap * sizeof(*done)), *ans = NULL;
	struct status_rec *stat = NULL;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	int rc;
	while ((rc = spool_decode_record((unsigned char *)data.data, data.len, &pos, &t, &e, &f)) ==
	       1) {
		if (e.seq >= s->next_seq)
			s->next_seq = e.seq + 1;
		if (t == SPOOL_STATUS) {
			if (nstat == cap_stat) {
				cap_stat = cap_stat ? 2 * cap_stat : 64;
				stat = rt_realloc(stat, cap_stat * sizeof(*stat));
			}
			stat[nstat].seq = f.seq;
			stat[nstat].order = nstat;
			stat[nstat++].status = f.last_status;
			continue;
		}
		if (t == SPOOL_ANSWERED) {
			if (nans == cap_ans)
				ans = rt_realloc(ans, (cap_ans = cap_ans ? 2 * cap_ans : 64) *
				                          sizeof(*ans));
			ans[nans++] = e.seq;
			continue;
		}
		if (t != SPOOL_DONE)
			continue;
		if (ndone == cap)
			done = rt_realloc(done, (cap *= 2) * sizeof(*done));
		done[ndone++] = e.seq;
	}
	end = pos;
	if (rc < 0)
		log_warn("spool: %s has a torn or corrupt record at byte %zu of %zu; the rest is "
		         "skipped",
		         s->path, end, data.len);
	qsort(done, ndone, sizeof(*done), cmp_u64);
	if (nans)
		qsort(ans, nans, sizeof(*ans), cmp_u64);
	if (nstat)
		qsort(stat, nstat, sizeof(*stat), cmp_status);
	/* pass 2: live entries, handed back and rewritten */
	struct sbuf fresh;
	sbuf_init(&fresh);
	s->live = 0;
	size_t follows = 0;
	for (pos = 0; pos < end && spool_decode_record((unsigned char *)data.data, end, &pos, &t,
	                                               &e, &f) == 1;) {
		if ((t != SPOOL_ADD && t != SPOOL_FOLLOW) ||
		    bsearch(&e.seq, done, ndone, sizeof(*done), cmp_u64))
			continue;
		s->live++;
		if (t == SPOOL_FOLLOW) {
			/* the last status folded in: the rewritten file needs no STATUS */
			f.last_status = last_status(stat, nstat, f.seq, f.last_status);
			spool_encode_follow(&fresh, &f);
			follows++;
			if (s->follow_cb)
				s->follow_cb(&f, s->follow_ctx);
			continue;
		}
		spool_encode_add(&fresh, &e);
		e.answered = nans && bsearch(&e.seq, ans, nans, sizeof(*ans), cmp_u64) != NULL;
		if (e.answered)
			spool_encode_answered(&fresh, e.seq);
		cb(&e, ctx);
	}
	free(done);
	free(ans);
	free(stat);
	enum cg_err out = CG_OK;
	int fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, fresh.data, fresh.len) != (ssize_t)fresh.len ||
	    fdatasync(fd) != 0 || rename(s->tmp_path, s->path) != 0 || fsync_dir(s->dir) != 0) {
		out = cg_fail(err, CG_IO, "spool: cannot rewrite %s: %s", s->path, strerror(errno));
	} else {
		close(s->fd);
		s->fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC);
		s->size = (off_t)fresh.len;
		if (s->fd < 0)
			out = cg_fail(err, CG_IO, "spool: cannot reopen %s", s->path);
	}
	if (fd >= 0)
		close(fd);
	if (s->live - follows)
		log_info("spool: %zu request(s) to resume from %s", s->live - follows, s->path);
	if (follows)
		log_info("spool: %zu follow(s) to resume from %s", follows, s->path);
	sbuf_clean_up(&fresh);
	sbuf_clean_up(&data);
	return out;
}

void spool_add(struct spool *s, struct spool_entry *e)
{
	e->seq = s->next_seq++;
	spool_encode_add(&s->batch, e);
	s->batch_adds = 1;
	s->live++;
}

static struct settling *settling_find(struct spool *s, uint64_t seq)
{
	for (size_t i = 0; i < s->n_settling; i++)
		if (s->settling[i].seq == seq)
			return &s->settling[i];
	return NULL;
}

static void settling_remove(struct spool *s, struct settling *x)
{
	*x = s->settling[--s->n_settling];
}

static void write_done(struct spool *s, uint64_t seq)
{
	spool_encode_done(&s->batch, seq);
	if (s->live)
		s->live--;
}

void spool_done(struct spool *s, uint64_t seq)
{
	struct settling *x = settling_find(s, seq);
	if (!x) {
		write_done(s, seq);
	} else if (!x->answered) { /* the reply is out; the entry stays to settle */
		x->answered = 1;
		spool_encode_answered(&s->batch, seq);
		s->batch_adds = 1;
	}
}

void spool_settle_hold(struct spool *s, uint64_t seq, int answered)
{
	if (settling_find(s, seq))
		return;
	if (s->n_settling == s->cap_settling) {
		s->cap_settling = s->cap_settling ? 2 * s->cap_settling : 8;
		s->settling = rt_realloc(s->settling, s->cap_settling * sizeof(*s->settling));
	}
	s->settling[s->n_settling].seq = seq;
	s->settling[s->n_settling++].answered = answered;
}

void spool_settle_end(struct spool *s, uint64_t seq)
{
	struct settling *x = settling_find(s, seq);
	if (!x)
		return;
	int answered = x->answered;
	settling_remove(s, x);
	if (answered) /* else the reply's delivery writes the DONE */
		write_done(s, seq);
}

enum cg_err spool_flush(struct spool *s, int sync, char *err)
{
	if (s->batch.len) {
		ssize_t n = write(s->fd, s->batch.data, s->batch.len);
		if (n != (ssize_t)s->batch.len)
			return cg_fail(err, CG_IO, "spool: write to %s failed: %s", s->path,
			               strerror(errno));
		s->size += n;
		sbuf_reset(&s->batch);
	}
	if (sync && s->batch_adds) {
		if (fdatasync(s->fd) != 0)
			return cg_fail(err, CG_IO, "spool: fdatasync %s: %s", s->path,
			               strerror(errno));
		s->batch_adds = 0;
	}
	if (s->live == 0 && s->size > (off_t)TRUNCATE_AT && !s->batch_adds) {
		if (ftruncate(s->fd, 0) == 0)
			s->size = 0;
	}
	return CG_OK;
}

size_t spool_live(const struct spool *s)
{
	return s->live;
}

struct spool *spool_open_configured(const char *dir, const char *state_directory, char *err,
                                    int *failed)
{
	char state_dir[512] = "";
	*failed = 0;
	if (!*dir && state_directory && *state_directory) {
		snprintf(state_dir, sizeof(state_dir), "%.*s/spool",
		         (int)strcspn(state_directory, ":"), state_directory);
		dir = state_dir;
	}
	if (!*dir)
		return NULL;
	struct spool *s = spool_open(dir, err);
	if (s)
		log_info("spool: %s", dir);
	else
		*failed = 1;
	return s;
}
