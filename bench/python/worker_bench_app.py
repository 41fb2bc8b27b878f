"""The Celery 5.2 app of the worker bench (`npm run bench -- --worker`): one task,
``bench.add``, results over ``rpc://`` in JSON, as the Node worker under test stores them.
The bench starts the prefork worker on its own queue with:

    /usr/bin/python3 -m celery -A worker_bench_app worker -Q <queue> -c 2 -l INFO

Broker from env CELERY_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672//).
"""

import os

from celery import Celery

BROKER_URL = os.environ.get('CELERY_BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//')

app = Celery('worker_bench_app', broker=BROKER_URL, backend='rpc://')
app.conf.update(
    result_backend='rpc://',
    task_serializer='json',
    result_serializer='json',
    accept_content=['json'],
    enable_utc=True,
)


@app.task(name='bench.add')
def add(x, y):
    return x + y
