/*
 * nullbridge: the limit of the MQTT path. Subscribes like the gateway and
 * answers every request at once on TOPIC/accepted with the request's id and
 * no HTTP call. bench/run.sh measures the gateway against it.
 *
 * usage: nullbridge URI
 */
#define _GNU_SOURCE
#include <MQTTAsync.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

static MQTTAsync client;
static volatile sig_atomic_t stop;
static volatile int ready;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)ctx;
	char reply_topic[512], body[256];
	snprintf(reply_topic, sizeof(reply_topic), "%.*s/accepted",
	         topic_len ? topic_len : (int)strlen(topic), topic);
	const char *p = memmem(m->payload, (size_t)m->payloadlen, "\"id\":", 5);
	long id = p ? strtol(p + 5, NULL, 10) : -1;
	int n = snprintf(body, sizeof(body),
	                 "{\"status\":\"accepted\",\"id\":%ld,\"executionId\":\"null\"}", id);
	MQTTAsync_message r = MQTTAsync_message_initializer;
	r.payload = body;
	r.payloadlen = n;
	r.qos = m->qos;
	MQTTAsync_sendMessage(client, reply_topic, &r, NULL);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
	(void)ctx;
	(void)r;
	ready = 1;
}

static void on_connected(void *ctx, MQTTAsync_successData *r)
{
	(void)ctx;
	(void)r;
	bench_tcp_nodelay_all();
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribed;
	MQTTAsync_subscribe(client, "commands/+/+/start", 1, &ro);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: nullbridge URI\n");
		return 64;
	}
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	MQTTAsync_create(&client, argv[1], "nullbridge", MQTTCLIENT_PERSISTENCE_NONE, NULL);
	MQTTAsync_setCallbacks(client, NULL, NULL, on_message, NULL);
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.onSuccess = on_connected;
	if (MQTTAsync_connect(client, &co) != MQTTASYNC_SUCCESS)
		return 1;
	while (!stop) {
		if (ready == 1) {
			fprintf(stderr, "nullbridge: ready\n");
			ready = 2;
		}
		usleep(10000);
	}
	MQTTAsync_disconnect(client, NULL);
	usleep(100000);
	MQTTAsync_destroy(&client);
	return 0;
}
