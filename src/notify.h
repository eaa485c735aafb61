/* notify: the systemd service-manager protocol (READY, STATUS, WATCHDOG). */
#ifndef CMDGATE_NOTIFY_H
#define CMDGATE_NOTIFY_H

#include <stdint.h>

/* Send a state string ("READY=1", "STATUS=...") when under systemd. */
void notify_send(const char *state);
/* Half the watchdog interval in ms, or 0 when no watchdog is set. */
uint64_t notify_watchdog_interval_ms(void);

#endif
