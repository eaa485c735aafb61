/* spool_format: encode and decode spool records; CRC-32 (IEEE 802.3). */
#include "spool_format.h"

#include <string.h>

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t spool_crc32(const void *data, size_t n)
{
	if (!crc_table[1])
		crc_init();
	const unsigned char *p = data;
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void put_u32(struct sbuf *b, uint32_t v)
{
	unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 24)};
	sbuf_append(b, x, 4);
}

static void put_u64(struct sbuf *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}

static void put_bytes(struct sbuf *b, struct view v)
{
	put_u32(b, (uint32_t)v.len);
	if (v.len)
		sbuf_append(b, v.ptr, v.len);
}

/* Wrap the body that starts at offset body_at of b into a record. */
static void seal(struct sbuf *b, size_t start)
{
	size_t body = start + 12;
	size_t len = b->len - body;
	uint32_t crc = spool_crc32(b->data + body, len);
	unsigned char *h = (unsigned char *)b->data + start;
	memcpy(h, "CGS1", 4);
	for (int i = 0; i < 4; i++) {
		h[4 + i] = (unsigned char)(len >> (8 * i));
		h[8 + i] = (unsigned char)(crc >> (8 * i));
	}
}

void spool_encode_add(struct sbuf *out, const struct spool_entry *e)
{
	size_t start = out->len;
	sbuf_append(out, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
	sbuf_putc(out, SPOOL_ADD);
	put_u64(out, e->seq);
	put_u64(out, (uint64_t)e->received_ms);
	put_u64(out, (uint64_t)e->deadline_ms);
	sbuf_putc(out, (char)e->qos);
	put_bytes(out, e->token);
	put_bytes(out, e->topic);
	put_bytes(out, e->response_topic);
	sbuf_putc(out, (char)(e->has_correlation ? 1 : 0));
	put_bytes(out, e->correlation);
	put_bytes(out, e->payload);
	seal(out, start);
}

static void encode_seq_only(struct sbuf *out, enum spool_type type, uint64_t seq)
{
	size_t start = out->len;
	sbuf_append(out, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
	sbuf_putc(out, (char)type);
	put_u64(out, seq);
	seal(out, start);
}

void spool_encode_done(struct sbuf *out, uint64_t seq)
{
	encode_seq_only(out, SPOOL_DONE, seq);
}

void spool_encode_answered(struct sbuf *out, uint64_t seq)
{
	encode_seq_only(out, SPOOL_ANSWERED, seq);
}

void spool_encode_follow(struct sbuf *out, const struct spool_follow *f)
{
	size_t start = out->len;
	sbuf_append(out, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
	sbuf_putc(out, SPOOL_FOLLOW);
	put_u64(out, f->seq);
	put_u64(out, (uint64_t)f->started_ms);
	put_u64(out, (uint64_t)f->deadline_ms);
	sbuf_putc(out, (char)f->qos);
	sbuf_putc(out, (char)f->last_status);
	put_bytes(out, f->thing);
	put_bytes(out, f->command);
	put_bytes(out, f->execution_id);
	put_bytes(out, f->target_arn);
	put_bytes(out, f->topic);
	put_bytes(out, f->id_json);
	sbuf_putc(out, (char)(f->has_correlation ? 1 : 0));
	put_bytes(out, f->correlation);
	seal(out, start);
}

void spool_encode_status(struct sbuf *out, uint64_t seq, uint8_t status)
{
	size_t start = out->len;
	sbuf_append(out, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
	sbuf_putc(out, SPOOL_STATUS);
	put_u64(out, seq);
	sbuf_putc(out, (char)status);
	seal(out, start);
}

struct reader {
	const unsigned char *p;
	size_t n, at;
	int bad;
};

/* Bounds are checked as "wanted > what is left", never as "at + wanted > n":
 * on a 32-bit size_t a crafted length of nearly 4 GiB wraps the sum. */
static uint64_t get(struct reader *r, int bytes)
{
	if ((size_t)bytes > r->n - r->at) {
		r->bad = 1;
		return 0;
	}
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[r->at + (size_t)i] << (8 * i);
	r->at += (size_t)bytes;
	return v;
}

static struct view get_bytes(struct reader *r)
{
	size_t len = (size_t)get(r, 4);
	if (r->bad || len > r->n - r->at) {
		r->bad = 1;
		return view_of(NULL, 0);
	}
	struct view v = view_of(r->p + r->at, len);
	r->at += len;
	return v;
}

static void decode_follow(struct reader *r, enum spool_type type, struct spool_follow *f)
{
	if (type == SPOOL_STATUS) {
		f->last_status = (uint8_t)get(r, 1);
		return;
	}
	f->started_ms = (int64_t)get(r, 8);
	f->deadline_ms = (int64_t)get(r, 8);
	f->qos = (uint8_t)get(r, 1);
	f->last_status = (uint8_t)get(r, 1);
	f->thing = get_bytes(r);
	f->command = get_bytes(r);
	f->execution_id = get_bytes(r);
	f->target_arn = get_bytes(r);
	f->topic = get_bytes(r);
	f->id_json = get_bytes(r);
	f->has_correlation = (int)get(r, 1);
	f->correlation = get_bytes(r);
}

int spool_decode(const unsigned char *buf, size_t n, size_t *pos, enum spool_type *type,
                 struct spool_entry *e)
{
	return spool_decode_record(buf, n, pos, type, e, NULL);
}

int spool_decode_record(const unsigned char *buf, size_t n, size_t *pos, enum spool_type *type,
                        struct spool_entry *e, struct spool_follow *f)
{
	struct spool_follow scratch;
	if (*pos == n)
		return 0;
	if (n - *pos < 12 || memcmp(buf + *pos, "CGS1", 4) != 0)
		return -1;
	struct reader h = {buf + *pos + 4, 8, 0, 0};
	size_t len = (size_t)get(&h, 4);
	uint32_t crc = (uint32_t)get(&h, 4);
	if (len < 1 || len > n - *pos - 12 || spool_crc32(buf + *pos + 12, len) != crc)
		return -1;
	struct reader r = {buf + *pos + 12, len, 0, 0};
	memset(e, 0, sizeof(*e));
	*type = (enum spool_type)get(&r, 1);
	e->seq = get(&r, 8);
	if (*type == SPOOL_ADD) {
		e->received_ms = (int64_t)get(&r, 8);
		e->deadline_ms = (int64_t)get(&r, 8);
		e->qos = (uint8_t)get(&r, 1);
		e->token = get_bytes(&r);
		e->topic = get_bytes(&r);
		e->response_topic = get_bytes(&r);
		e->has_correlation = (int)get(&r, 1);
		e->correlation = get_bytes(&r);
		e->payload = get_bytes(&r);
	} else if (*type == SPOOL_FOLLOW || *type == SPOOL_STATUS) {
		if (!f)
			f = &scratch;
		memset(f, 0, sizeof(*f));
		f->seq = e->seq;
		decode_follow(&r, *type, f);
	} else if (*type != SPOOL_DONE && *type != SPOOL_ANSWERED) {
		return -1;
	}
	if (r.bad || r.at != len)
		return -1;
	*pos += 12 + len;
	return 1;
}
