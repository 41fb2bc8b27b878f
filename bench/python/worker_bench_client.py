"""The Python Celery 5.2 client of the worker bench (`npm run bench -- --worker`).

Sends N ``bench.add`` tasks to one queue with ``send_task`` (ids ``<prefix>-<i>``), then
collects every result (``--collect rpc``: ``ResultSet.join_native`` over ``rpc://``; ``none``:
send only, the bench watches the worker's own result store). Protocol on stdio: prints
``ready`` once its connection is open, waits for a line on stdin (the bench reads the
worker's CPU first), then prints one JSON line: ``send_s`` (the send loop), ``total_s``
(sends and results), ``ok`` (results that were right).
"""

import argparse
import json
import os
import sys
import time

from celery import Celery
from celery.result import ResultSet


def schedstat():
    """(cpu seconds, run-queue wait seconds) of this thread so far, or (0, 0) off Linux."""
    try:
        with open('/proc/thread-self/schedstat') as f:
            cpu_ns, runq_ns = f.read().split()[:2]
        return int(cpu_ns) / 1e9, int(runq_ns) / 1e9
    except OSError:
        return 0.0, 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--queue', required=True)
    ap.add_argument('--n', type=int, default=2000)
    ap.add_argument('--prefix', required=True)
    ap.add_argument('--collect', choices=['rpc', 'none'], default='rpc')
    ap.add_argument('--timeout', type=float, default=300.0)
    args = ap.parse_args()
    broker = os.environ.get('CELERY_BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//')
    backend = 'rpc://' if args.collect == 'rpc' else None
    app = Celery('worker_bench_client', broker=broker, backend=backend)
    app.conf.update(task_serializer='json', result_serializer='json', accept_content=['json'],
                    broker_heartbeat=0)
    # Open the connection (and the rpc reply consumer) before the clock starts.
    with app.connection_for_write() as conn:
        conn.ensure_connection()
    if backend is not None:
        app.backend.result_consumer.start(None)
    print('ready', flush=True)
    sys.stdin.readline()
    cpu0, runq0 = schedstat()
    t0 = time.monotonic()
    results = [app.send_task('bench.add', (i, i), queue=args.queue, task_id=f'{args.prefix}-{i}')
               for i in range(args.n)]
    t_sent = time.monotonic()
    cpu1, runq1 = schedstat()
    ok = 0
    if backend is not None:
        values = ResultSet(results).join_native(timeout=args.timeout)
        ok = sum(1 for i, v in enumerate(values) if v == 2 * i)
    t_done = time.monotonic()
    send_s = t_sent - t0
    cpu, runq = cpu1 - cpu0, runq1 - runq0
    print(json.dumps({'send_s': send_s, 'total_s': t_done - t0, 'ok': ok, 'send_cpu_s': cpu,
                      'send_runq_s': runq, 'send_sleep_s': max(0.0, send_s - cpu - runq)}),
          flush=True)


if __name__ == '__main__':
    main()
