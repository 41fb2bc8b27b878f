#!/usr/bin/python3
"""Python peer that behaves on the wire as Celery 4.4's ``celery.backends.amqp.AMQPBackend``.

Celery 5 removed the AMQP result backend, so this re-creates it from
``docs/wire.md`` sections 1-5 with kombu (5.2, whose API is a superset of the
kombu 4.6 used by Celery 4.4).  Every subcommand prints JSON lines on stdout.

Exit codes: 0 ok, 2 BacklogLimitExceeded, 3 timeout, 4 ContentDisallowed / decode error,
5 channel error (e.g. 406 PRECONDITION_FAILED on a mismatched declaration), 1 other errors.
"""

import argparse
import importlib
import json
import os
import socket
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.exceptions import ContentDisallowed, DecodeError

READY_STATES = frozenset(['SUCCESS', 'FAILURE', 'REVOKED'])
EXCEPTION_STATES = frozenset(['RETRY', 'FAILURE', 'REVOKED'])

# Celery 4.4 AMQPBackend.retry_policy
RETRY_POLICY = {
    'max_retries': 20,
    'interval_start': 0,
    'interval_step': 1,
    'interval_max': 1,
}

DEFAULT_BROKER = os.environ.get('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672//')


class NoCacheQueue(Queue):
    """Celery's ``NoCacheQueue``: its declaration is never cached by maybe_declare."""

    can_cache_declaration = False


class BacklogLimitExceeded(Exception):
    """Too much state history to fast-forward."""


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=_json_default) + '\n')
    sys.stdout.flush()


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError:
            return {'__bytes_hex__': bytes(value).hex()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, 'isoformat'):
        return value.isoformat()
    return repr(value)


def rkey(task_id):
    """Queue name = routing key = task id without dashes (docs/wire.md section 2)."""
    return task_id.replace('-', '')


class Backend(object):
    """The wire behaviour of Celery 4.4's AMQPBackend, parameterised from the CLI."""

    def __init__(self, opts):
        self.opts = opts
        self.persistent = not opts.transient
        self.delivery_mode = 2 if self.persistent else 1
        self.auto_delete = not opts.no_auto_delete
        self.accept = [a.strip() for a in opts.accept.split(',') if a.strip()]
        self.exchange = Exchange(
            opts.exchange,
            type=opts.exchange_type,
            durable=self.persistent,
            auto_delete=False,
            delivery_mode=self.delivery_mode,
        )
        if opts.no_expires:
            self.queue_arguments = None
        else:
            self.queue_arguments = {'x-expires': int(opts.expires * 1000)}
        self.connection = Connection(opts.broker, heartbeat=0, connect_timeout=10)

    # -- Celery's _create_binding -------------------------------------------------
    def binding(self, task_id):
        name = rkey(task_id)
        return NoCacheQueue(
            name,
            self.exchange,
            name,
            durable=self.persistent,
            auto_delete=self.auto_delete,
            exclusive=False,
            queue_arguments=self.queue_arguments,
        )

    # -- encoding of results ------------------------------------------------------
    @staticmethod
    def prepare_exception(exc, legacy=False):
        if legacy:
            # Celery 3.1: {'exc_type': type(exc).__name__, 'exc_message': text_t(exc)}
            return {'exc_type': type(exc).__name__, 'exc_message': str(exc)}
        exctype = type(exc)
        return {
            'exc_type': getattr(exctype, '__qualname__', exctype.__name__),
            'exc_message': list(exc.args),
            'exc_module': exctype.__module__,
        }

    # -- store_result -------------------------------------------------------------
    def store(self, producer, task_id, status, result, traceback=None, children=None,
              correlation_id=None, serializer='json', compression=None, extended_request=None):
        routing_key = rkey(task_id)
        if not routing_key:
            return False
        payload = {
            'task_id': task_id,
            'status': status,
            'result': result,
            'traceback': traceback,
            'children': children,
        }
        if extended_request is not None:
            # Celery 4.4.7 store_result with result_extended (celery/backends/amqp.py 121-129),
            # reading the request's attributes the same way (a dict stands for the request).
            request = extended_request
            payload['name'] = request.get('task_name')
            payload['args'] = request.get('args')
            payload['kwargs'] = request.get('kwargs')
            payload['worker'] = request.get('hostname')
            payload['retries'] = request.get('retries')
            delivery_info = request.get('delivery_info')
            payload['queue'] = delivery_info.get('routing_key') if delivery_info else None
        producer.publish(
            payload,
            exchange=self.exchange,
            routing_key=routing_key,
            correlation_id=correlation_id or task_id,
            serializer=serializer,
            compression=compression,
            retry=True,
            retry_policy=RETRY_POLICY,
            declare=[self.binding(task_id)],
            delivery_mode=self.delivery_mode,
        )
        return True

    # -- get_task_meta ------------------------------------------------------------
    def get_task_meta(self, task_id, backlog_limit=1000):
        channel = self.connection.channel()
        try:
            binding = self.binding(task_id)(channel)
            binding.declare()
            prev = latest = acc = None
            for _ in range(backlog_limit):
                acc = binding.get(accept=self.accept, no_ack=False)
                if not acc:
                    break
                if acc.payload['task_id'] == task_id:
                    prev, latest = latest, acc
                if prev:
                    prev.ack()
                    prev = None
            else:
                raise BacklogLimitExceeded(task_id)
            if latest:
                payload = latest.payload
                props = message_properties(latest)
                latest.requeue()
                return payload, props
            return {'status': 'PENDING', 'result': None}, None
        finally:
            channel.close()

    # -- consume / get_many -------------------------------------------------------
    def wait_many(self, task_ids, timeout, on_ready):
        """One no_ack consumer over all per-task queues; calls on_ready(task_id, meta, props)."""
        wanted = set(task_ids)
        done = set()
        channel = self.connection.channel()
        errors = []

        def on_message(message):
            try:
                meta = message.decode()
            except Exception as exc:  # ContentDisallowed / DecodeError
                errors.append(exc)
                return
            tid = meta.get('task_id') if isinstance(meta, dict) else None
            if meta.get('status') in READY_STATES and tid in wanted and tid not in done:
                done.add(tid)
                on_ready(tid, meta, message_properties(message))

        queues = [self.binding(t) for t in task_ids]
        consumer = Consumer(channel, queues, accept=self.accept, no_ack=True,
                            on_message=on_message)
        deadline = time.monotonic() + timeout
        try:
            with consumer:
                while len(done) < len(wanted):
                    if errors:
                        raise errors[0]
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        self.connection.drain_events(timeout=min(remaining, 1.0))
                    except socket.timeout:
                        pass
                if errors:
                    raise errors[0]
        finally:
            try:
                channel.close()
            except Exception:
                pass
        return sorted(wanted - done)


def message_properties(message):
    props = dict(message.properties or {})
    return {
        'content_type': message.content_type,
        'content_encoding': message.content_encoding,
        'headers': message.headers,
        'delivery_mode': props.get('delivery_mode'),
        'correlation_id': props.get('correlation_id'),
        'priority': props.get('priority'),
        'reply_to': props.get('reply_to'),
        'redelivered': (message.delivery_info or {}).get('redelivered'),
        'routing_key': (message.delivery_info or {}).get('routing_key'),
        'exchange': (message.delivery_info or {}).get('exchange'),
    }


def build_result(args, status, result):
    """The result value to store; a real exception instance when --exception-type is given."""
    if status in EXCEPTION_STATES and args.exception_type:
        exc_args = result if isinstance(result, list) else [result]
        exc = make_exception(args.exception_type, args.exception_module, exc_args)
        return Backend.prepare_exception(exc, legacy=args.legacy_exception)
    return result


def make_exception(type_name, module_name, exc_args):
    cls = None
    try:
        module = importlib.import_module(module_name or 'builtins')
        cls = getattr(module, type_name, None)
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        # A user-defined exception class that only exists on the "worker" side.
        cls = type(type_name, (Exception,), {'__module__': module_name or '__main__'})
    return cls(*exc_args)


def store_one(backend, producer, args, rec):
    status = rec.get('status', 'SUCCESS')
    result = rec.get('result')
    if rec.get('exception_type'):
        exc = make_exception(rec['exception_type'], rec.get('exception_module', 'builtins'),
                             result if isinstance(result, list) else [result])
        result = Backend.prepare_exception(exc, legacy=rec.get('legacy_exception',
                                                               args.legacy_exception))
    else:
        result = build_result(args, status, result)
    backend.store(
        producer,
        rec['task_id'],
        status,
        result,
        traceback=rec.get('traceback', args.traceback),
        children=rec.get('children', args.children_value),
        correlation_id=rec.get('correlation_id', args.correlation_id),
        serializer=rec.get('serializer', args.serializer),
        compression=rec.get('compression', args.compression),
        extended_request=json.loads(args.result_extended) if args.result_extended else None,
    )


# -- subcommands ------------------------------------------------------------------

def cmd_store(backend, args):
    rec = {'task_id': args.task_id, 'status': args.status, 'result': json.loads(args.result_json)}
    with backend.connection as conn:
        # Celery acquires a pooled producer; a fresh Producer per publish is equivalent.
        producer = Producer(conn)
        store_one(backend, producer, args, rec)
    emit({'stored': args.task_id, 'queue': rkey(args.task_id), 'status': args.status})
    return 0


def cmd_store_many(backend, args):
    count = 0
    start = time.monotonic()
    with backend.connection as conn:
        producer = Producer(conn)
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            store_one(backend, producer, args, json.loads(line))
            count += 1
    elapsed = time.monotonic() - start
    emit({'stored': count, 'elapsed_s': round(elapsed, 4)})
    return 0


def cmd_get(backend, args):
    with backend.connection:
        try:
            meta, props = backend.get_task_meta(args.task_id, backlog_limit=args.backlog_limit)
        except BacklogLimitExceeded:
            emit({'error': 'BacklogLimitExceeded', 'task_id': args.task_id})
            return 2
    emit(meta)
    if args.show_properties:
        emit({'properties': props})
    return 0


def cmd_wait(backend, args):
    results = []
    with backend.connection:
        missing = backend.wait_many([args.task_id], args.timeout,
                                    lambda tid, meta, props: results.append((meta, props)))
    if missing:
        emit({'error': 'TimeoutError', 'message': 'The operation timed out.'})
        return 3
    meta, props = results[0]
    emit(meta)
    if args.show_properties:
        emit({'properties': props})
    return 0


def cmd_wait_many(backend, args):
    def on_ready(tid, meta, props):
        line = {'task_id': tid, 'meta': meta}
        if args.show_properties:
            line['properties'] = props
        emit(line)

    with backend.connection:
        missing = backend.wait_many(args.task_ids, args.timeout, on_ready)
    if missing:
        emit({'error': 'TimeoutError', 'missing': missing})
        return 3
    return 0


def cmd_inspect_queue(backend, args):
    name = rkey(args.task_id)
    with backend.connection as conn:
        channel = conn.channel()
        try:
            _, messages, consumers = channel.queue_declare(queue=name, passive=True)
        except conn.channel_errors:
            emit({'queue': name, 'exists': False})
            return 0
        try:
            channel.close()
        except Exception:
            pass
    emit({'queue': name, 'exists': True, 'messages': messages, 'consumers': consumers})
    return 0


def cmd_declare(backend, args):
    """Declare exchange + queue + binding (as the worker does before a publish) only."""
    with backend.connection as conn:
        channel = conn.channel()
        backend.binding(args.task_id)(channel).declare()
        channel.close()
    emit({'declared': rkey(args.task_id)})
    return 0


def cmd_delete_queue(backend, args):
    deleted = []
    with backend.connection as conn:
        for tid in args.task_ids:
            channel = conn.channel()
            try:
                channel.queue_delete(queue=rkey(tid))
                deleted.append(rkey(tid))
            except conn.channel_errors:
                pass
            try:
                channel.close()
            except Exception:
                pass
        if args.with_exchange:
            channel = conn.channel()
            try:
                channel.exchange_delete(exchange=args.exchange)
            except conn.channel_errors:
                pass
    emit({'deleted': deleted})
    return 0


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--broker', default=DEFAULT_BROKER, help='broker URL (env AMQP_URL)')
    common.add_argument('--exchange', default='celeryresults')
    common.add_argument('--exchange-type', default='direct')
    common.add_argument('--transient', action='store_true',
                        help='result_persistent=False: durable false, delivery_mode 1')
    common.add_argument('--expires', type=float, default=86400.0,
                        help='result_expires in seconds (x-expires)')
    common.add_argument('--no-expires', action='store_true', help='no x-expires argument')
    common.add_argument('--no-auto-delete', action='store_true')
    common.add_argument('--accept', default='json,msgpack,yaml',
                        help='comma-separated accepted serializers')
    common.add_argument('--show-properties', action='store_true',
                        help='also print the message properties as a second line')

    pub = argparse.ArgumentParser(add_help=False)
    pub.add_argument('--traceback', default=None)
    pub.add_argument('--serializer', default='json', choices=['json', 'msgpack', 'yaml', 'pickle'])
    pub.add_argument('--compression', default=None, choices=['zlib', 'gzip', 'bzip2'])
    pub.add_argument('--correlation-id', default=None)
    pub.add_argument('--children', default=None, help='children as JSON')
    pub.add_argument('--exception-type', default=None)
    pub.add_argument('--exception-module', default='builtins')
    pub.add_argument('--legacy-exception', action='store_true',
                     help='Celery 3.1 form {exc_type, exc_message: str}')
    pub.add_argument('--result-extended', default=None, metavar='REQUEST_JSON',
                     help="result_extended: the request's fields as JSON (task_name, args, "
                          'kwargs, hostname, retries, delivery_info)')

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)

    p = sub.add_parser('store', parents=[common, pub])
    p.add_argument('task_id')
    p.add_argument('status')
    p.add_argument('result_json')
    p.set_defaults(func=cmd_store)

    p = sub.add_parser('store-many', parents=[common, pub],
                       help='JSON lines on stdin: {task_id, status, result, ...}')
    p.set_defaults(func=cmd_store_many)

    p = sub.add_parser('get', parents=[common])
    p.add_argument('task_id')
    p.add_argument('--backlog-limit', type=int, default=1000)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser('wait', parents=[common])
    p.add_argument('task_id')
    p.add_argument('--timeout', type=float, default=10.0)
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser('wait-many', parents=[common])
    p.add_argument('task_ids', nargs='+')
    p.add_argument('--timeout', type=float, default=10.0)
    p.set_defaults(func=cmd_wait_many)

    p = sub.add_parser('inspect-queue', parents=[common])
    p.add_argument('task_id')
    p.set_defaults(func=cmd_inspect_queue)

    p = sub.add_parser('declare', parents=[common])
    p.add_argument('task_id')
    p.set_defaults(func=cmd_declare)

    p = sub.add_parser('delete-queue', parents=[common])
    p.add_argument('task_ids', nargs='*')
    p.add_argument('--with-exchange', action='store_true',
                   help='also delete the result exchange (--exchange)')
    p.set_defaults(func=cmd_delete_queue)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.children_value = json.loads(args.children) if getattr(args, 'children', None) else None
    for name in ('traceback', 'serializer', 'compression', 'correlation_id',
                 'exception_type', 'exception_module', 'legacy_exception', 'result_extended'):
        if not hasattr(args, name):
            setattr(args, name, None)
    backend = Backend(args)
    try:
        return args.func(backend, args)
    except (ContentDisallowed, DecodeError) as exc:
        emit({'error': type(exc).__name__, 'message': str(exc)})
        return 4
    except backend.connection.channel_errors as exc:
        emit({'error': type(exc).__name__, 'message': str(exc),
              'code': getattr(exc, 'code', None)})
        return 5


if __name__ == '__main__':
    sys.exit(main())
