/*
 * spool_priv: what spool.c (the running log) and spool_compact.c (reading
 * the file back, rewriting it with the live records) share. Not for other
 * modules: they use spool.h.
 */
#ifndef CMDGATE_SPOOL_PRIV_H
#define CMDGATE_SPOOL_PRIV_H

#include <sys/types.h>

#include "err.h"
#include "sbuf.h"
#include "spool_format.h"

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

/* A live record of seq, size bytes in the file. */
void spool_live_note(struct spool *s, uint64_t seq, size_t size);
/* Order of live records by seq (qsort, bsearch). */
int spool_cmp_rec(const void *a, const void *b);
/* No live record (the file is being rewritten from scratch). */
void spool_live_reset(struct spool *s);
/* The spool file in dirfd, opened for appending (never through a symlink). */
int spool_open_log(int dirfd);
/* Rewrite the file with its live records only, handing each to cb when cb
 * is set (recovery at start); the running gateway calls it with cb NULL. */
enum cg_err spool_compact(struct spool *s, spool_entry_fn cb, void *ctx, char *err);

#endif
