#!/usr/bin/python3
"""Python Celery 5 client on ``rpc://`` that sends tasks by name and prints result metas.

    send TASK_NAME ARGS_JSON [--kwargs JSON] --queue Q [--timeout S] [--task-id ID] [--events]
         [--countdown S] [--expires S] [--time-limit S] [--soft-time-limit S] [--propagate]
         [--headers JSON] [--extended]
        one line {"task_id", "status", "result", "traceback", "elapsed_s"} (and, with --events,
        one {"event": meta} line per intermediate state message received first). elapsed_s is
        the time from before send_task to the result. With --propagate, get() raises the task's
        exception as Celery does and the line has "raised" (the exception caught) instead of
        "result". Exit 3 on timeout. --headers adds raw message headers (send_task's headers=,
        e.g. Celery 5.3's stamped_headers/stamps, which 5.2 cannot send otherwise);
        --extended adds the result_extended fields as AsyncResult reads them (name, args,
        kwargs, worker, retries, queue, date_done as ISO text) and the raw meta.
    send-many N [--task add|echo] --queue Q [--timeout S]
        sends N tasks (add(i, i) / echo(i)), collects them as a group with join_native
        (the backend's get_many) and prints {"n", "ok", "send_per_s", "roundtrip_per_s", ...}.

Exceptions are printed as {"exc_type", "exc_message": [args], "exc_module"}.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from celery.exceptions import TimeoutError as CeleryTimeoutError  # noqa: E402
from celery.result import ResultSet  # noqa: E402

from celery_app import app  # noqa: E402


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=repr) + '\n')
    sys.stdout.flush()


def plain(value):
    if isinstance(value, BaseException):
        t = type(value)
        return {'exc_type': t.__name__, 'exc_message': list(value.args), 'exc_module': t.__module__}
    return value


def cmd_send(args):
    options = {'queue': args.queue}
    if args.task_id:
        options['task_id'] = args.task_id
    if args.countdown is not None:
        options['countdown'] = args.countdown
    if args.expires is not None:
        options['expires'] = args.expires
    if args.time_limit is not None:
        options['time_limit'] = args.time_limit
    if args.soft_time_limit is not None:
        options['soft_time_limit'] = args.soft_time_limit
    if args.headers:
        options['headers'] = json.loads(args.headers)
    t0 = time.monotonic()
    res = app.send_task(args.task_name, args=json.loads(args.args_json),
                        kwargs=json.loads(args.kwargs), **options)
    on_message = (lambda meta: emit({'event': meta})) if args.events else None
    try:
        res.get(timeout=args.timeout, propagate=args.propagate, on_message=on_message)
    except CeleryTimeoutError:
        emit({'task_id': res.id, 'error': 'TimeoutError', 'status': res.state})
        return 3
    except Exception as exc:  # what get() raised: the task's own exception
        emit({'task_id': res.id, 'status': res.state, 'raised': plain(exc),
              'traceback': res.traceback, 'elapsed_s': round(time.monotonic() - t0, 4)})
        return 0
    line = {'task_id': res.id, 'status': res.state, 'result': plain(res.result),
            'traceback': res.traceback, 'elapsed_s': round(time.monotonic() - t0, 4)}
    if args.extended:
        done = res.date_done
        line['extended'] = {'name': res.name, 'args': res.args, 'kwargs': res.kwargs,
                            'worker': res.worker, 'retries': res.retries, 'queue': res.queue,
                            'date_done': done.isoformat() if done else None}
        line['meta'] = {k: v for k, v in res._get_task_meta().items() if k != 'children'}
    emit(line)
    return 0


def cmd_send_many(args):
    n = args.n
    make_args = (lambda i: [i, i]) if args.task == 'add' else (lambda i: [i])
    expect = (lambda i: i + i) if args.task == 'add' else (lambda i: i)
    t0 = time.monotonic()
    results = [app.send_task(args.task, args=make_args(i), queue=args.queue) for i in range(n)]
    t1 = time.monotonic()
    rs = ResultSet(results)
    try:
        values = rs.join_native(timeout=args.timeout, propagate=False)
    except CeleryTimeoutError:
        emit({'n': n, 'error': 'TimeoutError'})
        return 3
    t2 = time.monotonic()
    ok = sum(1 for i, v in enumerate(values) if v == expect(i))
    emit({'n': n, 'ok': ok, 'send_s': round(t1 - t0, 4), 'total_s': round(t2 - t0, 4),
          'send_per_s': round(n / max(t1 - t0, 1e-9), 1),
          'roundtrip_per_s': round(n / max(t2 - t0, 1e-9), 1)})
    return 0 if ok == n else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description='Celery 5 rpc:// client peer')
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('send')
    p.add_argument('task_name')
    p.add_argument('args_json', nargs='?', default='[]')
    p.add_argument('--kwargs', default='{}')
    p.add_argument('--queue', default=os.environ.get('CELERY_QUEUE', 'celery'))
    p.add_argument('--timeout', type=float, default=10.0)
    p.add_argument('--task-id', default=None)
    p.add_argument('--events', action='store_true',
                   help='print each state message received as {"event": meta}')
    p.add_argument('--countdown', type=float, default=None, help='send_task countdown, seconds')
    p.add_argument('--expires', type=float, default=None,
                   help='send_task expires, seconds from now (negative: already past)')
    p.add_argument('--time-limit', type=float, default=None, help='send_task time_limit, seconds')
    p.add_argument('--soft-time-limit', type=float, default=None,
                   help='send_task soft_time_limit, seconds')
    p.add_argument('--propagate', action='store_true',
                   help='get(propagate=True): print the exception get() raises')
    p.add_argument('--headers', default=None, help='extra message headers, JSON')
    p.add_argument('--extended', action='store_true',
                   help='also print the result_extended fields AsyncResult reads')
    p.set_defaults(func=cmd_send)
    p = sub.add_parser('send-many')
    p.add_argument('n', type=int)
    p.add_argument('--task', default='add', choices=['add', 'echo'])
    p.add_argument('--queue', default=os.environ.get('CELERY_QUEUE', 'celery'))
    p.add_argument('--timeout', type=float, default=60.0)
    p.set_defaults(func=cmd_send_many)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    finally:
        app.close()


if __name__ == '__main__':
    sys.exit(main())
