/*
 * mqtt_rcv: a way around one delay inside Paho 1.3.12, so that the gateway
 * is READY within milliseconds of its launch, every time.
 *
 * Paho's receive thread ("MQTTAsync_rcv") looks for a socket to wait on;
 * when there is none, it sleeps 100 ms (usleep) before looking again. The
 * socket of a CONNECT is made by Paho's other thread, the send thread, and
 * both threads start inside the first MQTTAsync_connect: when the receive
 * thread looks first (a race it usually wins), the connection waits up to
 * 100 ms for nothing, and so does READY.
 *
 * This file defines usleep() for the process (Paho's library calls it
 * through the dynamic linker, which takes the executable's definition
 * first). While a connect is under way (mqtt_rcv_connecting), that one
 * sleep of the receive thread is 1 ms; every other call sleeps as long as
 * asked, as libc's does. Nothing else of Paho's behaviour changes, and once
 * connected the receive thread waits on its socket and never gets here.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_priv.h"

#define PAHO_IDLE_SLEEP_US  100000 /* MQTTAsync_cycle's sleep when no socket exists */
#define CONNECTING_SLEEP_US 1000
#define PAHO_RECEIVE_THREAD "MQTTAsync_rcv"

static atomic_int connecting;

void mqtt_rcv_connecting(int on)
{
	atomic_store(&connecting, on);
}

static int on_receive_thread(void)
{
	char name[16] = "";
	prctl(PR_GET_NAME, name, 0, 0, 0);
	return strcmp(name, PAHO_RECEIVE_THREAD) == 0;
}

int usleep(useconds_t us)
{
	if (us == PAHO_IDLE_SLEEP_US && atomic_load(&connecting) && on_receive_thread())
		us = CONNECTING_SLEEP_US;
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
	                      .tv_nsec = (long)(us % 1000000) * 1000};
	if (nanosleep(&ts, NULL) != 0)
		return -1; /* errno: EINTR, as libc's */
	return 0;
}
