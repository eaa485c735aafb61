/* base64: validation only; the gateway forwards BIN values as text. */
#include "base64.h"

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long base64_decoded_len(const char *s, size_t n)
{
	if (n == 0 || n % 4 != 0)
		return -1;
	size_t pad = 0;
	if (s[n - 1] == '=')
		pad = (s[n - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < n - pad; i++)
		if (b64val(s[i]) < 0)
			return -1;
	/* The last data character must not carry bits that padding drops. */
	if (pad == 1 && (b64val(s[n - 2]) & 0x3) != 0)
		return -1;
	if (pad == 2 && (b64val(s[n - 3]) & 0xf) != 0)
		return -1;
	return (long)(n / 4 * 3 - pad);
}
