"""The native delayed delivery topology of kombu 5.5/5.6, declared with kombu 5.2's entities.

kombu 5.2 (Debian's) has no ``kombu.transport.native_delayed_delivery``; this peer declares
what that module's two functions declare, as documented in docs/queues.md, so the suites can
compare the broker's view of a Node declaration with a kombu one:

    delayed_delivery_peer.py ladder <classic|quorum>
        the 28 levels (exchange, queue, binding), the level-to-level exchange bindings and
        the delivery exchange, in kombu's order (declare_native_delayed_delivery_exchanges_and_queues)
    delayed_delivery_peer.py bind <queue> <exchange> <exchange type> <routing key> [quorum]
        declares the task queue Queue(queue, Exchange(exchange, type), routing key) and joins it
        to the ladder (bind_queue_to_native_delayed_delivery_exchange)

Broker from env CELERY_BROKER_URL. Prints one JSON line: {"ok": true} or {"error": text}.
"""

import json
import os
import sys

from kombu import Connection, Exchange, Queue

BITS = 28
TOP = BITS - 1
DELIVERY = 'celery_delayed_delivery'


def name_of(level):
    return 'celery_delayed_%d' % level


def ladder(channel, queue_type):
    # Level n holds a message for 2**n seconds when bit n of the delay is set: its queue
    # matches a 1 in that position of the routing key.
    for level in range(TOP, -1, -1):
        skip = '*.' * (TOP - level)
        Exchange(name_of(level), type='topic', channel=channel).declare()
        arguments = {
            'x-queue-type': queue_type,
            'x-overflow': 'reject-publish',
            'x-message-ttl': (2 ** level) * 1000,
            'x-dead-letter-exchange': name_of(level - 1) if level else DELIVERY,
        }
        if queue_type == 'quorum':
            arguments['x-dead-letter-strategy'] = 'at-least-once'
        queue = Queue(name_of(level), queue_arguments=arguments, channel=channel)
        queue.declare()
        queue.bind_to(name_of(level), routing_key=skip + '1.#')
    # A clear bit sends the message straight to the next level down.
    for level in range(TOP, 0, -1):
        skip = '*.' * (TOP - level)
        Exchange(name_of(level - 1), type='topic', channel=channel).bind_to(
            name_of(level), routing_key=skip + '0.#')
    delivery = Exchange(DELIVERY, type='topic', channel=channel)
    delivery.declare()
    delivery.bind_to(name_of(0), routing_key='*.' * TOP + '0.#')


def join(channel, queue_name, exchange_name, exchange_type, routing_key, quorum):
    exchange = Exchange(exchange_name, type=exchange_type, channel=channel)
    arguments = {'x-queue-type': 'quorum'} if quorum else None
    queue = Queue(queue_name, exchange, routing_key, queue_arguments=arguments, channel=channel)
    queue.declare()
    if exchange_type == 'direct':
        return
    key = routing_key if routing_key.startswith('#') else '#.' + routing_key
    exchange.bind_to(DELIVERY, routing_key=key)
    queue.bind_to(exchange_name, routing_key=key)


def main():
    url = os.environ.get('CELERY_BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//')
    with Connection(url) as conn:
        channel = conn.channel()
        try:
            if sys.argv[1] == 'ladder':
                ladder(channel, sys.argv[2])
            else:
                join(channel, sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5],
                     len(sys.argv) > 6 and sys.argv[6] == 'quorum')
            print(json.dumps({'ok': True}))
        except conn.channel_errors + conn.connection_errors as exc:
            print(json.dumps({'error': str(exc)}))


main()
