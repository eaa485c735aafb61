/*
 * loadgen: a fleet of devices in one process. Publishes requests from its
 * own thread, keeps C of them outstanding, matches replies by id, and prints
 * one JSON line: requests/s and latency percentiles (publish -> reply).
 *
 * usage: loadgen URI OUTSTANDING COUNT [THINGS]
 */
#define _GNU_SOURCE
#include <MQTTAsync.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

static MQTTAsync client;
static sem_t permits;
static uint64_t *sent_ns, *lat_ns;
static long total, things;
static volatile long received, rejected, subscribed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)ctx;
	(void)topic_len;
	uint64_t now = bench_now_ns();
	const char *p = memmem(m->payload, (size_t)m->payloadlen, "\"id\":", 5);
	long id = p ? strtol(p + 5, NULL, 10) : -1;
	if (id >= 0 && id < total && sent_ns[id] && !lat_ns[id]) {
		lat_ns[id] = now - sent_ns[id];
		pthread_mutex_lock(&lock);
		received++;
		if (!strstr(topic, "/accepted"))
			rejected++;
		pthread_mutex_unlock(&lock);
		sem_post(&permits);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
	(void)ctx;
	(void)r;
	subscribed = 1;
}

static void on_connected(void *ctx, MQTTAsync_successData *r)
{
	(void)ctx;
	(void)r;
	bench_tcp_nodelay_all();
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribed;
	MQTTAsync_subscribe(client, "commands/+/+/start/+", 1, &ro);
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void *publisher(void *arg)
{
	(void)arg;
	char topic[128], body[64];
	for (long i = 0; i < total; i++) {
		sem_wait(&permits);
		snprintf(topic, sizeof(topic), "commands/bench-%ld/c1/start", i % things);
		int n = snprintf(body, sizeof(body), "{\"id\":%ld}", i);
		MQTTAsync_message m = MQTTAsync_message_initializer;
		m.payload = body;
		m.payloadlen = n;
		m.qos = 1;
		sent_ns[i] = bench_now_ns();
		while (MQTTAsync_sendMessage(client, topic, &m, NULL) != MQTTASYNC_SUCCESS)
			usleep(100);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: loadgen URI OUTSTANDING COUNT [THINGS]\n");
		return 64;
	}
	long outstanding = atol(argv[2]);
	total = atol(argv[3]);
	things = argc > 4 ? atol(argv[4]) : 64;
	sent_ns = calloc((size_t)total, sizeof(uint64_t));
	lat_ns = calloc((size_t)total, sizeof(uint64_t));
	sem_init(&permits, 0, (unsigned)outstanding);
	char id[64];
	snprintf(id, sizeof(id), "loadgen-%d", getpid());
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
	cro.maxBufferedMessages = 100000;
	MQTTAsync_createWithOptions(&client, argv[1], id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro);
	MQTTAsync_setCallbacks(client, NULL, NULL, on_message, NULL);
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.maxInflight = 65535;
	co.onSuccess = on_connected;
	if (MQTTAsync_connect(client, &co) != MQTTASYNC_SUCCESS)
		return 1;
	for (int i = 0; i < 500 && !subscribed; i++)
		usleep(10000);
	if (!subscribed) {
		fprintf(stderr, "loadgen: not connected\n");
		return 1;
	}
	uint64_t start = bench_now_ns();
	pthread_t th;
	pthread_create(&th, NULL, publisher, NULL);
	uint64_t deadline = start + 120ull * 1000000000ull;
	while (received < total && bench_now_ns() < deadline)
		usleep(1000);
	uint64_t elapsed = bench_now_ns() - start;
	long got = received;
	if (got < total) {
		fprintf(stderr, "loadgen: only %ld of %ld replies\n", got, total);
		return 2; /* the publisher thread may still wait; exit without joining */
	}
	pthread_join(th, NULL);
	qsort(lat_ns, (size_t)total, sizeof(uint64_t), cmp);
	double ms = 1e-6;
	printf("{\"outstanding\":%ld,\"requests\":%ld,\"rps\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"max_ms\":%.3f,\"rejected\":%ld}\n",
	       outstanding, total, (double)total / ((double)elapsed * 1e-9),
	       (double)lat_ns[total / 2] * ms, (double)lat_ns[total * 99 / 100] * ms,
	       (double)lat_ns[total - 1] * ms, rejected);
	MQTTAsync_disconnect(client, NULL);
	usleep(50000);
	MQTTAsync_destroy(&client);
	return 0;
}
