/*
 * spool32: the spool decoder on a 32-bit size_t (gcc -m32), where length
 * checks written as "at + len > n" wrap. Built and run by scripts/fuzz.sh
 * (needs gcc-multilib); scripts/cross.sh armhf runs the same crafted record
 * through the unit tests under qemu-arm.
 *
 *   spool32 SECONDS CORPUS_DIR...
 *
 * 1. the crafted record of spool_hostile.h is refused;
 * 2. every seed decodes with every view inside its buffer;
 * 3. for SECONDS, seeds mutated in their bodies (lengths included) and
 *    re-sealed with a valid CRC -- random bytes would never pass the CRC and
 *    never reach the field parser -- decode with every view inside.
 * Only spool_format.c is linked; the few sbuf calls its encoders make are
 * provided here, so no 32-bit OpenSSL or cmocka is needed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spool_format.h"
#include "spool_hostile.h"

void sbuf_append(struct sbuf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = 2 * (b->len + n + 1);
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			abort();
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void sbuf_putc(struct sbuf *b, char c)
{
	sbuf_append(b, &c, 1);
}

static int inside(const unsigned char *buf, size_t n, const void *p, size_t len)
{
	if (!len)
		return 1;
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)buf;
	return a >= lo && a - lo <= n && len <= n - (a - lo);
}

/* Decode all of buf; 0 if every record's views are inside it. */
static int check(const unsigned char *buf, size_t n)
{
	size_t pos = 0;
	enum spool_type t;
	struct spool_entry e;
	struct spool_follow f;
	while (spool_decode_record(buf, n, &pos, &t, &e, &f) == 1) {
		if (pos > n)
			return -1;
		int ok =
		    t != SPOOL_ADD || (inside(buf, n, e.token.ptr, e.token.len) &&
		                       inside(buf, n, e.topic.ptr, e.topic.len) &&
		                       inside(buf, n, e.response_topic.ptr, e.response_topic.len) &&
		                       inside(buf, n, e.correlation.ptr, e.correlation.len) &&
		                       inside(buf, n, e.payload.ptr, e.payload.len));
		if (t == SPOOL_FOLLOW)
			ok = inside(buf, n, f.thing.ptr, f.thing.len) &&
			     inside(buf, n, f.command.ptr, f.command.len) &&
			     inside(buf, n, f.execution_id.ptr, f.execution_id.len) &&
			     inside(buf, n, f.target_arn.ptr, f.target_arn.len) &&
			     inside(buf, n, f.topic.ptr, f.topic.len) &&
			     inside(buf, n, f.id_json.ptr, f.id_json.len) &&
			     inside(buf, n, f.correlation.ptr, f.correlation.len);
		if (!ok)
			return -1;
	}
	return 0;
}

/* Flip up to 4 body bytes of every record (often to 0xFF or 0x00, the
 * values that make lengths wrap), then re-seal each record's CRC. */
static void mutate(unsigned char *buf, size_t n, unsigned *seed)
{
	size_t pos = 0;
	while (n - pos >= 12 && memcmp(buf + pos, "CGS1", 4) == 0) {
		uint32_t len = (uint32_t)buf[pos + 4] | (uint32_t)buf[pos + 5] << 8 |
		               (uint32_t)buf[pos + 6] << 16 | (uint32_t)buf[pos + 7] << 24;
		if (len == 0 || len > n - pos - 12)
			return;
		unsigned char *b = buf + pos + 12;
		for (int k = rand_r(seed) % 5; k > 0; k--) {
			int r = rand_r(seed);
			b[(size_t)r % len] = (unsigned char)(r & 1 ? 0xFF : r & 2 ? 0 : r >> 8);
		}
		uint32_t crc = spool_crc32(b, len);
		for (int i = 0; i < 4; i++)
			buf[pos + 8 + i] = (unsigned char)(crc >> (8 * i));
		pos += 12 + len;
	}
}

static int load(const char *path, unsigned char **out, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	*out = malloc(1 << 20);
	*n = fread(*out, 1, 1 << 20, f);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (sizeof(size_t) != 4)
		fprintf(stderr, "spool32: note: size_t is %zu bytes, not a 32-bit build\n",
		        sizeof(size_t));
	unsigned char hostile[SPOOL_HOSTILE_LEN];
	size_t hn = spool_hostile_record(hostile), pos = 0;
	enum spool_type t;
	struct spool_entry e;
	if (spool_decode_record(hostile, hn, &pos, &t, &e, NULL) != -1) {
		fprintf(stderr,
		        "spool32: FAIL: the crafted record was accepted (token %zu bytes)\n",
		        e.token.len);
		return 1;
	}
	long secs = argc > 1 ? atol(argv[1]) : 10;
	unsigned char *seeds[256];
	size_t lens[256], nseeds = 0;
	for (int i = 2; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		while (d && (de = readdir(d)) && nseeds < 256) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
			if (de->d_name[0] != '.' && load(p, &seeds[nseeds], &lens[nseeds]) == 0)
				nseeds++;
		}
		if (d)
			closedir(d);
	}
	for (size_t i = 0; i < nseeds; i++)
		if (check(seeds[i], lens[i]) != 0) {
			fprintf(stderr, "spool32: FAIL: seed %zu decodes outside its buffer\n", i);
			return 1; /* NOLINT: seeds end with the process */
		}
	unsigned seed = (unsigned)time(NULL);
	unsigned long runs = 0;
	unsigned char *work = malloc(1 << 20);
	for (time_t end = time(NULL) + secs; nseeds && time(NULL) < end;) {
		for (int k = 0; k < 1000; k++, runs++) {
			size_t i = (size_t)rand_r(&seed) % nseeds;
			memcpy(work, seeds[i], lens[i]);
			mutate(work, lens[i], &seed);
			if (check(work, lens[i]) != 0) {
				fprintf(stderr,
				        "spool32: FAIL: a mutated seed decodes outside its buffer "
				        "(seed %u)\n",
				        seed);
				return 1;
			}
		}
	}
	free(work);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i]);
	printf("spool32: %zu-bit size_t, crafted record refused, %zu seeds, %lu mutated "
	       "inputs in %lds\n",
	       8 * sizeof(size_t), nseeds, runs, secs);
	return 0;
}
