/*
 * spool_compact: reading the spool file back and rewriting it with only
 * its live records (see spool.c for when). It streams the file twice: first
 * the DONE, ANSWERED and STATUS records (what is finished, the last status
 * of each follow), then the live ADD and FOLLOW records, written to
 * spool.log.new and renamed over spool.log. Memory follows the live
 * records, never the file's history. At start each live record is handed
 * back to the caller.
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
#include "runtime.h"
#include "spool_priv.h"

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

struct reader {
	int fd;
	struct sbuf buf;
	size_t at;    /* start of the next record in buf */
	off_t offset; /* file offset of buf[at] */
	off_t size;   /* the file's size when the reader started */
};

static int reader_start(struct reader *r, int fd)
{
	struct stat st;
	r->fd = fd;
	r->at = 0;
	r->offset = 0;
	sbuf_init(&r->buf);
	if (fstat(fd, &st) != 0 || lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	r->size = st.st_size;
	return 0;
}

/* At least need bytes at buf[at]: 0, or -1 at the end of the file. */
static int reader_fill(struct reader *r, size_t need)
{
	if (r->buf.len - r->at >= need)
		return 0;
	memmove(r->buf.data, r->buf.data + r->at, r->buf.len - r->at);
	r->buf.len -= r->at;
	r->at = 0;
	while (r->buf.len < need) {
		size_t want = need - r->buf.len > READ_CHUNK ? need - r->buf.len : READ_CHUNK;
		sbuf_reserve(&r->buf, want);
		ssize_t n = read(r->fd, r->buf.data + r->buf.len, want);
		if (n <= 0)
			return -1;
		r->buf.len += (size_t)n;
	}
	r->buf.data[r->buf.len] = '\0';
	return 0;
}

/* The next record: 1, 0 at a clean end, -1 at a torn or corrupt one. Its
 * views stay valid until the next call. */
static int reader_next(struct reader *r, enum spool_type *t, struct spool_entry *e,
                       struct spool_follow *f)
{
	if (reader_fill(r, 12) != 0)
		return r->buf.len == r->at ? 0 : -1;
	const unsigned char *h = (const unsigned char *)r->buf.data + r->at;
	size_t len = (size_t)h[4] | (size_t)h[5] << 8 | (size_t)h[6] << 16 | (size_t)h[7] << 24;
	/* a length the file cannot hold is corrupt: never allocate for it */
	if (memcmp(h, "CGS1", 4) != 0 || (off_t)len > r->size - r->offset - 12 ||
	    reader_fill(r, 12 + len) != 0)
		return -1;
	size_t pos = 0;
	if (spool_decode_record((const unsigned char *)r->buf.data + r->at, 12 + len, &pos, t, e,
	                        f) != 1)
		return -1;
	r->at += pos;
	r->offset += (off_t)pos;
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* What pass 1 learns: the DONE set, the STATUS records, where trust ends. */
struct history {
	uint64_t *done, *answered; /* ANSWERED: kept only to settle a call */
	size_t ndone, cap_done, nanswered, cap_answered;
	struct status_rec *stat;
	size_t nstat, cap_stat;
	off_t end;
	int torn;
};

static void history_scan(struct spool *s, struct history *h)
{
	struct reader r;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	int rc = reader_start(&r, s->fd) == 0 ? 1 : -1;
	while (rc == 1 && (rc = reader_next(&r, &t, &e, &f)) == 1) {
		if (e.seq >= s->next_seq)
			s->next_seq = e.seq + 1;
		if (t == SPOOL_STATUS) {
			if (h->nstat == h->cap_stat) {
				h->cap_stat = h->cap_stat ? 2 * h->cap_stat : 64;
				h->stat = rt_realloc(h->stat, h->cap_stat * sizeof(*h->stat));
			}
			h->stat[h->nstat].seq = f.seq;
			h->stat[h->nstat].order = h->nstat;
			h->stat[h->nstat++].status = f.last_status;
		} else if (t == SPOOL_DONE) {
			if (h->ndone == h->cap_done) {
				h->cap_done = h->cap_done ? 2 * h->cap_done : 64;
				h->done = rt_realloc(h->done, h->cap_done * sizeof(*h->done));
			}
			h->done[h->ndone++] = e.seq;
		} else if (t == SPOOL_ANSWERED) {
			if (h->nanswered == h->cap_answered) {
				h->cap_answered = h->cap_answered ? 2 * h->cap_answered : 64;
				h->answered =
				    rt_realloc(h->answered, h->cap_answered * sizeof(*h->answered));
			}
			h->answered[h->nanswered++] = e.seq;
		}
	}
	h->end = r.offset;
	h->torn = rc < 0;
	if (h->torn)
		log_warn("spool: %s has a torn or corrupt record at byte %lld of %lld; the rest "
		         "is skipped",
		         s->path, (long long)r.offset, (long long)r.size);
	sbuf_clean_up(&r.buf);
	if (h->ndone)
		qsort(h->done, h->ndone, sizeof(*h->done), cmp_u64);
	if (h->nanswered)
		qsort(h->answered, h->nanswered, sizeof(*h->answered), cmp_u64);
	if (h->nstat)
		qsort(h->stat, h->nstat, sizeof(*h->stat), cmp_status);
}

/* The file being written by a compaction. */
struct fresh {
	int fd;
	struct sbuf buf;
	off_t written;
	int failed;
};

static void fresh_write(struct fresh *w, int last)
{
	if (w->failed || (!last && w->buf.len < READ_CHUNK))
		return;
	if (w->buf.len && write(w->fd, w->buf.data, w->buf.len) != (ssize_t)w->buf.len)
		w->failed = 1;
	w->written += (off_t)w->buf.len;
	sbuf_reset(&w->buf);
}

/* Pass 2: every live record into w, and to the callbacks when cb is set
 * (at start). Counts requests and follows separately. */
static void rewrite_live(struct spool *s, const struct history *h, struct fresh *w,
                         spool_entry_fn cb, void *ctx, size_t *requests, size_t *follows)
{
	struct reader r;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	*requests = *follows = 0;
	spool_live_reset(s);
	if (reader_start(&r, s->fd) != 0) {
		w->failed = 1;
		return;
	}
	while (r.offset < h->end && reader_next(&r, &t, &e, &f) == 1) {
		if ((t != SPOOL_ADD && t != SPOOL_FOLLOW) ||
		    (h->ndone && bsearch(&e.seq, h->done, h->ndone, sizeof(*h->done), cmp_u64)))
			continue;
		size_t before = w->buf.len;
		if (t == SPOOL_FOLLOW) {
			/* the last status folded in: the rewritten file needs no STATUS */
			f.last_status = last_status(h->stat, h->nstat, f.seq, f.last_status);
			spool_encode_follow(&w->buf, &f);
			spool_live_note(s, f.seq, w->buf.len - before);
			(*follows)++;
			if (cb && s->follow_cb)
				s->follow_cb(&f, s->follow_ctx);
		} else {
			spool_encode_add(&w->buf, &e);
			e.answered = h->nanswered && bsearch(&e.seq, h->answered, h->nanswered,
			                                     sizeof(*h->answered), cmp_u64);
			if (e.answered) /* kept only to settle its call */
				spool_encode_answered(&w->buf, e.seq);
			spool_live_note(s, e.seq, w->buf.len - before);
			(*requests)++;
			if (cb)
				cb(&e, ctx);
		}
		fresh_write(w, 0);
	}
	sbuf_clean_up(&r.buf);
	fresh_write(w, 1);
	if (s->nrecs) /* file order is seq order; sorted in case an old file was not */
		qsort(s->recs, s->nrecs, sizeof(*s->recs), spool_cmp_rec);
}

/* Rewrite the file with its live records only (cb: hand them back too). */
enum cg_err spool_compact(struct spool *s, spool_entry_fn cb, void *ctx, char *err)
{
	struct history h = {0};
	history_scan(s, &h);
	/* whatever is planted under the temporary name goes: a symlink is
	 * unlinked, never followed, and O_EXCL creates a new file */
	if (unlinkat(s->dirfd, TMP_NAME, 0) != 0 && errno != ENOENT)
		log_warn("spool: cannot remove %s/%s: %s", s->dir, TMP_NAME, strerror(errno));
	struct fresh w = {.fd = openat(s->dirfd, TMP_NAME,
	                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
	sbuf_init(&w.buf);
	size_t requests = 0, follows = 0;
	if (w.fd >= 0)
		rewrite_live(s, &h, &w, cb, ctx, &requests, &follows);
	enum cg_err out = CG_OK;
	if (w.fd < 0 || w.failed || fdatasync(w.fd) != 0 ||
	    renameat(s->dirfd, TMP_NAME, s->dirfd, SPOOL_NAME) != 0 || fsync(s->dirfd) != 0) {
		out = cg_fail(err, CG_IO, "spool: cannot rewrite %s: %s", s->path, strerror(errno));
	} else {
		close(s->fd);
		s->fd = spool_open_log(s->dirfd);
		s->size = w.written;
		s->retry_above = 0;
		s->live = requests + follows;
		if (s->fd < 0)
			out = cg_fail(err, CG_IO, "spool: cannot reopen %s: %s", s->path,
			              strerror(errno));
	}
	if (w.fd >= 0)
		close(w.fd);
	sbuf_clean_up(&w.buf);
	free(h.done);
	free(h.answered);
	free(h.stat);
	if (cb && requests)
		log_info("spool: %zu request(s) to resume from %s", requests, s->path);
	if (cb && follows)
		log_info("spool: %zu follow(s) to resume from %s", follows, s->path);
	return out;
}

enum cg_err spool_recover(struct spool *s, spool_entry_fn cb, void *ctx, char *err)
{
	return spool_compact(s, cb, ctx, err);
}
