/* Spool records: round trip, torn tails and corruption are detected. */
#include "test_util.h"

#include "spool_format.h"
#include "../fuzz/spool_hostile.h"

static struct spool_entry sample(uint64_t seq)
{
	struct spool_entry e = {
	    .seq = seq,
	    .received_ms = 1795686000000,
	    .deadline_ms = 1795686030000,
	    .qos = 1,
	    .token = {"29fcc73786ce102dd6f95126366aa689", 32},
	    .topic = {"commands/pump-7/open-valve/start", 32},
	    .response_topic = {"replies/x", 9},
	    .correlation = {"\0\1\2", 3},
	    .has_correlation = 1,
	    .payload = {"{\"id\":\"r-42\"}", 13},
	};
	return e;
}

static void add_and_done_round_trip(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct spool_entry in = sample(7);
	spool_encode_add(&b, &in);
	spool_encode_done(&b, 7);
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_ADD);
	assert_int_equal(e.seq, 7);
	assert_true(e.received_ms == in.received_ms && e.deadline_ms == in.deadline_ms);
	assert_int_equal(e.qos, 1);
	assert_memory_equal(e.token.ptr, in.token.ptr, in.token.len);
	assert_memory_equal(e.topic.ptr, in.topic.ptr, in.topic.len);
	assert_memory_equal(e.response_topic.ptr, "replies/x", 9);
	assert_int_equal(e.correlation.len, 3);
	assert_memory_equal(e.correlation.ptr, "\0\1\2", 3);
	assert_memory_equal(e.payload.ptr, in.payload.ptr, in.payload.len);
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_DONE);
	assert_int_equal(e.seq, 7);
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 0);
	sbuf_clean_up(&b);
}

static void every_torn_tail_is_detected(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct spool_entry in = sample(1);
	spool_encode_add(&b, &in);
	size_t first = b.len;
	in.seq = 2;
	spool_encode_add(&b, &in);
	/* cut the second record at every length: the first stays readable */
	for (size_t cut = first + 1; cut < b.len; cut++) {
		size_t pos = 0;
		enum spool_type t;
		struct spool_entry e;
		assert_int_equal(spool_decode((unsigned char *)b.data, cut, &pos, &t, &e), 1);
		assert_int_equal(spool_decode((unsigned char *)b.data, cut, &pos, &t, &e), -1);
		assert_int_equal(pos, first);
	}
	sbuf_clean_up(&b);
}

static void every_flipped_byte_is_detected(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct spool_entry in = sample(3);
	spool_encode_add(&b, &in);
	for (size_t i = 0; i < b.len; i++) {
		b.data[i] ^= 0x20;
		size_t pos = 0;
		enum spool_type t;
		struct spool_entry e;
		assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), -1);
		b.data[i] ^= 0x20;
	}
	sbuf_clean_up(&b);
}

static void crc32_known_value(void **s)
{
	(void)s;
	assert_int_equal(spool_crc32("123456789", 9), 0xcbf43926u);
}

static struct spool_follow follow_sample(uint64_t seq)
{
	struct spool_follow f = {
	    .seq = seq,
	    .started_ms = 1795686000000,
	    .deadline_ms = 1795689600000,
	    .qos = 1,
	    .last_status = 2,
	    .thing = {"pump-7", 6},
	    .command = {"open-valve", 10},
	    .execution_id = {"0b8be5a1-1111-4222-8333-444455556666", 36},
	    .target_arn = {"arn:aws:iot:eu-west-1:123456789012:thing/pump-7", 47},
	    .topic = {"commands/pump-7/open-valve/executions/0b8be5a1", 46},
	    .id_json = {"\"r-42\"", 6},
	    .correlation = {"\0\1", 2},
	    .has_correlation = 1,
	};
	return f;
}

static void follow_and_status_round_trip(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct spool_follow in = follow_sample(9);
	spool_encode_follow(&b, &in);
	spool_encode_status(&b, 9, 6);
	spool_encode_done(&b, 9);
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	assert_int_equal(spool_decode_record((unsigned char *)b.data, b.len, &pos, &t, &e, &f), 1);
	assert_int_equal(t, SPOOL_FOLLOW);
	assert_int_equal(e.seq, 9);
	assert_int_equal(f.seq, 9);
	assert_true(f.started_ms == in.started_ms && f.deadline_ms == in.deadline_ms);
	assert_int_equal(f.qos, 1);
	assert_int_equal(f.last_status, 2);
	assert_int_equal(f.thing.len, 6);
	assert_memory_equal(f.thing.ptr, "pump-7", 6);
	assert_memory_equal(f.command.ptr, "open-valve", 10);
	assert_memory_equal(f.execution_id.ptr, in.execution_id.ptr, 36);
	assert_int_equal(f.target_arn.len, 47);
	assert_memory_equal(f.target_arn.ptr, in.target_arn.ptr, 47);
	assert_memory_equal(f.topic.ptr, in.topic.ptr, in.topic.len);
	assert_memory_equal(f.id_json.ptr, "\"r-42\"", 6);
	assert_true(f.has_correlation);
	assert_int_equal(f.correlation.len, 2);
	assert_memory_equal(f.correlation.ptr, "\0\1", 2);
	assert_int_equal(spool_decode_record((unsigned char *)b.data, b.len, &pos, &t, &e, &f), 1);
	assert_int_equal(t, SPOOL_STATUS);
	assert_int_equal(f.seq, 9);
	assert_int_equal(f.last_status, 6);
	assert_int_equal(spool_decode_record((unsigned char *)b.data, b.len, &pos, &t, &e, &f), 1);
	assert_int_equal(t, SPOOL_DONE);
	assert_int_equal(spool_decode_record((unsigned char *)b.data, b.len, &pos, &t, &e, &f), 0);
	sbuf_clean_up(&b);
}

/* A reader that only knows requests still walks past follow records. */
static void request_reader_skips_follow_records(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct spool_follow f = follow_sample(3);
	f.has_correlation = 0;
	f.correlation.len = 0;
	f.id_json.len = 0;
	spool_encode_follow(&b, &f);
	spool_encode_status(&b, 3, 1);
	struct spool_entry in = sample(4);
	spool_encode_add(&b, &in);
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_FOLLOW);
	assert_int_equal(e.seq, 3);
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_STATUS);
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_ADD);
	assert_int_equal(e.seq, 4);
	sbuf_clean_up(&b);
}

static void torn_follow_record_is_detected(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	struct spool_follow f = follow_sample(1);
	spool_encode_follow(&b, &f);
	for (size_t cut = 1; cut < b.len; cut++) {
		size_t pos = 0;
		enum spool_type t;
		struct spool_entry e;
		struct spool_follow g;
		assert_int_equal(
		    spool_decode_record((unsigned char *)b.data, cut, &pos, &t, &e, &g), -1);
	}
	for (size_t i = 12; i < b.len; i++) {
		b.data[i] ^= 0x10;
		size_t pos = 0;
		enum spool_type t;
		struct spool_entry e;
		assert_int_equal(
		    spool_decode_record((unsigned char *)b.data, b.len, &pos, &t, &e, NULL), -1);
		b.data[i] ^= 0x10;
	}
	sbuf_clean_up(&b);
}

static void answered_record_round_trip(void **s)
{
	(void)s;
	struct sbuf b;
	sbuf_init(&b);
	spool_encode_answered(&b, 9);
	spool_encode_done(&b, 9);
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_ANSWERED);
	assert_int_equal(e.seq, 9);
	assert_int_equal(spool_decode((unsigned char *)b.data, b.len, &pos, &t, &e), 1);
	assert_int_equal(t, SPOOL_DONE);
	for (size_t cut = 1; cut < 12 + 9; cut++) { /* a torn ANSWERED ends the file */
		pos = 0;
		assert_int_equal(spool_decode((unsigned char *)b.data, cut, &pos, &t, &e), -1);
	}
	sbuf_clean_up(&b);
}

/* Issue 18 item 9: lengths near 4 GiB are refused on every word size (the
 * 32-bit build runs this too: scripts/cross.sh armhf, scripts/fuzz.sh). */
static void length_that_wraps_a_32_bit_size_is_refused(void **s)
{
	(void)s;
	unsigned char buf[SPOOL_HOSTILE_LEN];
	size_t n = spool_hostile_record(buf), pos = 0;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	assert_int_equal(spool_decode_record(buf, n, &pos, &t, &e, &f), -1);
	assert_int_equal(pos, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(add_and_done_round_trip),
	    TEST(every_torn_tail_is_detected),
	    TEST(every_flipped_byte_is_detected),
	    TEST(crc32_known_value),
	    TEST(follow_and_status_round_trip),
	    TEST(request_reader_skips_follow_records),
	    TEST(torn_follow_record_is_detected),
	    TEST(answered_record_round_trip),
	    TEST(length_that_wraps_a_32_bit_size_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
