/**
 * The worker bench's floor: the least an amqplib program does to serve `bench.add` with the
 * guarantees this library's Worker gives (`node amqplib-worker-child.js <broker> <queue>
 * <prefetch>`). It consumes with the Worker's prefetch, decodes the protocol-2 JSON body,
 * publishes Celery's result meta to the task's `reply_to` (rpc://) on a confirm channel and
 * acks the task once that publish is confirmed. No validation, events, remote control, logs,
 * time limits or retries: what the Worker costs above this is what those cost. Prints
 * `ready` once it consumes.
 *
 * @module
 */
import { connect } from 'amqplib';
import type { ConsumeMessage } from 'amqplib';

const [broker = '', queue = '', prefetchText = '32'] = process.argv.slice(2);
const connection = await connect(broker, { noDelay: true });
const tasks = await connection.createChannel();
const results = await connection.createConfirmChannel();
// Celery's declaration of a task queue: durable, on a direct exchange of the same name.
await tasks.assertExchange(queue, 'direct', { durable: true });
await tasks.assertQueue(queue, { durable: true });
await tasks.bindQueue(queue, queue, queue);
await tasks.prefetch(Number(prefetchText), true);

function serve(message: ConsumeMessage | null): void {
  if (message === null) return;
  const [args] = JSON.parse(message.content.toString('utf8')) as [unknown[]];
  const id = String(message.properties.headers?.['id'] ?? message.properties.correlationId);
  const meta = {
    status: 'SUCCESS',
    result: Number(args[0]) + Number(args[1]),
    traceback: null,
    children: [],
    date_done: new Date().toISOString(),
    task_id: id,
  };
  results.publish(
    '',
    String(message.properties.replyTo),
    Buffer.from(JSON.stringify(meta)),
    {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      correlationId: message.properties.correlationId as string,
      deliveryMode: 1,
      headers: {},
    },
    (err) => {
      if (err === null || err === undefined) tasks.ack(message);
      else tasks.nack(message, false, true);
    },
  );
}

await tasks.consume(queue, serve);
process.on('SIGTERM', () => {
  connection.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
process.stdout.write('ready\n');
