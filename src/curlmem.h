/*
 * curlmem: libcurl's memory, wiped when libcurl frees it.
 *
 * libcurl formats each request (method, headers and all) in buffers of its
 * own and frees them unwiped: after 50 calls the session token of the
 * x-amz-security-token header (and Authorization signatures) lay in up to
 * ten freed heap blocks. libcurl lets a program supply its allocator
 * (curl_global_init_mem); this one clears every block it frees or moves, so
 * nothing libcurl held outlives its use.
 */
#ifndef CMDGATE_CURLMEM_H
#define CMDGATE_CURLMEM_H

/* curl_global_init(CURL_GLOBAL_DEFAULT) with the wiping allocator; 0 or -1. */
int curlmem_global_init(void);

#endif
