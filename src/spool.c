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
#include "spool_priv.h"

void spool_live_note(struct spool *s, uint64_t seq, size_t size)
{
	if (s->nrecs == s->cap_recs) {
		s->cap_recs = s->cap_recs ? 2 * s->cap_recs : 64;
		s->recs = rt_realloc(s->recs, s->cap_recs * sizeof(*s->recs));
	}
	s->recs[s->nrecs].seq = seq;
	s->recs[s->nrecs++].size = size;
	s->live_bytes += size;
}

int spool_cmp_rec(const void *a, const void *b)
{
	const struct live_rec *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void live_drop(struct spool *s, uint64_t seq)
{
	struct live_rec key = {seq, 0};
	struct live_rec *r =
	    s->nrecs ? bsearch(&key, s->recs, s->nrecs, sizeof(*s->recs), spool_cmp_rec) : NULL;
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

void spool_live_reset(struct spool *s)
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
	spool_live_note(s, f->seq, s->batch.len - before);
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

int spool_open_log(int dirfd)
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
	s->fd = spool_open_log(dirfd);
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
void spool_add(struct spool *s, struct spool_entry *e)
{
	e->seq = s->next_seq++;
	size_t before = s->batch.len;
	spool_encode_add(&s->batch, e);
	spool_live_note(s, e->seq, s->batch.len - before);
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
			spool_live_reset(s);
		}
		return CG_OK;
	}
	off_t before = s->size;
	enum cg_err rc = spool_compact(s, NULL, NULL, err);
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
