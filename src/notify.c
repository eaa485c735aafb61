/*
 * notify: without libsystemd the protocol is one datagram to $NOTIFY_SOCKET,
 * so both paths are short; a missing socket means "not under systemd".
 */
#include "notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void notify_send(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	close(fd);
#endif
}

uint64_t notify_watchdog_interval_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	if (!usec)
		return 0;
	unsigned long long v = strtoull(usec, NULL, 10);
	return v / 2000;
}
