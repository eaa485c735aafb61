#!/usr/bin/env python3
"""MQTT as a device or an operator sees it, for the deploy tests (shell).

  mqtt_tool.py request PORT TOPIC PAYLOAD [TIMEOUT]
      subscribes to TOPIC/+ first, publishes PAYLOAD to TOPIC (QoS 1), again
      every 2 s while no reply came (the gateway may still be subscribing;
      the request carries an id, so a repeat never starts a second
      execution), prints the first reply's payload; exit 1 on timeout.
  mqtt_tool.py retained PORT TOPIC [TIMEOUT]
      prints the retained message on TOPIC; exit 1 if none came.

Everything is bounded by TIMEOUT seconds (default 15) and talks to
127.0.0.1 only.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt


def connect(port):
    c = mqtt.Client(client_id=f"deploy-test-{time.time_ns()}", protocol=mqtt.MQTTv311)
    got = []
    ready = threading.Event()
    subscribed = threading.Event()
    c.on_connect = lambda *_: ready.set()
    c.on_subscribe = lambda *_: subscribed.set()
    c.on_message = lambda _c, _u, m: got.append(m)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    if not ready.wait(5):
        sys.exit("mqtt_tool: no CONNACK from the broker")
    return c, got, subscribed


def request(port, topic, payload, timeout):
    c, got, subscribed = connect(port)
    c.subscribe(topic + "/+", qos=1)
    subscribed.wait(5)
    end = time.time() + timeout
    next_send = 0.0
    while time.time() < end and not got:
        if time.time() >= next_send:
            c.publish(topic, payload, qos=1)
            next_send = time.time() + 2.0
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    if not got:
        print(f"no reply on {topic}/+ within {timeout}s", file=sys.stderr)
        return 1
    print(got[0].topic, got[0].payload.decode(errors="replace"))
    return 0


def retained(port, topic, timeout):
    c, got, subscribed = connect(port)
    c.subscribe(topic, qos=1)
    end = time.time() + timeout
    while time.time() < end and not got:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    if not got:
        print(f"nothing retained on {topic}", file=sys.stderr)
        return 1
    print(got[0].payload.decode(errors="replace"))
    return 0


def main(argv):
    if len(argv) >= 4 and argv[0] == "request":
        return request(int(argv[1]), argv[2], argv[3], float(argv[4]) if len(argv) > 4 else 15)
    if len(argv) >= 3 and argv[0] == "retained":
        return retained(int(argv[1]), argv[2], float(argv[3]) if len(argv) > 3 else 5)
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
