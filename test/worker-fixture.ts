/**
 * Helpers of the Worker suites (unit on memory://, integration and interop on RabbitMQ): a
 * client app and a worker app on one unique queue, sending a task in Celery's units
 * (seconds), the states the worker stores, raw publishes for hostile messages, and a
 * listener on the `celeryev` exchange.
 *
 * Every call of `app.sendTask` of these suites goes through {@link send}.
 *
 * @module
 */
import { Celery } from '../src/celery/app.js';
import type { CeleryAppSettings } from '../src/celery/app.js';
import type { CeleryEvent } from '../src/celery/events.js';
import type { TaskDefinition, TaskHandler, WorkerOptions } from '../src/celery/worker.js';
import { Worker } from '../src/celery/worker.js';
import { Connection } from '../src/kombu/connection.js';
import { Consumer } from '../src/kombu/consumer.js';
import { Exchange } from '../src/kombu/exchange.js';
import { Queue } from '../src/kombu/queue.js';
import { silentLogger } from '../src/logger.js';
import type { FieldTable, MessageProperties } from '../src/transport/types.js';
import type { Cleanups } from './fixture.js';
import { uid } from './fixture.js';

/** A client app and a worker (with its own app) on one queue. */
export interface WorkerSetup {
  queue: string;
  client: Celery;
  server: Celery;
  worker: Worker;
}

/**
 * Starts a worker (silent logger) on a fresh queue of `url`, with a client app on its own
 * connection; everything is closed and the queue deleted by `cleanups`.
 */
export async function startWorker(
  cleanups: Cleanups,
  tasks: Record<string, TaskHandler | TaskDefinition>,
  options: Omit<WorkerOptions, 'tasks'> & {
    /** Settings of both apps (the queue is added). */
    appSettings?: Partial<CeleryAppSettings>;
    /** Backend URL of both apps. @default 'rpc://' */
    appBackend?: string;
  } = {},
  url = 'memory://',
): Promise<WorkerSetup> {
  const { appSettings, appBackend, ...workerOptions } = options;
  const queue = options.queue ?? uid('wq');
  const settings = { ...appSettings, task_default_queue: queue };
  const backend = appBackend === undefined ? {} : { backend: appBackend };
  const client = new Celery({ broker: url, settings, logger: silentLogger, ...backend });
  const server = new Celery({ broker: url, settings, logger: silentLogger, ...backend });
  const worker = new Worker(server, {
    logger: silentLogger,
    heartbeat: false,
    remoteControl: false,
    ...workerOptions,
    queue,
    tasks,
  });
  cleanups.push(() => dropQueue(url, queue));
  cleanups.push(() => client.close());
  cleanups.push(() => server.close());
  cleanups.push(() => worker.close({ cold: true }));
  await worker.start();
  return { queue, client, server, worker };
}

/** Deletes a queue and its same-named exchange on a connection of its own. */
export async function dropQueue(url: string, queue: string): Promise<void> {
  const conn = new Connection(url);
  try {
    const ch = await conn.channel();
    await ch.deleteQueue({ queue: queue }).catch(() => undefined);
    await ch.deleteExchange({ exchange: queue }).catch(() => undefined);
  } finally {
    await conn.close();
  }
}

/** Options of {@link send}, in Celery's units. */
export interface SendOptions {
  queue?: string;
  /** Seconds. */
  countdown?: number;
  /** Seconds from now. */
  expires?: number;
  /** Seconds. */
  timeLimit?: number;
  /** Seconds. */
  softTimeLimit?: number;
  taskId?: string;
  headers?: FieldTable;
  ignoreResult?: boolean;
}

/** A sent task: its id and its result. */
export interface Sent {
  id: string;
  /** Waits for the result (rejects with the task's error). */
  get(timeoutMs?: number): Promise<unknown>;
  /** Waits for the result and resolves with the error it rejects with. */
  error(timeoutMs?: number): Promise<unknown>;
}

/** Sends a task and waits until the broker has it. */
export async function send(
  client: Celery,
  name: string,
  args: unknown[] = [],
  kwargs: Record<string, unknown> = {},
  options: SendOptions = {},
): Promise<Sent> {
  const r = await client.sendTask(name, args, kwargs, {
    ...(options.queue === undefined ? {} : { queue: options.queue }),
    ...(options.countdown === undefined ? {} : { countdown: options.countdown }),
    ...(options.expires === undefined ? {} : { expires: options.expires }),
    ...(options.timeLimit === undefined ? {} : { timeLimit: options.timeLimit }),
    ...(options.softTimeLimit === undefined ? {} : { softTimeLimit: options.softTimeLimit }),
    ...(options.taskId === undefined ? {} : { taskId: options.taskId }),
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    ...(options.ignoreResult === undefined ? {} : { ignoreResult: options.ignoreResult }),
  });
  return {
    id: r.id,
    get: (timeoutMs = 10_000) => r.get({ timeout: timeoutMs }),
    error: (timeoutMs = 10_000) =>
      r.get({ timeout: timeoutMs }).then(
        (v: unknown) => {
          throw new Error(`expected a failure, got ${JSON.stringify(v)}`);
        },
        (e: unknown) => e,
      ),
  };
}

/** A state the worker stored. */
export interface Stored {
  id: string;
  status: string;
  result: unknown;
}

/** Records every state the app's backend stores (the worker side), in order. */
export function recordStores(app: Celery): Stored[] {
  const stored: Stored[] = [];
  const backend = app.backend;
  const store = backend.storeResult.bind(backend);
  backend.storeResult = (id, result, status, options) => {
    stored.push({ id, status, result });
    return store(id, result, status, options);
  };
  return stored;
}

/** Publishes a raw task message (any body, headers and properties) to a queue. */
export async function publishRaw(
  url: string,
  queue: string,
  body: Buffer | string,
  properties: MessageProperties,
): Promise<void> {
  const conn = new Connection(url);
  try {
    const ch = await conn.channel();
    await ch.publish({
      exchange: '',
      routingKey: queue,
      body: Buffer.isBuffer(body) ? body : Buffer.from(body),
      properties: { contentType: 'application/json', contentEncoding: 'utf-8', ...properties },
    });
  } finally {
    await conn.close();
  }
}

/** Events seen on the `celeryev` exchange (lists from `*.multi` unpacked), in arrival order. */
export interface EventLog {
  readonly events: CeleryEvent[];
  /** The events of one type. */
  of(type: string): CeleryEvent[];
  close(): Promise<void>;
}

/** Listens to every event on `celeryev` from now on, as Celery's EventReceiver does. */
export async function listenToEvents(url: string, cleanups: Cleanups): Promise<EventLog> {
  const conn = new Connection(url);
  const events: CeleryEvent[] = [];
  const ch = await conn.channel();
  const exchange = new Exchange('celeryev', { type: 'topic', durable: true });
  const queue = new Queue(uid('celeryev.test'), {
    exchange,
    routingKey: '#',
    durable: false,
    autoDelete: true,
    expires: 60_000,
  });
  const consumer = new Consumer(ch, {
    queues: [queue],
    noAck: true,
    callbacks: [
      (body: unknown) => {
        for (const e of Array.isArray(body) ? body : [body]) events.push(e as CeleryEvent);
      },
    ],
  });
  await consumer.consume();
  const log: EventLog = {
    events,
    of: (type) => events.filter((e) => e.type === type),
    close: () => conn.close(),
  };
  cleanups.push(() => log.close());
  return log;
}
