/*
 * spool: file handling. The file is append-only between compactions. A
 * compaction streams the file twice (DONE and STATUS records first, then the
 * live ADD and FOLLOW records, rewritten to spool.log.new and renamed over
 * spool.log), so its memory follows the live records, never the file's
 * history. It runs at start (handing each live record back) and while
 * running whenever the file has grown past twice the live records' size
 * plus COMPACT_SLACK (the size of each live record is kept, by seq): the
 * file stays within a small multiple of the live requests' size, and each
 * compaction follows at least COMPACT_SLACK bytes of appends. When nothing
 * is live the file is simply truncated.
 *
 * Files are reached only through a descriptor of the spool directory
 * (openat, O_NOFOLLOW, the temporary file O_EXCL after unlinking whatever
 * is planted there), and a directory others can write is refused: nobody
 * else can make the gateway write through a symlink.
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

#define COMPACT_SLACK (1u << 20) /* bytes a file may grow past twice its live size */
#define READ_CHUNK    65536u
#define SPOOL_NAME    "spool.log"
#define TMP_NAME      "spool.log.new"

struct spool {
	char *path, *dir;
	int dirfd, fd;
	struct sbuf batch;
	int batch_adds;
	uint64_t next_seq;
	size_t live;
	off_t size;
	off_t retry_above; /* after a failed compaction: not again below this size */
	/* live records by seq (ascending; size 0 once done) and their total */
	struct live_rec {
		uint64_t seq;
		size_t size;
	} * recs;
	size_t nrecs, cap_recs, ndropped, live_bytes;
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

static void live_note(struct spool *s, uint64_t seq, size_t size)
{
	if (s->nrecs == s->cap_recs) {
		s->cap_recs = s->cap_recs ? 2 * s->cap_recs : 64;
		s->recs = rt_realloc(s->recs, s->cap_recs * sizeof(*s->recs));
	}
	s->recs[s->nrecs].seq = seq;
	s->recs[s->nrecs++].size = size;
	s->live_bytes += size;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct live_rec *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void live_drop(struct spool *s, uint64_t seq)
{
	struct live_rec key = {seq, 0};
	struct live_rec *r =
	    s->nrecs ? bsearch(&key, s->recs, s->nrecs, sizeof(*s->recs), cmp_rec) : NULL;
	if (!r || !r->size)
		return;
	s->live_bytes -= r->size;
	r->size = 0;
	if (++s->ndropped > s->nrecs / 2) { /* squeeze out the done ones */
		size_t k = 0;
		for (size_t i = 0; i < s->nrecs; i++)
			if (s->recs[i].size)
				s->recs[k++] = s->recs[i];
		s->nrecs = k;
		s->ndropped = 0;
	}
}

static void live_reset(struct spool *s)
{
	s->nrecs = s->ndropped = s->live_bytes = 0;
}

void spool_on_follow(struct spool *s, spool_follow_fn cb, void *ctx)
{
	s->follow_cb = cb;
	s->follow_ctx = ctx;
}

void spool_add_follow(struct spool *s, struct spool_follow *f)
{
	f->seq = s->next_seq++;
	size_t before = s->batch.len;
	spool_encode_follow(&s->batch, f);
	live_note(s, f->seq, s->batch.len - before);
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

/* The directory, opened: refused when others can write it (they could
 * plant a symlink or swap a file between our checks). */
static int open_dir(const char *dir, char *err)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		cg_fail(err, CG_IO, "spool: cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		cg_fail(err, CG_IO, "spool: cannot open %s: %s", dir, strerror(errno));
	} else if ((st.st_mode & (S_IWGRP | S_IWOTH)) ||
	           (st.st_uid != geteuid() && st.st_uid != 0)) {
		cg_fail(err, CG_CONFIG,
		        "spool: %s can be written by others (mode %04o, owner %u): refused; "
		        "make it owned by this user with mode 0700 (chmod go-w)",
		        dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	} else {
		return fd;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

static int open_log(int dirfd)
{
	return openat(dirfd, SPOOL_NAME, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
	              0600);
}

struct spool *spool_open(const char *dir, char *err)
{
	int dirfd = open_dir(dir, err);
	if (dirfd < 0)
		return NULL;
	struct spool *s = rt_calloc(1, sizeof(*s));
	s->dirfd = dirfd;
	s->dir = rt_strdup(dir);
	s->path = join(dir, SPOOL_NAME);
	sbuf_init(&s->batch);
	s->next_seq = 1;
	s->fd = open_log(dirfd);
	if (s->fd < 0) {
		cg_fail(err, CG_IO, "spool: cannot open %s: %s", s->path, strerror(errno));
		spool_close(s);
		return NULL;
	}
	return s;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	sbuf_clean_up(&s->batch);
	free(s->recs);
	free(s->settling);
	free(s->path);
	free(s->dir);
	free(s);
}

/* A forward reader of a spool file: holds one record (and a read-ahead
 * chunk) at a time, whatever the file's size. */
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
	live_reset(s);
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
			live_note(s, f.seq, w->buf.len - before);
			(*follows)++;
			if (cb && s->follow_cb)
				s->follow_cb(&f, s->follow_ctx);
		} else {
			spool_encode_add(&w->buf, &e);
			e.answered = h->nanswered && bsearch(&e.seq, h->answered, h->nanswered,
			                                     sizeof(*h->answered), cmp_u64);
			if (e.answered) /* kept only to settle its call */
				spool_encode_answered(&w->buf, e.seq);
			live_note(s, e.seq, w->buf.len - before);
			(*requests)++;
			if (cb)
				cb(&e, ctx);
		}
		fresh_write(w, 0);
	}
	sbuf_clean_up(&r.buf);
	fresh_write(w, 1);
	if (s->nrecs) /* file order is seq order; sorted in case an old file was not */
		qsort(s->recs, s->nrecs, sizeof(*s->recs), cmp_rec);
}

/* Rewrite the file with its live records only (cb: hand them back too). */
static enum cg_err compact(struct spool *s, spool_entry_fn cb, void *ctx, char *err)
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
		s->fd = open_log(s->dirfd);
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
	return compact(s, cb, ctx, err);
}

void spool_add(struct spool *s, struct spool_entry *e)
{
	e->seq = s->next_seq++;
	size_t before = s->batch.len;
	spool_encode_add(&s->batch, e);
	live_note(s, e->seq, s->batch.len - before);
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

static void write_done(struct spool *s, uint64_t seq)
{
	spool_encode_done(&s->batch, seq);
	live_drop(s, seq);
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
	*x = s->settling[--s->n_settling];
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
	if (s->batch_adds || s->size <= 2 * (off_t)s->live_bytes + (off_t)COMPACT_SLACK ||
	    s->size <= s->retry_above)
		return CG_OK;
	if (s->live == 0) {
		if (ftruncate(s->fd, 0) == 0) {
			s->size = 0;
			live_reset(s);
		}
		return CG_OK;
	}
	off_t before = s->size;
	enum cg_err rc = compact(s, NULL, NULL, err);
	if (rc != CG_OK)
		s->retry_above = s->size + (off_t)COMPACT_SLACK; /* the file is intact */
	else
		log_debug("spool: compacted %s from %lld to %lld bytes (%zu live)", s->path,
		          (long long)before, (long long)s->size, s->live);
	return rc;
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
