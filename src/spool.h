/*
 * spool: requests made durable on disk (gateway.spool_dir), the file edge
 * of the spool format.
 *
 * One append-only file, spool.log. The engine adds a record per accepted
 * request and one per answered request; records are batched and written
 * with one write() and one fdatasync() per engine loop turn, so many
 * concurrent requests share a sync. At start the file is read (stopping at
 * a torn or corrupt tail, which is logged), the entries without a DONE are
 * handed back, and the file is rewritten with just those.
 */
#ifndef CMDGATE_SPOOL_H
#define CMDGATE_SPOOL_H

#include "err.h"
#include "spool_format.h"

struct spool;

/* Open (creating the directory and file if needed). */
struct spool *spool_open(const char *dir, char *err);
void spool_close(struct spool *s);
/* The spool a configuration asks for: dir, else "<state_directory>/spool"
 * under systemd (the first of $STATE_DIRECTORY's paths), else none (NULL,
 * *failed 0). On an error NULL with *failed 1 and err set. */
struct spool *spool_open_configured(const char *dir, const char *state_directory, char *err,
                                    int *failed);

/* Read every live entry (in order), call cb for each, then compact the file.
 * The entry's views are valid during the call only (spool_entry_fn,
 * spool_format.h). */
enum cg_err spool_recover(struct spool *s, spool_entry_fn cb, void *ctx, char *err);

/* Follows (SPEC section 8): set before spool_recover(), cb receives every
 * live FOLLOW record with the last STATUS recorded for it folded into
 * last_status. Without a handler live follows are kept in the file as they
 * are. A follow ends with spool_done(seq), like a request. */
void spool_on_follow(struct spool *s, spool_follow_fn cb, void *ctx);
/* Queue a FOLLOW (f->seq is assigned; made durable at the next sync flush,
 * like an ADD) or a STATUS record. */
void spool_add_follow(struct spool *s, struct spool_follow *f);
void spool_follow_status(struct spool *s, uint64_t seq, uint8_t status);

/* Queue an ADD (e->seq is assigned) or a DONE record for the next flush. */
void spool_add(struct spool *s, struct spool_entry *e);
void spool_done(struct spool *s, uint64_t seq);
/* Settling (SPEC section 5): the entry seq stays live after its reply until
 * its call's fate is known. While held, spool_done(seq) (the reply is
 * delivered) writes an ANSWERED record instead of a DONE, so a restart
 * resumes the entry only to settle its call (spool_entry.answered) and
 * answers it no second time. spool_settle_end writes the DONE, or leaves it
 * to the reply's spool_done when the reply is not delivered yet. answered:
 * the reply was delivered before (a resumed entry). */
void spool_settle_hold(struct spool *s, uint64_t seq, int answered);
void spool_settle_end(struct spool *s, uint64_t seq);
/* Write what is queued; with sync, make it durable (fdatasync). */
enum cg_err spool_flush(struct spool *s, int sync, char *err);
/* Entries added and not yet done. */
size_t spool_live(const struct spool *s);

#endif
