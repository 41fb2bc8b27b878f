/**
 * A small Node worker: consumes a Celery task queue (protocol v2 or v1), runs registered JS
 * handlers, stores each result through the app's backend (honouring the message's reply_to
 * and correlation_id, so a Python client on rpc:// receives it), and acks after storing.
 *
 * @module
 */
import { hostname } from 'node:os';
import { CeleryAmqpError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import { Consumer } from '../kombu/consumer.js';
import type { Message } from '../kombu/message.js';
import type { TaskRequest } from './backend-types.js';
import type { Celery } from './app.js';
import { TaskError } from './exceptions.js';
import { FAILURE, STARTED, SUCCESS } from './states.js';
import { decodeTaskMessage } from './task-message.js';
import type { TaskMessage } from './task-message.js';

/**
 * What a handler gets besides args and kwargs.
 *
 * @example
 * ```ts
 * worker.register('slow', async (_a, _k, ctx) => { await ctx.updateState('PROGRESS', { pct: 50 }); return 1; });
 * ```
 */
export interface TaskContext {
  /** The task id. */
  id: string;
  /** The decoded message. */
  message: TaskMessage;
  /** The request the backend stores with (id, correlation_id, reply_to, ...). */
  request: TaskRequest;
  /** Publishes an intermediate state (Celery's `update_state`), e.g. PROGRESS with a dict. */
  updateState(state: string, meta?: unknown): Promise<void>;
}

/**
 * A task implementation: its return value (or resolved value) is the result.
 *
 * @example
 * ```ts
 * const add: TaskHandler = ([a, b]) => Number(a) + Number(b);
 * ```
 */
export type TaskHandler = (args: unknown[], kwargs: Record<string, unknown>, ctx: TaskContext) => unknown;

/**
 * Options of {@link Worker}.
 *
 * @example
 * ```ts
 * new Worker(app, { queue: 'math', prefetch: 8, trackStarted: true });
 * ```
 */
export interface WorkerOptions {
  /** Queue to consume. @default the app's task_default_queue */
  queue?: string | undefined;
  /** Handlers by task name. @default {} */
  tasks?: Record<string, TaskHandler> | undefined;
  /** Unacked messages in flight (basic.qos), i.e. tasks run concurrently. @default 4 */
  prefetch?: number | undefined;
  /** Store STARTED before running (Celery's track_started). @default false */
  trackStarted?: boolean | undefined;
  /** Node name reported in STARTED. @default `node<pid>@<hostname>` */
  hostname?: string | undefined;
}

/**
 * Serves a Celery queue with JS handlers.
 *
 * @example
 * ```ts
 * const worker = new Worker(app, { queue: 'math', tasks: { add: ([a, b]) => Number(a) + Number(b) } });
 * await worker.start();
 * // ... a Python client: app.send_task('add', [2, 3], queue='math').get() == 5
 * await worker.close();
 * ```
 */
export class Worker {
  /** The app (its connection and backend are used). */
  readonly app: Celery;
  /** The queue consumed. */
  readonly queue: string;
  /** Registered handlers. */
  readonly tasks = new Map<string, TaskHandler>();
  /** Tasks finished (stored and acked). */
  processed = 0;
  /** Errors that could not be stored (the message was requeued). */
  readonly errors: Error[] = [];

  readonly #prefetch: number;
  readonly #trackStarted: boolean;
  readonly #hostname: string;
  #consumer: Consumer | undefined;
  #channel: Channel | undefined;
  readonly #running = new Set<Promise<void>>();

  constructor(app: Celery, options: WorkerOptions = {}) {
    this.app = app;
    this.queue = options.queue ?? app.conf.task_default_queue;
    for (const [name, fn] of Object.entries(options.tasks ?? {})) this.tasks.set(name, fn);
    this.#prefetch = options.prefetch ?? 4;
    this.#trackStarted = options.trackStarted ?? false;
    this.#hostname = options.hostname ?? `node${process.pid}@${hostname()}`;
  }

  /**
   * Registers a handler.
   *
   * @example
   * ```ts
   * worker.register('echo', ([x]) => x);
   * ```
   */
  register(name: string, handler: TaskHandler): this {
    this.tasks.set(name, handler);
    return this;
  }

  /**
   * Declares the queue (as Celery does) and starts consuming.
   *
   * @example
   * ```ts
   * await worker.start();
   * ```
   */
  async start(): Promise<void> {
    if (this.#consumer !== undefined) return;
    const channel = await this.app.connection.channel();
    this.#channel = channel;
    const consumer = new Consumer(channel, {
      queues: [this.app.taskQueue(this.queue)],
      prefetchCount: this.#prefetch,
      onMessage: (m) => this.#track(this.#handle(m)),
      tagPrefix: 'worker.',
    });
    this.#consumer = consumer;
    await consumer.consume();
  }

  #track(p: Promise<void>): void {
    this.#running.add(p);
    // #handle settles every message itself; this only keeps a surprise from going unhandled.
    void p
      .catch((err: unknown) => this.errors.push(err instanceof Error ? err : new Error(String(err))))
      .finally(() => this.#running.delete(p));
  }

  async #handle(message: Message): Promise<void> {
    let task: TaskMessage;
    try {
      task = decodeTaskMessage(message);
    } catch (err) {
      // Celery rejects undecodable task messages without requeue.
      this.errors.push(err instanceof Error ? err : new Error(String(err)));
      message.reject({ requeue: false });
      return;
    }
    const backend = this.app.backend;
    const request: TaskRequest = {
      id: task.id,
      task: task.task,
      args: task.args,
      kwargs: task.kwargs,
      correlation_id: task.correlationId ?? task.id,
      reply_to: task.replyTo,
      group: typeof task.headers['group'] === 'string' ? task.headers['group'] : null,
      hostname: this.#hostname,
      children: [],
    };
    const ignore = task.headers['ignore_result'] === true;
    const store = (state: string, value: unknown, traceback: string | null = null): Promise<unknown> =>
      ignore
        ? Promise.resolve(undefined)
        : backend.storeResult(task.id, value, state, { request, traceback });
    try {
      const handler = this.tasks.get(task.task);
      if (handler === undefined) {
        const err = new TaskError({
          excType: 'NotRegistered',
          excModule: 'celery.exceptions',
          excArgs: [task.task],
        });
        await store(FAILURE, err);
      } else {
        if (this.#trackStarted) await store(STARTED, { pid: process.pid, hostname: this.#hostname });
        const ctx: TaskContext = {
          id: task.id,
          message: task,
          request,
          updateState: async (state, meta = null) => {
            await store(state, meta);
          },
        };
        let value: unknown;
        let failed: unknown;
        let ok = true;
        try {
          value = await handler(task.args, task.kwargs, ctx);
        } catch (err) {
          ok = false;
          failed = err;
        }
        if (ok) await store(SUCCESS, value ?? null);
        else await store(FAILURE, failed, failed instanceof Error ? (failed.stack ?? null) : null);
      }
      this.processed++;
      message.ack();
    } catch (err) {
      // The result could not be stored: give the task back to the broker.
      this.errors.push(err instanceof Error ? err : new CeleryAmqpError(String(err), 'TASK_FAILED'));
      if (message.state === 'RECEIVED') message.requeue();
    }
  }

  /**
   * Stops consuming, lets running tasks finish (storing their results), closes the channel.
   *
   * @example
   * ```ts
   * await worker.close();
   * ```
   */
  async close(): Promise<void> {
    const consumer = this.#consumer;
    if (consumer === undefined) return;
    await consumer.cancel().catch(() => undefined);
    await Promise.allSettled([...this.#running]);
    await this.#channel?.close().catch(() => undefined);
  }
}
