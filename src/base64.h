/* base64: strict validation of standard base64 (RFC 4648 section 4, padded). */
#ifndef CMDGATE_BASE64_H
#define CMDGATE_BASE64_H

#include <stddef.h>

/* Decoded length of s, or -1 when s is not canonical padded base64: length a
 * multiple of 4, alphabet A-Z a-z 0-9 + /, '=' only as the last one or two
 * characters, and unused trailing bits zero. */
long base64_decoded_len(const char *s, size_t n);

#endif
