"""A real Celery 5 app used by the interop suites (worker side and client side).

Broker from env CELERY_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672//), results
over ``rpc://`` in JSON.  The task queue comes from env CELERY_QUEUE so every test run can
use its own queue; CELERY_QUEUE_TYPE=quorum makes it a quorum queue (see below).  Start a worker with:

    /usr/bin/python3 -m celery -A celery_app worker -Q "$CELERY_QUEUE" -P threads -c 4 \
        --without-gossip --without-mingle --without-heartbeat -l info
"""

import datetime
import os
import time

from celery import Celery
from kombu import Exchange, Queue

BROKER_URL = os.environ.get('CELERY_BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//')
QUEUE = os.environ.get('CELERY_QUEUE', 'celery')

# CELERY_RESULT_SERIALIZER=pickle makes a Celery 3.1-style worker (pickled results).
RESULT_SERIALIZER = os.environ.get('CELERY_RESULT_SERIALIZER', 'json')
ACCEPT = ['json'] if RESULT_SERIALIZER == 'json' else [RESULT_SERIALIZER, 'json']
# CELERY_ACCEPT_CONTENT=pickle,json lets the worker take pickled task messages (3.1's default).
if os.environ.get('CELERY_ACCEPT_CONTENT'):
    ACCEPT = [a.strip() for a in os.environ['CELERY_ACCEPT_CONTENT'].split(',') if a.strip()]

app = Celery('celery_app', broker=BROKER_URL, backend='rpc://')
app.conf.update(
    result_backend='rpc://',
    result_serializer=RESULT_SERIALIZER,
    task_serializer='json',
    accept_content=ACCEPT,
    result_accept_content=ACCEPT,
    task_default_queue=QUEUE,
    task_default_routing_key=QUEUE,
    # One message at a time per worker thread: tests see tasks start in send order.
    worker_prefetch_multiplier=int(os.environ.get('CELERY_PREFETCH', '4')),
    task_acks_late=False,
    worker_hijack_root_logger=False,
    broker_heartbeat=0,
    enable_utc=True,
)

# CELERY_QUEUE_TYPE=quorum puts the task queue on a RabbitMQ quorum queue, as Celery 5.5's
# task_default_queue_type='quorum' would (Celery 5.2 has no such setting): the same
# Queue(name, Exchange(name), name) as Celery's default queue, with the queue argument.
if os.environ.get('CELERY_QUEUE_TYPE') == 'quorum':
    app.conf.task_queues = (
        Queue(QUEUE, Exchange(QUEUE), QUEUE, queue_arguments={'x-queue-type': 'quorum'}),
    )
    # Celery 5.2's Tasks step applies the prefetch channel-wide on RabbitMQ >= 3.3
    # (qos_global = not connection.qos_semantics_matches_spec), which RabbitMQ refuses on a
    # quorum queue (540 NOT_IMPLEMENTED "does not support global qos"). Celery 5.5 sets
    # qos_global = False when it detects a quorum queue (worker_detect_quorum_queues): saying
    # the semantics match the spec gives 5.2 the same per-consumer prefetch. Its only reader
    # is that step.
    from kombu.transport import pyamqp

    pyamqp.Transport.qos_semantics_matches_spec = lambda self, connection: True


# CELERY_RESULT_EXTENDED=1: result_extended, with the RPC backend storing it as Celery's main
# branch does (commit 7c5d9a62d: the reply is _get_result_meta plus task_id); Celery 5.2's
# RPC backend ignores the setting.
if os.environ.get('CELERY_RESULT_EXTENDED') == '1':
    from celery.backends.rpc import RPCBackend

    def _to_result(self, task_id, state, result, traceback, request):
        meta = self._get_result_meta(result=self.encode_result(result, state),
                                     state=state, traceback=traceback, request=request)
        meta['task_id'] = task_id
        return meta

    RPCBackend._to_result = _to_result
    app.conf.result_extended = True


@app.task(name='add')
def add(x, y):
    return x + y


@app.task(name='echo')
def echo(x):
    return x


@app.task(name='mixed')
def mixed():
    # Values JSON cannot carry as such: a tuple, an aware datetime, a big int.
    return {'n': 7, 's': 'text', 'pair': (1, 'a'),
            'at': datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
            'big': 2 ** 100}


@app.task(name='fail')
def fail(msg):
    raise ValueError(msg)


@app.task(name='sleep_then')
def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


@app.task(name='progress', bind=True)
def progress(self, n):
    for i in range(1, n + 1):
        self.update_state(state='PROGRESS', meta={'current': i, 'total': n})
        time.sleep(0.05)
    return n


@app.task(name='started', track_started=True)
def started(seconds=0.5):
    time.sleep(seconds)
    return 'started'


@app.task(name='kinds')
def kinds(*args, **kwargs):
    # What Python really received: each value's type and repr.
    return {'args': [[type(a).__name__, repr(a)] for a in args],
            'kwargs': {k: [type(v).__name__, repr(v)] for k, v in kwargs.items()}}


@app.task(name='whoami', bind=True)
def whoami(self):
    r = self.request
    return {'id': r.id, 'task': r.task, 'group': r.group, 'retries': r.retries,
            'reply_to': r.reply_to, 'correlation_id': r.correlation_id,
            'timelimit': list(r.timelimit) if r.timelimit else None,
            'eta': str(r.eta) if r.eta else None}
