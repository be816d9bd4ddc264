"""Python Kombu's side of the sqla benchmark (bench_test.go).

usage: kombu_sqla_bench.py URL OPTIONS_JSON QUEUE N SIZE

Publishes N messages of SIZE bytes one by one to QUEUE (default exchange),
then consumes them with a Consumer whose callback acknowledges each, and
prints one JSON line: {"publish_per_s": ..., "consume_per_s": ...}.
"""
import json
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue


def main():
    url, opts, qname, n, size = sys.argv[1:6]
    n, size = int(n), int(size)
    opts = json.loads(opts)
    body = 'x' * size
    with Connection(url, transport_options=opts) as conn:
        q = Queue(qname, Exchange(''), routing_key=qname)
        ch = conn.channel()
        q(ch).declare()
        p = Producer(ch)
        t0 = time.monotonic()
        for _ in range(n):
            p.publish(body, routing_key=qname, serializer='json')
        pub = n / (time.monotonic() - t0)
        got = [0]

        def on_message(body, message):
            message.ack()
            got[0] += 1

        with Consumer(conn.channel(), queues=[q], callbacks=[on_message], prefetch_count=100):
            t0 = time.monotonic()
            while got[0] < n:
                conn.drain_events(timeout=10)
            con = n / (time.monotonic() - t0)
    print(json.dumps({'publish_per_s': pub, 'consume_per_s': con}))


if __name__ == '__main__':
    main()
