/* The spool's file edge (src/spool.c) on a temporary directory: bounded
 * while running, nothing written through a symlink, a directory others can
 * write refused (issue 18 items 6 and 8). */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

static char dir[64];

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/cmdgate-spool-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static char payload[8192];

static struct spool_entry entry(void)
{
	struct spool_entry e = {.qos = 1,
	                        .token = {"tok", 3},
	                        .topic = {"t/x/start", 9},
	                        .payload = {payload, sizeof(payload)},
	                        .deadline_ms = 1}; /* an expired deadline is no concern here */
	return e;
}

static off_t file_size(const char *name)
{
	char p[128];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

struct seen {
	size_t n;
	uint64_t seq;
	size_t payload_len;
};

static void count(const struct spool_entry *e, void *ctx)
{
	struct seen *s = ctx;
	s->n++;
	s->seq = e->seq;
	s->payload_len = e->payload.len;
}

static void one_live_request_keeps_the_file_small(void **st)
{
	(void)st;
	char err[ERR_LEN];
	memset(payload, 'p', sizeof(payload));
	struct spool *s = spool_open(dir, err);
	assert_non_null(s);
	struct seen seen = {0};
	assert_int_equal(spool_recover(s, count, &seen, err), CG_OK);
	struct spool_entry live = entry();
	spool_add(s, &live);
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	off_t peak = 0;
	for (int i = 0; i < 2000; i++) {
		struct spool_entry e = entry();
		spool_add(s, &e);
		assert_int_equal(spool_flush(s, 1, err), CG_OK);
		spool_done(s, e.seq);
		assert_int_equal(spool_flush(s, 1, err), CG_OK);
		off_t n = file_size("spool.log");
		if (n > peak)
			peak = n;
	}
	printf("  2000 x 8 KB requests, one live: spool.log at most %lld bytes, now %lld\n",
	       (long long)peak, (long long)file_size("spool.log"));
	/* twice the live size plus 1 MiB of slack, plus one batch */
	assert_true(peak < 2 * 8300 + (1 << 20) + 2 * 8300);
	assert_int_equal(spool_live(s), 1);
	spool_close(s);
	s = spool_open(dir, err);
	assert_non_null(s);
	assert_int_equal(spool_recover(s, count, &seen, err), CG_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.seq, live.seq);
	assert_int_equal(seen.payload_len, sizeof(payload));
	spool_close(s);
}

static void the_file_shrinks_when_a_burst_is_answered(void **st)
{
	(void)st;
	char err[ERR_LEN];
	struct spool *s = spool_open(dir, err);
	assert_non_null(s);
	struct seen seen = {0};
	assert_int_equal(spool_recover(s, count, &seen, err), CG_OK);
	uint64_t seqs[1000];
	for (int i = 0; i < 1000; i++) { /* 8 MB live at once */
		struct spool_entry e = entry();
		spool_add(s, &e);
		seqs[i] = e.seq;
	}
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	for (int i = 1; i < 1000; i++) /* all answered but the first */
		spool_done(s, seqs[i]);
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	assert_true(file_size("spool.log") < 2 * 8300 + (1 << 20));
	assert_int_equal(spool_live(s), 1);
	spool_close(s);
}

static void planted_symlinks_are_not_followed(void **st)
{
	(void)st;
	char victim[128], link[128], err[ERR_LEN];
	snprintf(victim, sizeof(victim), "%s.victim", dir);
	FILE *f = fopen(victim, "w");
	fputs("precious\n", f);
	fclose(f);
	snprintf(link, sizeof(link), "%s/spool.log.new", dir);
	assert_int_equal(symlink(victim, link), 0);
	struct spool *s = spool_open(dir, err);
	assert_non_null(s);
	struct seen seen = {0};
	assert_int_equal(spool_recover(s, count, &seen, err), CG_OK);
	spool_close(s);
	struct stat vs;
	assert_int_equal(stat(victim, &vs), 0);
	assert_int_equal(vs.st_size, 9); /* not truncated, not written */
	/* the log itself as a symlink: refused, not followed */
	snprintf(link, sizeof(link), "%s/spool.log", dir);
	unlink(link);
	assert_int_equal(symlink(victim, link), 0);
	assert_null(spool_open(dir, err));
	assert_int_equal(stat(victim, &vs), 0);
	assert_int_equal(vs.st_size, 9);
	unlink(victim);
}

static void a_directory_others_can_write_is_refused(void **st)
{
	(void)st;
	char err[ERR_LEN] = "";
	assert_int_equal(chmod(dir, 0777), 0);
	assert_null(spool_open(dir, err));
	assert_non_null(strstr(err, "can be written by others"));
	assert_int_equal(chmod(dir, 0730), 0);
	assert_null(spool_open(dir, err));
	assert_int_equal(chmod(dir, 0700), 0);
	struct spool *s = spool_open(dir, err);
	assert_non_null(s);
	spool_close(s);
}

/* Entries handed back at start, and which of them are answered. */
struct resumed {
	size_t n, answered;
};

static void note_answered(const struct spool_entry *e, void *ctx)
{
	struct resumed *r = ctx;
	r->n++;
	r->answered += e->answered != 0;
}

static struct resumed reopen(struct spool **s)
{
	char err[ERR_LEN];
	spool_close(*s);
	*s = spool_open(dir, err);
	assert_non_null(*s);
	struct resumed r = {0};
	assert_int_equal(spool_recover(*s, note_answered, &r, err), CG_OK);
	return r;
}

/* SPEC 5: a request settling its call stays in the spool after its reply;
 * once the reply is delivered it comes back only to settle (answered), also
 * through a compaction; settled, it is gone. */
static void a_settling_entry_outlives_its_reply_until_settled(void **st)
{
	(void)st;
	char err[ERR_LEN];
	memset(payload, 'p', sizeof(payload));
	struct spool *s = spool_open(dir, err);
	assert_non_null(s);
	struct resumed r = {0};
	assert_int_equal(spool_recover(s, note_answered, &r, err), CG_OK);
	struct spool_entry a = entry();
	spool_add(s, &a);
	spool_settle_hold(s, a.seq, 0);
	spool_done(s, a.seq); /* the reply is delivered: ANSWERED, not DONE */
	assert_int_equal(spool_live(s), 1);
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	r = reopen(&s);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.answered, 1);
	r = reopen(&s); /* the compaction at start kept the mark */
	assert_int_equal(r.answered, 1);
	spool_settle_hold(s, a.seq, 1); /* resumed to settle */
	spool_settle_end(s, a.seq);
	assert_int_equal(spool_live(s), 0);
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	r = reopen(&s);
	assert_int_equal(r.n, 0);
	spool_close(s);
}

static void settled_before_its_reply_is_delivered_the_reply_ends_it(void **st)
{
	(void)st;
	char err[ERR_LEN];
	struct spool *s = spool_open(dir, err);
	assert_non_null(s);
	struct resumed r = {0};
	assert_int_equal(spool_recover(s, note_answered, &r, err), CG_OK);
	struct spool_entry a = entry();
	spool_add(s, &a);
	spool_settle_hold(s, a.seq, 0);
	spool_settle_end(s, a.seq); /* settled; the reply still waits */
	assert_int_equal(spool_live(s), 1);
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	r = reopen(&s); /* a crash now: resumed as any request, to be answered */
	assert_int_equal(r.n, 1);
	assert_int_equal(r.answered, 0);
	spool_done(s, a.seq); /* the reply delivered after all */
	assert_int_equal(spool_live(s), 0);
	assert_int_equal(spool_flush(s, 1, err), CG_OK);
	r = reopen(&s);
	assert_int_equal(r.n, 0);
	spool_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(one_live_request_keeps_the_file_small, setup, teardown),
	    cmocka_unit_test_setup_teardown(the_file_shrinks_when_a_burst_is_answered, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(planted_symlinks_are_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_directory_others_can_write_is_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_settling_entry_outlives_its_reply_until_settled,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(settled_before_its_reply_is_delivered_the_reply_ends_it,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
