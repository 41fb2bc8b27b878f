#!/usr/bin/python3
"""The ``celery`` command with Celery 4's ``amqp://`` result backend put back.

Celery 5 removed ``celery.backends.amqp`` but still maps ``result_backend='amqp://'`` to it.
This launcher registers :class:`AMQPBackend` under that module name and runs the ``celery``
command, so that a tasks module written for Celery 4.x (``Celery('tasks',
backend='amqp://')``) runs unchanged on Debian's Celery 5.2 and stores its results as Celery
4.4's AMQPBackend does (docs/wire.md sections 1-3; the store is amqp_backend_peer.Backend's,
which the interop suites check against this library).  Only the worker side (storing) is
needed: the Node client reads the results.

    /usr/bin/python3 celery4_amqp.py -A tasks worker -P solo -l info
"""

import os
import sys
import types

from celery.backends.base import Backend

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amqp_backend_peer  # noqa: E402  (the peers folder, whatever the working directory)


class AMQPBackend(Backend):
    """The store side of Celery 4.4's AMQPBackend, configured from the app's result_* settings."""

    persistent = True
    supports_autoexpire = True

    def __init__(self, app, url=None, **kwargs):
        super().__init__(app, **kwargs)
        conf = self.app.conf
        expires = self.prepare_expires(None, type=int)
        # The peer's Backend takes its settings as command-line options (its own connection,
        # which kombu opens lazily, stays unused: the worker's producer pool publishes).
        self._wire = amqp_backend_peer.Backend(types.SimpleNamespace(
            broker=conf.broker_url,
            exchange=conf.result_exchange,
            exchange_type=conf.result_exchange_type,
            transient=not self.prepare_persistent(None),
            no_auto_delete=False,
            accept='json',
            expires=expires or 0,
            no_expires=not expires,
        ))

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        with self.app.amqp.producer_pool.acquire(block=True) as producer:
            self._wire.store(
                producer,
                task_id,
                state,
                result,
                traceback=traceback,
                children=self.current_task_children(request),
                correlation_id=getattr(request, 'correlation_id', None),
                serializer=self.serializer,
            )
        return result

    def _get_task_meta_for(self, task_id):
        raise NotImplementedError('this Celery 4 stand-in only stores results')


if __name__ == '__main__':
    module = types.ModuleType('celery.backends.amqp')
    module.AMQPBackend = AMQPBackend
    sys.modules['celery.backends.amqp'] = module
    from celery.__main__ import main

    main()
