"""Declares an rpc:// reply queue the way a Celery client does, with Celery 5.2's RPCBackend.

    rpc_reply_queue.py <queue name> main|5.2 <result_expires seconds>

``main`` declares the binding of Celery's main branch (celery/backends/rpc.py after commit
323f21d, "RabbitMQ 4.3.0 compatibility for transient queues"): durable=True, auto_delete=True,
expires=result_expires. ``5.2`` declares Celery 5.2's own binding (durable=False). The queue
name stands for the app's oid. Prints one JSON line: {"declared": name} or {"error": text}.

Broker from env CELERY_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672//).
"""

import json
import os
import sys

from celery import Celery
from celery.backends.rpc import RPCBackend

NAME, FLAVOUR, EXPIRES = sys.argv[1], sys.argv[2], float(sys.argv[3])
BROKER_URL = os.environ.get('CELERY_BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//')


class MainRPCBackend(RPCBackend):
    """Celery 5.2's RPCBackend with the reply queue of Celery's main branch."""

    @property
    def oid(self):
        return NAME

    @property
    def binding(self):
        # Celery main, celery/backends/rpc.py RPCBackend.binding (commit 323f21d).
        return self.Queue(
            self.oid, self.exchange, self.oid,
            durable=True,
            auto_delete=True,
            expires=self.expires,
        )


class OwnRPCBackend(RPCBackend):
    """Celery 5.2's RPCBackend as it is (durable=False), under the given name."""

    @property
    def oid(self):
        return NAME


app = Celery('rpc_reply_queue', broker=BROKER_URL)
app.conf.update(result_expires=EXPIRES, broker_heartbeat=0)
backend = (MainRPCBackend if FLAVOUR == 'main' else OwnRPCBackend)(app)
with app.connection_for_write() as conn:
    try:
        backend.binding(conn.default_channel).declare()
        print(json.dumps({'declared': NAME}))
    except conn.channel_errors as exc:
        print(json.dumps({'error': str(exc)}))
