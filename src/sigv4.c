/*
 * sigv4: AWS Signature Version 4 on OpenSSL.
 *
 * Canonicalisation follows the published algorithm for services other than
 * S3: the path is normalised (empty and "." segments dropped, ".." resolved)
 * and each segment URI-encoded; query parameters are decoded, re-encoded and
 * sorted by name then value; header names are lowercased, values trimmed with
 * inner runs of spaces collapsed, repeated names joined with ',' in order.
 * Everything secret (the key chain) lives in local buffers that are cleansed
 * before return.
 */
#include "sigv4.h"
#include "runtime.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sigv4_format_date(time_t t, char out[SIGV4_DATE_LEN + 1])
{
	struct tm tm;
	out[0] = '\0';
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < SIGV4_YEAR_MIN ||
	    tm.tm_year + 1900 > SIGV4_YEAR_MAX)
		return -1;
	/* strftime returns 0 when the text does not fit, leaving out undefined */
	if (strftime(out, SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_DATE_LEN) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

/* SHA-256 fetched once: OpenSSL 3 otherwise looks the algorithm up (with
 * locks) on every EVP_sha256()/HMAC() call, which dominated signing time. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, fetch_sha256);
	return sha256_md ? sha256_md : EVP_sha256();
}

static void digest(const void *data, size_t n, unsigned char md[32])
{
	unsigned int len = 0;
	EVP_Digest(data, n, md, &len, sha256(), NULL);
}

void sigv4_sha256_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[32];
	digest(data, n, md);
	sbuf_hex_encode(md, 32, out);
}

static int is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static void uri_encode(struct sbuf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c)) {
			sbuf_putc(out, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			sbuf_append(out, e, 3);
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into out (a '+' stays a '+'). */
static void uri_decode(struct sbuf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			sbuf_putc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
			i += 2;
		} else {
			sbuf_putc(out, s[i]);
		}
	}
}

/* Normalised, encoded path: "//a/./b/../c/" -> "/a/c/". */
static void canonical_path(struct sbuf *out, const char *path)
{
	const char *segs[64];
	size_t lens[64];
	size_t nseg = 0;
	size_t plen = strlen(path);
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *start = p;
		while (*p && *p != '/')
			p++;
		size_t len = (size_t)(p - start);
		if (len == 0 || (len == 1 && start[0] == '.'))
			continue;
		if (len == 2 && start[0] == '.' && start[1] == '.') {
			if (nseg)
				nseg--;
			continue;
		}
		if (nseg < 64) {
			segs[nseg] = start;
			lens[nseg++] = len;
		}
	}
	sbuf_putc(out, '/');
	for (size_t i = 0; i < nseg; i++) {
		uri_encode(out, segs[i], lens[i]);
		if (i + 1 < nseg)
			sbuf_putc(out, '/');
	}
	int trailing = plen > 1 && path[plen - 1] == '/';
	if (trailing && nseg > 0)
		sbuf_putc(out, '/');
}

struct kv {
	char *k;
	char *v;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = strcmp(x->k, y->k);
	return c ? c : strcmp(x->v, y->v);
}

static void canonical_query(struct sbuf *out, const char *query)
{
	if (!query || !*query)
		return;
	size_t cap = 8, n = 0;
	struct kv *kvs = rt_calloc(cap, sizeof(*kvs));
	const char *p = query;
	while (*p) {
		const char *end = strchr(p, '&');
		if (!end)
			end = p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		const char *kend = eq ? eq : end;
		if (kend > p || eq) {
			struct sbuf raw, enc;
			sbuf_init(&raw);
			sbuf_init(&enc);
			uri_decode(&raw, p, (size_t)(kend - p));
			uri_encode(&enc, raw.data, raw.len);
			if (n == cap) {
				cap *= 2;
				kvs = rt_realloc(kvs, cap * sizeof(*kvs));
			}
			kvs[n].k = sbuf_steal(&enc);
			sbuf_reset(&raw);
			sbuf_init(&enc);
			if (eq)
				uri_decode(&raw, eq + 1, (size_t)(end - eq - 1));
			uri_encode(&enc, raw.data, raw.len);
			kvs[n++].v = sbuf_steal(&enc);
			sbuf_clean_up(&raw);
		}
		p = *end ? end + 1 : end;
	}
	qsort(kvs, n, sizeof(*kvs), kv_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_putc(out, '&');
		sbuf_puts(out, kvs[i].k);
		sbuf_putc(out, '=');
		sbuf_puts(out, kvs[i].v);
		free(kvs[i].k);
		free(kvs[i].v);
	}
	free(kvs);
}

struct hdr {
	char *name; /* lowercased, owned */
	const char *value;
	size_t order;
};

static int hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trim and collapse runs of spaces. */
static void append_trimmed(struct sbuf *out, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	int prev_space = 0;
	for (size_t i = 0; i < n; i++) {
		int sp = v[i] == ' ' || v[i] == '\t';
		if (sp && prev_space)
			continue;
		sbuf_putc(out, sp ? ' ' : v[i]);
		prev_space = sp;
	}
}

void sigv4_canonical_request(const struct sigv4_request *req, struct sbuf *creq,
                             struct sbuf *signed_headers)
{
	sbuf_puts(creq, req->method);
	sbuf_putc(creq, '\n');
	canonical_path(creq, req->path);
	sbuf_putc(creq, '\n');
	canonical_query(creq, req->query);
	sbuf_putc(creq, '\n');

	struct hdr *h = rt_calloc(req->n_headers ? req->n_headers : 1, sizeof(*h));
	for (size_t i = 0; i < req->n_headers; i++) {
		h[i].name = rt_strdup(req->headers[i].name);
		for (char *c = h[i].name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		h[i].value = req->headers[i].value;
		h[i].order = i;
	}
	qsort(h, req->n_headers, sizeof(*h), hdr_cmp);
	for (size_t i = 0; i < req->n_headers; i++) {
		int same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
		if (same) {
			sbuf_putc(creq, ',');
		} else {
			if (i > 0) {
				sbuf_putc(creq, '\n');
				sbuf_putc(signed_headers, ';');
			}
			sbuf_puts(creq, h[i].name);
			sbuf_putc(creq, ':');
			sbuf_puts(signed_headers, h[i].name);
		}
		append_trimmed(creq, h[i].value);
	}
	if (req->n_headers)
		sbuf_putc(creq, '\n');
	for (size_t i = 0; i < req->n_headers; i++)
		free(h[i].name);
	free(h);
	sbuf_putc(creq, '\n');
	sbuf_append(creq, signed_headers->data, signed_headers->len);
	sbuf_putc(creq, '\n');
	sbuf_puts(creq, req->payload_hash);
}

void sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                          const char *creq, struct sbuf *out)
{
	char hash[65];
	sigv4_sha256_hex(creq, strlen(creq), hash);
	sbuf_puts(out, "AWS4-HMAC-SHA256\n");
	sbuf_puts(out, amz_date);
	sbuf_putc(out, '\n');
	sbuf_append(out, amz_date, 8);
	sbuf_putc(out, '/');
	sbuf_puts(out, region);
	sbuf_putc(out, '/');
	sbuf_puts(out, service);
	sbuf_puts(out, "/aws4_request\n");
	sbuf_puts(out, hash);
}

/* HMAC-SHA256 (RFC 2104) on a reused digest context; key is at most 64 bytes
 * here (the secret is hashed into the chain first only if longer). */
static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	static __thread EVP_MD_CTX *ctx;
	if (!ctx)
		ctx = EVP_MD_CTX_new();
	unsigned char k[64] = {0}, pad[64], inner[32];
	if (klen > sizeof(k))
		digest(key, klen, k);
	else
		memcpy(k, key, klen);
	for (size_t i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	EVP_DigestInit_ex2(ctx, sha256(), NULL);
	EVP_DigestUpdate(ctx, pad, 64);
	EVP_DigestUpdate(ctx, msg, strlen(msg));
	EVP_DigestFinal_ex(ctx, inner, NULL);
	for (size_t i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	EVP_DigestInit_ex2(ctx, sha256(), NULL);
	EVP_DigestUpdate(ctx, pad, 64);
	EVP_DigestUpdate(ctx, inner, 32);
	EVP_DigestFinal_ex(ctx, out, NULL);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
}

void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32])
{
	struct sbuf k;
	sbuf_init(&k);
	sbuf_printf(&k, "AWS4%s", secret);
	unsigned char a[32], b[32];
	char day[9];
	memcpy(day, date8, 8);
	day[8] = '\0';
	hmac(k.data, k.len, day, a);
	hmac(a, 32, region, b);
	hmac(b, 32, service, a);
	hmac(a, 32, "aws4_request", key);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	sbuf_wipe(&k);
}

void sigv4_signature(const unsigned char key[32], const char *sts, char out[65])
{
	unsigned char sig[32];
	hmac(key, 32, sts, sig);
	sbuf_hex_encode(sig, 32, out);
}

static const unsigned char *cached_key(struct sigv4_key_cache *c,
                                       const struct sigv4_credentials *cred, const char *date,
                                       const char *region, const char *service)
{
	if (c->valid && c->generation == cred->generation && memcmp(c->date, date, 8) == 0 &&
	    strcmp(c->region, region) == 0 && strcmp(c->service, service) == 0)
		return c->key;
	sigv4_key_cache_clean_up(c);
	sigv4_signing_key(cred->secret_access_key, date, region, service, c->key);
	memcpy(c->date, date, 8);
	c->date[8] = '\0';
	int nr = snprintf(c->region, sizeof(c->region), "%s", region);
	int ns = snprintf(c->service, sizeof(c->service), "%s", service);
	c->generation = cred->generation;
	/* a name too long to keep is signed with, never matched from the cache */
	c->valid =
	    nr >= 0 && (size_t)nr < sizeof(c->region) && ns >= 0 && (size_t)ns < sizeof(c->service);
	return c->key;
}

void sigv4_authorize(const struct sigv4_request *req, const struct sigv4_credentials *cred,
                     const char *region, const char *service, const char *amz_date,
                     struct sigv4_key_cache *cache, struct sbuf *authz)
{
	if (strnlen(amz_date, SIGV4_DATE_LEN + 1) != SIGV4_DATE_LEN)
		return; /* no Authorization: AWS refuses the call, nothing is over-read */
	struct sbuf creq, sh, sts;
	sbuf_init(&creq);
	sbuf_init(&sh);
	sbuf_init(&sts);
	sigv4_canonical_request(req, &creq, &sh);
	sigv4_string_to_sign(amz_date, region, service, creq.data, &sts);

	struct sigv4_key_cache local = {0};
	struct sigv4_key_cache *c = cache ? cache : &local;
	char sig[65];
	sigv4_signature(cached_key(c, cred, amz_date, region, service), sts.data, sig);
	sigv4_key_cache_clean_up(&local);

	sbuf_puts(authz, "AWS4-HMAC-SHA256 Credential=");
	sbuf_puts(authz, cred->access_key_id);
	sbuf_putc(authz, '/');
	sbuf_append(authz, amz_date, 8);
	sbuf_putc(authz, '/');
	sbuf_puts(authz, region);
	sbuf_putc(authz, '/');
	sbuf_puts(authz, service);
	sbuf_puts(authz, "/aws4_request, SignedHeaders=");
	sbuf_append(authz, sh.data, sh.len);
	sbuf_puts(authz, ", Signature=");
	sbuf_puts(authz, sig);
	OPENSSL_cleanse(sig, sizeof(sig));
	/* the canonical request holds the session token */
	sbuf_wipe(&creq);
	sbuf_clean_up(&sh);
	sbuf_wipe(&sts);
}

void sigv4_key_cache_clean_up(struct sigv4_key_cache *cache)
{
	OPENSSL_cleanse(cache, sizeof(*cache));
}
