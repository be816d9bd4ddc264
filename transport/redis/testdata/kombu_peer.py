"""Python Kombu peer for the Go Redis transport's interoperability tests.

Usage (run with Debian's /usr/bin/python3 and python3-kombu 5.2.4):

    kombu_peer.py publish URL OPTIONS_JSON MESSAGES_JSON
    kombu_peer.py consume URL OPTIONS_JSON BINDINGS_JSON COUNT TIMEOUT [noack-exit]

OPTIONS_JSON are Kombu transport options (global_keyprefix, client_name,
visibility_timeout...). MESSAGES_JSON is a list of objects with exchange,
type, routing_key, queue (declared and bound when given), body (a JSON
value, or {"bytes_b64": ...} for raw bytes), serializer, compression,
priority, headers and properties. BINDINGS_JSON is a list of objects with
queue, exchange, type and routing_key.

consume prints one JSON line per message: the payload as decoded by Kombu
(bytes as {"bytes_b64": ...}), the raw body in base64, headers, properties,
delivery_info, content_type and content_encoding. It acknowledges each
message, or with noack-exit leaves them unacknowledged and exits without
closing anything (a consumer that died).
"""
import base64
import json
import os
import socket
import sys
import time

import kombu


def ex_of(spec):
    name = spec.get("exchange", "")
    if not name:
        return kombu.Exchange("")
    return kombu.Exchange(name, type=spec.get("type", "direct"))


def body_of(b):
    if isinstance(b, dict) and "bytes_b64" in b:
        return base64.b64decode(b["bytes_b64"])
    return b


def jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return {"bytes_b64": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def publish(url, options, messages):
    with kombu.Connection(url, transport_options=options) as conn:
        producer = conn.Producer()
        for m in messages:
            ex = ex_of(m)
            declare = []
            if ex.name:
                declare.append(ex)
            if m.get("queue"):
                declare.append(kombu.Queue(m["queue"], ex, routing_key=m.get("binding_key", m.get("routing_key", ""))))
            kwargs = dict(m.get("properties", {}))
            body = body_of(m["body"])
            serializer = m.get("serializer", "json")
            if isinstance(body, bytes):
                serializer = None  # raw bytes: application/data, binary
            producer.publish(
                body,
                exchange=ex,
                routing_key=m.get("routing_key", ""),
                serializer=serializer,
                compression=m.get("compression"),
                priority=m.get("priority", 0),
                headers=m.get("headers"),
                declare=declare,
                **kwargs,
            )


def consume(url, options, bindings, count, timeout, noack_exit):
    conn = kombu.Connection(url, transport_options=options)
    conn.connect()
    queues = []
    for b in bindings:
        queues.append(kombu.Queue(b["queue"], ex_of(b), routing_key=b.get("routing_key", "")))
    got = []

    def on_message(body, message):
        out = {
            "payload": jsonable(body),
            "raw_body_b64": base64.b64encode(message.body if isinstance(message.body, bytes) else message.body.encode()).decode(),
            "headers": jsonable(message.headers),
            "properties": jsonable(message.properties),
            "delivery_info": jsonable(message.delivery_info),
            "content_type": message.content_type,
            "content_encoding": message.content_encoding,
        }
        print(json.dumps(out), flush=True)
        got.append(message)
        if not noack_exit:
            message.ack()

    consumer = kombu.Consumer(conn, queues=queues, callbacks=[on_message], accept=["json", "text/plain", "application/data"])
    consumer.qos(prefetch_count=count)
    deadline = time.time() + timeout
    with consumer:
        print("READY", flush=True)
        while len(got) < count and time.time() < deadline:
            try:
                conn.drain_events(timeout=0.5)
            except socket.timeout:
                pass
    if noack_exit:
        sys.stdout.flush()
        os._exit(0)
    conn.release()
    if len(got) < count:
        sys.exit("consumed %d of %d" % (len(got), count))


def main():
    cmd, url, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if cmd == "publish":
        publish(url, options, json.loads(sys.argv[4]))
    elif cmd == "consume":
        noack = len(sys.argv) > 7 and sys.argv[7] == "noack-exit"
        consume(url, options, json.loads(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), noack)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
