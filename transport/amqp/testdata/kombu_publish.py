"""Publish with Python Kombu for the Go interop test.

usage: kombu_publish.py URL EXCHANGE QUEUE ROUTING_KEY

Publishes two messages through a kombu Producer on the given (direct,
non-durable) exchange: a JSON one with headers, priority and every property,
and a JSON one compressed with zlib. Prints "ok" when done.
"""
import sys

from kombu import Connection, Exchange, Producer, Queue

url, exchange_name, queue_name, routing_key = sys.argv[1:5]

with Connection(url) as conn:
    channel = conn.channel()
    exchange = Exchange(exchange_name, type="direct", durable=False)
    queue = Queue(queue_name, exchange, routing_key=routing_key, durable=False)
    queue(channel).declare()
    producer = Producer(channel, exchange=exchange, routing_key=routing_key, serializer="json")
    producer.publish(
        {"hello": "world", "n": 1, "list": [1, "two", None]},
        headers={"h1": "v", "num": 7, "big": 2**40, "ratio": 0.5, "flag": True,
                 "none": None, "nested": {"a": [1, 2], "b": {"c": "d"}}},
        priority=5,
        correlation_id="c-1",
        reply_to="reply-q",
        message_id="m-1",
        type="task",
        app_id="py-app",
        user_id="guest",
        timestamp=1700000000,  # pyamqp sends the property as whole seconds
        expiration=60,
        delivery_mode=2,
    )
    producer.publish({"z": "compressed"}, compression="zlib", message_id="m-2")
print("ok")
