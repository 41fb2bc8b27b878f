#!/usr/bin/python3
"""Python's own Celery 5 client, sequential round trips over rpc:// (the bench's --rpc-latency).

    celery5_rpc_latency.py N --queue Q [--warmup W] [--timeout S]

Sends ``add(i, i)`` and waits for its result (``send_task`` then ``get``), one at a time, W
times to warm up and then N times measured. Prints one JSON line: {"n", "warmup",
"latencies_ms": [...], "cpu_ms_per_round_trip"} where each latency is the time from before ``send_task`` to the value
returned by ``get``, in milliseconds, and the CPU time is this process's (user + system) over
the measured round trips. The app (broker, rpc:// backend, JSON) is
test/interop/peers/celery_app.py, the one the worker runs; CELERY_BROKER_URL and CELERY_QUEUE
come from the environment as there.
"""

import argparse
import json
import os
import sys
import time

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'interop', 'peers')
sys.path.insert(0, os.path.abspath(PEERS))

from celery_app import app  # noqa: E402


def round_trip(i, queue, timeout):
    t0 = time.perf_counter()
    value = app.send_task('add', args=[i, i], queue=queue).get(timeout=timeout)
    elapsed = (time.perf_counter() - t0) * 1000.0
    if value != i + i:
        raise SystemExit('wrong result from the Celery worker: %r for add(%d, %d)' % (value, i, i))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description='Celery 5 rpc:// sequential round trips')
    parser.add_argument('n', type=int)
    parser.add_argument('--queue', default=os.environ.get('CELERY_QUEUE', 'celery'))
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args()
    try:
        for i in range(args.warmup):
            round_trip(i, args.queue, args.timeout)
        cpu0 = time.process_time()
        latencies = [round(round_trip(i, args.queue, args.timeout), 4) for i in range(args.n)]
        cpu_ms = (time.process_time() - cpu0) * 1000.0
    finally:
        app.close()
    sys.stdout.write(json.dumps({'n': args.n, 'warmup': args.warmup, 'latencies_ms': latencies,
                                 'cpu_ms_per_round_trip': round(cpu_ms / max(args.n, 1), 4)}) + '\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
