"""Python Kombu's side of the SQS interop tests (Kombu 5.2.4, boto3, pycurl).

    kombu_sqs_peer.py publish URL OPTS_JSON QUEUE MSGS_JSON
        publish each {"body", "headers", "properties"} to QUEUE (default exchange)
    kombu_sqs_peer.py consume URL OPTS_JSON QUEUE N ACK TIMEOUT
        consume N messages from QUEUE; ACK "ack" acknowledges them, "noack"
        leaves them unacknowledged and closes the connection (Kombu then
        restores them); prints one JSON object per message
    kombu_sqs_peer.py encode URL OPTS_JSON QUEUE MSG_JSON TAG
        prints {"body": the serialized body, "sqs": the MessageBody Kombu's
        _put would send for MSG published to QUEUE with delivery tag TAG}
        (Kombu's own functions; nothing is sent)
"""
import json
import sys
import time

from kombu import Connection, Queue
from kombu.asynchronous.aws.sqs.message import AsyncMessage
from kombu.utils.json import dumps


def main():
    cmd, url, opts, queue = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    with Connection(url, transport_options=opts) as conn:
        if cmd == "publish":
            prod = conn.Producer(serializer="json")
            for m in json.loads(sys.argv[5]):
                prod.publish(m["body"], exchange="", routing_key=queue,
                             headers=m.get("headers") or {}, declare=[Queue(queue)],
                             **(m.get("properties") or {}))
        elif cmd == "consume":
            n, ack, timeout = int(sys.argv[5]), sys.argv[6] == "ack", float(sys.argv[7])
            got = []

            def on_message(body, message):
                got.append(message)
                print(json.dumps({
                    "payload": body,
                    "headers": message.headers,
                    "content_type": message.content_type,
                    "routing_key": message.delivery_info.get("routing_key"),
                    "redelivered": bool(message.delivery_info.get("redelivered")),
                    "properties": {k: v for k, v in message.properties.items()
                                   if k in ("correlation_id", "reply_to", "priority", "delivery_mode")},
                }), flush=True)
                if ack:
                    message.ack()

            with conn.Consumer(Queue(queue), callbacks=[on_message], accept=["json"]):
                deadline = time.time() + timeout
                while len(got) < n and time.time() < deadline:
                    try:
                        conn.drain_events(timeout=1)
                    except Exception:  # socket.timeout / Empty: poll again
                        pass
            if len(got) < n:
                sys.exit("got %d of %d messages" % (len(got), n))
        elif cmd == "encode":
            m, tag = json.loads(sys.argv[5]), sys.argv[6]
            ch = conn.default_channel
            body = dumps(m["body"])
            msg = ch.prepare_message(body, m.get("priority"), "application/json", "utf-8",
                                     m.get("headers"), m.get("properties"))
            ch._next_delivery_tag = lambda: tag
            ch._inplace_augment_message(msg, "", queue)
            print(json.dumps({"body": body, "sqs": AsyncMessage().encode(dumps(msg))}))
        else:
            sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
