/* Spool records: round trip, torn tails and corruption are detected. */
#include "test_util.h"

#include "spool_format.h"

static struct spool_entry sample(uint64_t seq)
{
	struct spool_entry e = {
	    .seq = seq,
	    .received_ms = 1795686000000,
	    .deadline_ms = 1795686030000,
	    .qos = 1,
	    .token = "29fcc73786ce102dd6f95126366aa689",
	    .token_len = 32,
	    .topic = "commands/pump-7/open-valve/start",
	    .topic_len = 32,
	    .response_topic = "replies/x",
	    .response_topic_len = 9,
	    .correlation = "\0\1\2",
	    .correlation_len = 3,
	    .has_correlation = 1,
	    .payload = "{\"id\":\"r-42\"}",
	    .payload_len = 13,
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
	assert_memory_equal(e.token, in.token, in.token_len);
	assert_memory_equal(e.topic, in.topic, in.topic_len);
	assert_memory_equal(e.response_topic, "replies/x", 9);
	assert_int_equal(e.correlation_len, 3);
	assert_memory_equal(e.correlation, "\0\1\2", 3);
	assert_memory_equal(e.payload, in.payload, in.payload_len);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(add_and_done_round_trip),
	    TEST(every_torn_tail_is_detected),
	    TEST(every_flipped_byte_is_detected),
	    TEST(crc32_known_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
