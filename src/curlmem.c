/* curlmem: see curlmem.h. */
#include "curlmem.h"

#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static void wiped_free(void *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

/* Never realloc: a block it moves would go back to the heap unwiped. */
static void *wiped_realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {
		wiped_free(p);
		return NULL;
	}
	size_t old = malloc_usable_size(p);
	void *q = malloc(n);
	if (!q)
		return NULL; /* p stays valid, as with realloc */
	memcpy(q, p, old < n ? old : n);
	wiped_free(p);
	return q;
}

static char *plain_strdup(const char *s)
{
	return strdup(s);
}

int curlmem_global_init(void)
{
	return curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wiped_free, wiped_realloc,
	                            plain_strdup, calloc) == CURLE_OK
	           ? 0
	           : -1;
}
