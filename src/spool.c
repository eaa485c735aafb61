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
};

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
	size_t cap = 64, ndone = 0, pos = 0, end;
	uint64_t *done = rt_malloc(cap * sizeof(*done));
	enum spool_type t;
	struct spool_entry e;
	int rc;
	while ((rc = spool_decode((unsigned char *)data.data, data.len, &pos, &t, &e)) == 1) {
		if (e.seq >= s->next_seq)
			s->next_seq = e.seq + 1;
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
	/* pass 2: live entries, handed back and rewritten */
	struct sbuf fresh;
	sbuf_init(&fresh);
	s->live = 0;
	for (pos = 0;
	     pos < end && spool_decode((unsigned char *)data.data, end, &pos, &t, &e) == 1;) {
		if (t != SPOOL_ADD || bsearch(&e.seq, done, ndone, sizeof(*done), cmp_u64))
			continue;
		spool_encode_add(&fresh, &e);
		s->live++;
		cb(&e, ctx);
	}
	free(done);
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
	if (s->live)
		log_info("spool: %zu request(s) to resume from %s", s->live, s->path);
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

void spool_done(struct spool *s, uint64_t seq)
{
	spool_encode_done(&s->batch, seq);
	if (s->live)
		s->live--;
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
