#!/usr/bin/python3
"""Python baseline: a kombu loop shaped as Celery 4.4's AMQPBackend.

store:   for every result, declare exchange + per-task queue + binding (NoCacheQueue, so
         never cached) and publish with a fresh Producer and the backend's retry policy.
collect: ``get``     - get_task_meta per id (declare, basic.get until empty, requeue latest);
         ``consume`` - get_many: one no_ack consumer over all the per-task queues.

Prints one JSON object: {"store_per_s", "collect_per_s", ...} where collect_per_s is the
rate of the --collect mode (default get_many-style "consume"; "both" reports each).
Queues are deleted afterwards.
"""

import argparse
import json
import os
import socket
import sys
import time
import uuid

from kombu import Connection, Consumer, Exchange, Producer, Queue

RETRY_POLICY = {'max_retries': 20, 'interval_start': 0, 'interval_step': 1, 'interval_max': 1}


class NoCacheQueue(Queue):
    can_cache_declaration = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=4000)
    ap.add_argument('--broker', default=os.environ.get('AMQP_URL',
                                                       'amqp://guest:guest@127.0.0.1:5672//'))
    ap.add_argument('--collect', choices=['get', 'consume', 'both'], default='both')
    ap.add_argument('--expires', type=float, default=86400.0)
    args = ap.parse_args()

    exchange = Exchange('celeryresults', type='direct', durable=True, auto_delete=False,
                        delivery_mode=2)
    qargs = {'x-expires': int(args.expires * 1000)}
    ids = [str(uuid.uuid4()) for _ in range(args.n)]

    def binding(tid):
        name = tid.replace('-', '')
        return NoCacheQueue(name, exchange, name, durable=True, auto_delete=True,
                            exclusive=False, queue_arguments=qargs)

    out = {'n': args.n, 'kombu': __import__('kombu').__version__}
    with Connection(args.broker, heartbeat=0) as conn:
        conn.ensure_connection()
        # -- store ---------------------------------------------------------------------
        t0 = time.monotonic()
        for i, tid in enumerate(ids):
            producer = Producer(conn)  # Celery: producer_pool.acquire() per store_result
            producer.publish(
                {'task_id': tid, 'status': 'SUCCESS', 'result': i, 'traceback': None,
                 'children': None},
                exchange=exchange, routing_key=tid.replace('-', ''), correlation_id=tid,
                serializer='json', retry=True, retry_policy=RETRY_POLICY,
                declare=[binding(tid)], delivery_mode=2,
            )
        out['store_per_s'] = round(args.n / (time.monotonic() - t0), 1)

        # -- collect via get_task_meta (polling) ---------------------------------------
        if args.collect in ('get', 'both'):
            channel = conn.channel()
            t0 = time.monotonic()
            ok = 0
            for tid in ids:
                b = binding(tid)(channel)
                b.declare()
                prev = latest = None
                for _ in range(1000):
                    acc = b.get(accept=['json'], no_ack=False)
                    if not acc:
                        break
                    if acc.payload['task_id'] == tid:
                        prev, latest = latest, acc
                    if prev:
                        prev.ack()
                        prev = None
                if latest:
                    ok += latest.payload['status'] == 'SUCCESS'
                    latest.requeue()
            out['collect_get_per_s'] = round(args.n / (time.monotonic() - t0), 1)
            out['collect_get_ok'] = ok
            channel.close()

        # -- collect via get_many (one consumer over all queues) -----------------------
        if args.collect in ('consume', 'both'):
            channel = conn.channel()
            pending = set(ids)

            def on_message(message):
                meta = message.decode()
                if meta['status'] in ('SUCCESS', 'FAILURE', 'REVOKED'):
                    pending.discard(meta['task_id'])

            t0 = time.monotonic()
            deadline = t0 + 120
            with Consumer(channel, [binding(t) for t in ids], accept=['json'], no_ack=True,
                          on_message=on_message):
                while pending and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=1)
                    except socket.timeout:
                        pass
            out['collect_consume_per_s'] = round(args.n / (time.monotonic() - t0), 1)
            out['collect_consume_ok'] = args.n - len(pending)
            channel.close()

        out['collect_per_s'] = out.get('collect_consume_per_s', out.get('collect_get_per_s'))

        # -- cleanup -------------------------------------------------------------------
        channel = conn.channel()
        for tid in ids:
            channel.queue_delete(queue=tid.replace('-', ''))
        channel.close()

    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
