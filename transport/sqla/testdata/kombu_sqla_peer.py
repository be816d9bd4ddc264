"""Python Kombu peer of the sqla interop tests.

usage: kombu_sqla_peer.py MODE URL OPTIONS_JSON QUEUE N [TIMEOUT]

  publish  publish N JSON messages {"i": i, "from": "python"} with header
           h=i to QUEUE (default exchange), print "ok"
  consume  get N messages from QUEUE (SimpleQueue.get, TIMEOUT seconds
           each), ack each, print one JSON line per message; "empty" when a
           get times out
  grab     get N messages without acknowledging them, print them, then
           exit at once (os._exit), as a consumer killed mid-stream
"""
import json
import os
import sys
import queue as stdqueue

from kombu import Connection, Exchange, Producer, Queue


def main():
    mode, url, opts, qname, n = sys.argv[1:6]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    n = int(n)
    opts = json.loads(opts)
    with Connection(url, transport_options=opts, polling_interval=0.05) as conn:
        if mode == 'publish':
            q = Queue(qname, Exchange(''), routing_key=qname)
            with conn.channel() as ch:
                p = Producer(ch)
                for i in range(n):
                    p.publish({'i': i, 'from': 'python'}, routing_key=qname,
                              declare=[q], headers={'h': i},
                              serializer='json')
            print('ok', flush=True)
            return
        sq = conn.SimpleQueue(qname)
        for _ in range(n):
            try:
                m = sq.get(timeout=timeout)
            except stdqueue.Empty:
                print('empty', flush=True)
                continue
            print(json.dumps({
                'payload': m.payload,
                'headers': m.headers,
                'content_type': m.content_type,
                'redelivered': bool(m.delivery_info.get('redelivered')),
                'delivery_tag': m.delivery_tag,
            }), flush=True)
            if mode == 'consume':
                m.ack()
        if mode == 'grab':
            os._exit(0)
        sq.close()


if __name__ == '__main__':
    main()
