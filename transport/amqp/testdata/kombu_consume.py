"""Consume with Python Kombu for the Go interop test.

usage: kombu_consume.py URL QUEUE COUNT

Consumes COUNT messages from an existing queue with a kombu Consumer
(accept json), acknowledges them and prints them as one JSON list: decoded
payload, content type and encoding, headers, properties and delivery info.
"""
import json
import sys

from kombu import Connection, Consumer, Queue

url, queue_name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = []


def on_message(body, message):
    props = message.properties
    out.append({
        "payload": body,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "headers": message.headers,
        "properties": {k: props.get(k) for k in (
            "priority", "correlation_id", "reply_to", "message_id", "type",
            "app_id", "user_id", "expiration", "delivery_mode", "timestamp")},
        "delivery_info": {k: message.delivery_info.get(k) for k in (
            "routing_key", "exchange", "redelivered")},
    })
    message.ack()


with Connection(url) as conn:
    queue = Queue(queue_name, no_declare=True)
    with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"]):
        while len(out) < count:
            conn.drain_events(timeout=20)
print(json.dumps(out, default=str))
