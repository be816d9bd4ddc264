"""Python Kombu 5.2.4 peer of the Go filesystem transport's interop tests.

usage:
  kombu_fs_peer.py publish IN OUT QUEUE N [raw]
      publish N messages {"i": k, "text": ...} (or raw bytes with "raw")
      through the default exchange to QUEUE.
  kombu_fs_peer.py consume IN OUT QUEUE N TIMEOUT MODE
      consume N messages and print one JSON line each; MODE "ack" acks
      them, "noack-close" leaves them unacked and closes the connection
      (Kombu then restores them), "hang" prints and never acks (the test
      kills the process).
  kombu_fs_peer.py bench IN OUT QUEUE N
      publish N small messages, then consume them, and print the rates.
"""
import base64
import json
import sys
import time

import kombu
from kombu import Exchange, Queue


def connection(din, dout):
    return kombu.Connection('filesystem://', transport_options={
        'data_folder_in': din, 'data_folder_out': dout})


def publish(din, dout, queue, n, raw=False):
    with connection(din, dout) as conn:
        producer = conn.Producer()
        for k in range(n):
            if raw:
                producer.publish(bytes([k % 256, 0, 255, 10]) + b'raw', exchange='',
                                 routing_key=queue, content_type='application/octet-stream',
                                 content_encoding='binary', headers={'k': k})
            else:
                producer.publish({'i': k, 'text': 'héllo ✓'}, exchange='', routing_key=queue,
                                 serializer='json', headers={'k': k, 'h': 'v'},
                                 priority=3, correlation_id='c%d' % k, reply_to='replies')


def consume(din, dout, queue, n, timeout, mode):
    got = []
    with connection(din, dout) as conn:
        q = Queue(queue, Exchange(''), routing_key=queue)

        def on_message(body, message):
            got.append(message)
            out = {
                'payload': message.payload if message.content_type == 'application/json' else None,
                'raw_body_b64': base64.b64encode(message.body if isinstance(message.body, bytes)
                                                 else message.body.encode()).decode(),
                'headers': message.headers,
                'properties': {k: v for k, v in message.properties.items() if k != 'delivery_info'},
                'delivery_info': {k: v for k, v in message.delivery_info.items()
                                  if isinstance(v, (str, int, bool, type(None)))},
                'redelivered': bool(message.delivery_info.get('redelivered')),
                'content_type': message.content_type,
            }
            print(json.dumps(out), flush=True)
            if mode == 'ack':
                message.ack()

        with conn.Consumer([q], callbacks=[on_message], accept=['json', 'application/octet-stream', 'text/plain']):
            deadline = time.monotonic() + timeout
            while len(got) < n and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.2)
                except Exception as e:  # socket.timeout
                    if type(e).__name__ not in ('timeout', 'TimeoutError'):
                        raise
            if mode == 'hang':
                print('HUNG', flush=True)
                time.sleep(3600)
    if len(got) < n:
        print('TIMEOUT %d/%d' % (len(got), n), file=sys.stderr, flush=True)
        sys.exit(3)


def bench(din, dout, queue, n):
    with connection(din, dout) as conn:
        producer = conn.Producer()
        t0 = time.monotonic()
        for k in range(n):
            producer.publish({'i': k}, exchange='', routing_key=queue, serializer='json')
        pub = n / (time.monotonic() - t0)
        got = [0]
        q = Queue(queue, Exchange(''), routing_key=queue)

        def on_message(body, message):
            got[0] += 1
            message.ack()

        t0 = time.monotonic()
        with conn.Consumer([q], callbacks=[on_message], accept=['json']):
            while got[0] < n:
                conn.drain_events(timeout=5)
        con = n / (time.monotonic() - t0)
    print(json.dumps({'publish_per_s': pub, 'consume_per_s': con}))


def main():
    cmd, din, dout, queue = sys.argv[1:5]
    if cmd == 'publish':
        publish(din, dout, queue, int(sys.argv[5]), len(sys.argv) > 6 and sys.argv[6] == 'raw')
    elif cmd == 'consume':
        consume(din, dout, queue, int(sys.argv[5]), float(sys.argv[6]), sys.argv[7])
    elif cmd == 'bench':
        bench(din, dout, queue, int(sys.argv[5]))
    else:
        sys.exit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
