/**
 * A small Node worker: consumes a Celery task queue (protocol v2 or v1), runs registered JS
 * handlers, stores each result through the app's backend (honouring the message's reply_to
 * and correlation_id, so a Python client on rpc:// receives it), and acks after storing.
 * A task with no handler is stored FAILURE with NotRegistered and its message rejected
 * (not requeued), and a message that is no valid task is rejected, as Celery 5.2 does: on a
 * queue with a dead-letter exchange both are dead-lettered.
 *
 * Like a Celery 5 worker it honours `eta` (countdown) and `expires`: a task past its expiry
 * is not run but stored REVOKED with `TaskRevokedError('expired')` and acked; a task with a
 * future eta is held, unacked, until then, with the prefetch window raised by one while it
 * waits so other tasks keep flowing.
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
import { TaskError, TaskRevokedError } from './exceptions.js';
import { FAILURE, REVOKED, STARTED, SUCCESS } from './states.js';
import { decodeTaskMessage, taskTimes } from './task-message.js';
import type { TaskMessage, TaskTimes } from './task-message.js';

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
  /** Clock that eta and expires are compared with, in ms since the epoch (tests). @default Date.now */
  now?: (() => number) | undefined;
}

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); a longer one would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** A received task, ready to run or revoke. */
interface Job {
  readonly task: TaskMessage;
  readonly message: Message;
  readonly request: TaskRequest;
  readonly expires: number | null;
  /** Stores a state through the backend (a no-op under ignore_result). */
  readonly store: (state: string, value: unknown, traceback?: string | null) => Promise<unknown>;
}

/** A task waiting for its eta, its message unacked. */
interface Held {
  readonly job: Job;
  readonly eta: number;
  timer: NodeJS.Timeout | undefined;
  /** Stops watching the channel the message came on (once it closes the broker has requeued it). */
  unwatch: () => void;
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
  /** Tasks finished: result stored, then the message acked (or rejected, for an unknown task). */
  processed = 0;
  /** Tasks not run because they had expired (stored REVOKED and acked). */
  revoked = 0;
  /** Results that could not be stored (the message was requeued), invalid messages (rejected), failed prefetch updates. */
  readonly errors: Error[] = [];

  readonly #prefetch: number;
  readonly #trackStarted: boolean;
  readonly #hostname: string;
  readonly #now: () => number;
  #consumer: Consumer | undefined;
  #channel: Channel | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #running = new Set<Promise<void>>();
  readonly #held = new Set<Held>();
  /** basic.qos prefetch the broker has now, and the queue of updates to it (one at a time). */
  #qosApplied = 0;
  #qosChain: Promise<void> = Promise.resolve();

  constructor(app: Celery, options: WorkerOptions = {}) {
    this.app = app;
    this.queue = options.queue ?? app.conf.task_default_queue;
    for (const [name, fn] of Object.entries(options.tasks ?? {})) this.tasks.set(name, fn);
    this.#prefetch = options.prefetch ?? 4;
    this.#trackStarted = options.trackStarted ?? false;
    this.#hostname = options.hostname ?? `node${process.pid}@${hostname()}`;
    this.#now = options.now ?? Date.now;
  }

  /** Tasks received with a future eta and waiting for it (their messages unacked). */
  get held(): number {
    return this.#held.size;
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
      onMessage: (m) => this.#track(this.#handle(m)),
      tagPrefix: 'worker.',
    });
    this.#consumer = consumer;
    // Global (channel-wide) qos, as Celery 5 sets it on RabbitMQ: RabbitMQ applies a
    // per-consumer prefetch only to consumers created after it, so raising it for a held
    // eta task would not reach the running consumer; a global one changes at once.
    if (this.#prefetch > 0) {
      await consumer.qos({ prefetchCount: this.#prefetch, applyGlobal: true });
      this.#qosApplied = this.#prefetch;
    }
    await consumer.consume();
  }

  /** Keeps an error in {@link errors}, as an Error whatever was thrown. */
  #recordError(err: unknown): void {
    this.errors.push(err instanceof Error ? err : new Error(String(err)));
  }

  #track(p: Promise<void>): void {
    this.#running.add(p);
    // #handle settles every message itself; this only keeps a surprise from going unhandled.
    void p.catch((err: unknown) => this.#recordError(err)).finally(() => this.#running.delete(p));
  }

  async #handle(message: Message): Promise<void> {
    let task: TaskMessage;
    try {
      task = decodeTaskMessage(message);
    } catch (err) {
      this.#invalid(message, err);
      return;
    }
    // Celery looks the task up first (Consumer.on_unknown_task runs before the strategy that
    // parses eta/expires), so an unknown task with a bad eta still fails with NotRegistered.
    if (!this.tasks.has(task.task)) {
      await this.#execute(this.#job(task, message, null));
      return;
    }
    let times: TaskTimes;
    try {
      times = taskTimes(task);
    } catch (err) {
      this.#invalid(message, err);
      return;
    }
    const job = this.#job(task, message, times.expires);
    // Held only when it will run: an expired task is revoked now (Celery checks on receipt,
    // before looking at the eta).
    if (!this.#expired(job) && times.eta !== null && times.eta > this.#now()) {
      this.#hold(job, times.eta);
      return;
    }
    await this.#execute(job);
  }

  /**
   * Drops a message the worker cannot read as a task: rejected without requeue, as Celery's
   * `on_invalid_task` (InvalidTaskError such as a bad eta/expires, ContentDisallowed) and
   * `on_unknown_message` (no task name) do, so a dead-letter exchange on the queue keeps it.
   * Redelivery would only fail the same way. Celery acks a body it fails to deserialize
   * (`on_decode_error`); here that is rejected too, deliberately: without a DLX the broker
   * drops it just as an ack would, and with one the queue's owner asked to keep such messages.
   */
  #invalid(message: Message, err: unknown): void {
    this.#recordError(err);
    message.reject({ requeue: false });
  }

  #job(task: TaskMessage, message: Message, expires: number | null): Job {
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
    return { task, message, request, expires, store };
  }

  /** Celery's `Request.maybe_expire`: expired once the clock is strictly past `expires`. */
  #expired(job: Job): boolean {
    return job.expires !== null && this.#now() > job.expires;
  }

  async #execute(job: Job): Promise<void> {
    const { task, message, request, store } = job;
    try {
      const handler = this.tasks.get(task.task);
      if (handler === undefined) {
        // Celery answers an unknown task before its strategy ever looks at expires.
        const err = new TaskError({
          excType: 'NotRegistered',
          excModule: 'celery.exceptions',
          excArgs: [task.task],
        });
        // Stored before the reject, unlike Celery (reject, then mark_as_failure): if the store
        // fails, the catch below requeues the message, so it is retried later; in Celery's
        // order the message is already gone (dropped or dead-lettered) and the client never
        // gets a result.
        await store(FAILURE, err);
        // Rejected without requeue, as Celery's Consumer.on_unknown_task does, not acked: a
        // dead-letter exchange on the queue then gets the message (an ack would drop it).
        this.processed++;
        message.reject({ requeue: false });
        return;
      } else if (this.#expired(job)) {
        // Celery's Request.revoked() -> mark_as_revoked(id, 'expired'): REVOKED with
        // TaskRevokedError('expired'), no traceback, then the message is acked.
        await store(REVOKED, new TaskRevokedError({ excArgs: ['expired'] }));
        this.revoked++;
        message.ack();
        return;
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
   * Keeps a task until its eta (Celery's timer `call_at` + `qos.increment_eventually`): the
   * message stays unacked and the prefetch window grows by one so it does not block others.
   */
  #hold(job: Job, eta: number): void {
    // Arrived while closing: leave it unacked, the channel's close gives it back to the broker.
    if (this.#closing) return;
    // Its channel already died: the broker has requeued it and will deliver it again.
    if (!job.message.channelOpen) return;
    const held: Held = { job, eta, timer: undefined, unwatch: () => undefined };
    this.#held.add(held);
    held.unwatch = job.message.onChannelClose(() => this.#dropHeld(held));
    this.#arm(held);
    this.#updateQos();
  }

  #arm(held: Held): void {
    // Clamped: setTimeout fires at once for delays past MAX_TIMER_MS; the clock is checked again on firing.
    const delay = Math.min(Math.max(0, Math.ceil(held.eta - this.#now())), MAX_TIMER_MS);
    held.timer = setTimeout(() => this.#fire(held), delay);
  }

  #fire(held: Held): void {
    if (!this.#held.has(held)) return;
    // Timers may fire a little early against the wall clock, and a long eta takes several.
    if (held.eta > this.#now()) {
      this.#arm(held);
      return;
    }
    this.#release(held);
    this.#updateQos();
    if (!held.job.message.channelOpen) return;
    // Celery's apply_eta_task runs it now; the expiry is checked again first.
    this.#track(this.#execute(held.job));
  }

  #release(held: Held): void {
    clearTimeout(held.timer);
    held.timer = undefined;
    held.unwatch();
    this.#held.delete(held);
  }

  /**
   * Once the channel a held message came on closes (lost connection, channel error) the
   * message is back in the queue and will be redelivered: its hold is dropped, or the task
   * would run twice. Celery clears its timer on connection loss for the same reason.
   */
  #dropHeld(held: Held): void {
    if (!this.#held.has(held)) return;
    this.#release(held);
    this.#updateQos();
  }

  /** Sets the prefetch to the configured one plus one per held task, one update at a time. */
  #updateQos(): void {
    // 0 is unlimited: nothing to raise (Celery's QoS leaves 0 alone too).
    if (this.#prefetch === 0 || this.#closing) return;
    this.#qosChain = this.#qosChain
      .then(async () => {
        const wanted = this.#prefetch + this.#held.size;
        const consumer = this.#consumer;
        if (consumer === undefined || this.#closing || wanted === this.#qosApplied) return;
        await consumer.qos({ prefetchCount: wanted, applyGlobal: true });
        this.#qosApplied = wanted;
      })
      .catch((err: unknown) => {
        if (!this.#closing) this.#recordError(err);
      });
  }

  /**
   * Stops consuming, cancels the timers of tasks held for their eta without running them
   * (their messages stay unacked: closing the channel hands them back to the broker, which
   * redelivers them), lets running tasks finish (storing their results), closes the channel.
   *
   * @example
   * ```ts
   * await worker.close();
   * ```
   */
  close(): Promise<void> {
    const consumer = this.#consumer;
    if (consumer === undefined) return Promise.resolve();
    // A second close() waits for the first.
    this.#closed ??= this.#close(consumer);
    return this.#closed;
  }

  async #close(consumer: Consumer): Promise<void> {
    this.#closing = true;
    await consumer.cancel().catch(() => undefined);
    for (const held of this.#held) this.#release(held);
    await Promise.allSettled([...this.#running]);
    await this.#channel?.close().catch(() => undefined);
    // Settles: a qos update still waiting for the channel fails with its close, and is ignored.
    await this.#qosChain;
  }
}
