"""Python Kombu's side of the SQS benchmark (TestBenchAgainstPython).

    kombu_sqs_bench.py URL OPTS_JSON QUEUE N SIZE PREFETCH

Publishes N JSON messages of SIZE payload bytes one by one to QUEUE, then
consumes them with acknowledgements (prefetch PREFETCH), and prints
{"publish": msg/s, "consume": msg/s}.
"""
import json
import sys
import time

from kombu import Connection, Queue


def main():
    url, opts, queue = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    n, size, prefetch = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    payload = {"data": "x" * size}
    with Connection(url, transport_options=opts) as conn:
        q = Queue(queue)
        prod = conn.Producer(serializer="json")
        prod.publish(payload, routing_key=queue, declare=[q])  # warm-up: creates the queue
        t0 = time.perf_counter()
        for _ in range(n):
            prod.publish(payload, routing_key=queue)
        pub = n / (time.perf_counter() - t0)
        got = [0]

        def on_message(body, message):
            got[0] += 1
            message.ack()

        with conn.Consumer(q, callbacks=[on_message], prefetch_count=prefetch):
            t0 = None
            while got[0] < n + 1:
                try:
                    conn.drain_events(timeout=5)
                except Exception:
                    break
                if t0 is None:
                    t0 = time.perf_counter()
                    start = got[0]
            cons = (got[0] - start) / (time.perf_counter() - t0)
        print(json.dumps({"publish": pub, "consume": cons, "consumed": got[0]}))


if __name__ == "__main__":
    main()
