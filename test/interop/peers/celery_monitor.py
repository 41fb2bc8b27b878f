#!/usr/bin/python3
"""Celery 5 event monitor peer: what `celery events` and Flower see.

    events --seconds S [--node NAME]
        Consumes the celeryev exchange with Celery's own EventReceiver (wakeup: it asks every
        worker for a heartbeat first) and feeds a celery.events.state.State. Prints
        {"ready": true} once consuming, then {"event": {...}} for each event (only NAME's with
        --node), and after S seconds one {"state": {...}} line: the alive workers and, per
        task, its state, name, result, exception and worker as State tracked them.
"""

import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from celery.events.receiver import EventReceiver  # noqa: E402

from celery_app import app  # noqa: E402


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=repr) + '\n')
    sys.stdout.flush()


class Receiver(EventReceiver):
    def on_consume_ready(self, connection, channel, consumers, wakeup=True, **kwargs):
        super().on_consume_ready(connection, channel, consumers, wakeup=wakeup, **kwargs)
        emit({'ready': True})


def cmd_events(args):
    state = app.events.State()

    def on_event(event):
        state.event(event)
        if args.node is None or event.get('hostname') == args.node:
            emit({'event': event})

    deadline = time.monotonic() + args.seconds
    with app.connection() as conn:
        recv = Receiver(conn, handlers={'*': on_event}, app=app)
        try:
            for _ in recv.itercapture(limit=None, timeout=args.seconds, wakeup=True):
                if time.monotonic() > deadline:
                    break
        except socket.timeout:
            pass
    workers = {
        w.hostname: {'alive': w.alive, 'heartbeats': len(w.heartbeats), 'freq': w.freq,
                     'sw_ident': w.sw_ident, 'processed': w.processed, 'active': w.active}
        for w in state.workers.values()
    }
    tasks = {
        t.uuid: {'state': t.state, 'name': t.name, 'result': t.result, 'exception': t.exception,
                 'worker': t.worker.hostname if t.worker else None}
        for t in state.tasks.values()
    }
    alive = [w.hostname for w in state.alive_workers()]
    emit({'state': {'alive': alive, 'workers': workers, 'tasks': tasks}})
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description='Celery 5 event monitor peer')
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('events')
    p.add_argument('--seconds', type=float, default=5.0)
    p.add_argument('--node', default=None)
    p.set_defaults(func=cmd_events)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
