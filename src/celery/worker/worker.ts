/**
 * A Node worker for a Celery fleet: consumes Celery task queues (protocol v2 or v1), runs JS
 * handlers `concurrency` at a time, stores each result through the app's backend (honouring
 * reply_to and correlation_id, so a Python client on rpc:// receives it), and takes part in
 * the fleet as a Celery worker does: monitoring events (`celery events`, Flower), remote
 * control (`celery inspect` / `control`), retries, time limits, rate limits, revokes, and a
 * warm or cold shutdown.
 *
 * Differences from Celery 5.2's worker, on purpose: results are stored before the ack by
 * default (`acksLate: true`; Celery acks when the task starts); RETRY is stored before the
 * retry is sent; a revoked task waiting in the worker is settled at once rather than when
 * its turn comes; an acks-late task a cold shutdown abandons is requeued by default.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { ArgumentError, CeleryAmqpError } from '../../errors.js';
import { reportError } from '../../logger.js';
import type { Channel } from '../../kombu/channel.js';
import { Consumer } from '../../kombu/consumer.js';
import { Exchange } from '../../kombu/exchange.js';
import type { Message } from '../../kombu/message.js';
import { Queue } from '../../kombu/queue.js';
import type { Celery } from '../app.js';
import { EventDispatcher } from '../events.js';
import { handleCommand } from './control-panel.js';
import type { PanelTarget } from './control-panel.js';
import type { TaskHandler } from './context.js';
import { DelayedDelivery } from './delayed-delivery.js';
import { EtaSchedule } from './eta-schedule.js';
import { InvalidTaskError } from './exceptions.js';
import { Heart } from './heartbeat.js';
import { PidboxNode } from './pidbox-node.js';
import { TaskPool } from './pool.js';
import { RateLimiter } from './rate-limit.js';
import { checkSchedule, parseRequest } from './request.js';
import type { Request } from './request.js';
import { ResultStore } from './result-store.js';
import { RetryPublisher } from './retry.js';
import { WorkerState } from './state.js';
import type { WorkerCounters } from './state.js';
import { TaskLog } from './task-log.js';
import { RegisteredTask } from './task-registry.js';
import type { TaskDefinition } from './task-registry.js';
import { Tracer } from './tracer.js';
import type { WorkerEvents } from './worker-events.js';
import { resolveWorkerOptions } from './worker-settings.js';
import type { ResolvedWorkerOptions, WorkerOptions } from './worker-settings.js';
import { workerStats } from './worker-stats.js';

/**
 * Task events wait at most this long (ms) to be sent together: three events per task, one
 * message per turn of the event loop otherwise (Celery's worker flushes every loop turn).
 */
const TASK_EVENT_FLUSH_MS = 100;
/** ... or until this many wait. */
const TASK_EVENT_BUFFER = 96;

/**
 * Options of {@link Worker.close}.
 *
 * @example
 * ```ts
 * await worker.close({ timeout: 30_000 }); // warm, cold after 30 s
 * ```
 */
export interface CloseOptions {
  /** Skip the warm phase: give every unfinished task back at once. @default false */
  cold?: boolean | undefined;
  /** Grace period of the warm phase in ms, then cold. @default undefined (wait for running tasks) */
  timeout?: number | undefined;
}

/**
 * Serves Celery queues with JS handlers.
 *
 * @example
 * ```ts
 * const worker = new Worker(app, { queues: ['math'], concurrency: 8, tasks: { add: ([a, b]) => Number(a) + Number(b) } });
 * worker.on('error', (err) => console.error(err));
 * await worker.start();
 * // ... a Python client: app.send_task('add', [2, 3], queue='math').get() == 5
 * await worker.close();
 * ```
 */
export class Worker extends EventEmitter<WorkerEvents> {
  /** The app (its connection and backend are used). */
  readonly app: Celery;
  /** This node's name. */
  readonly hostname: string;
  /** Registered tasks by name. */
  readonly tasks: ReadonlyMap<string, RegisteredTask>;
  /** The options in effect. */
  readonly options: ResolvedWorkerOptions;

  readonly #tasks = new Map<string, RegisteredTask>();
  readonly #state: WorkerState;
  readonly #log: TaskLog;
  readonly #tracer: Tracer;
  readonly #pool: TaskPool;
  readonly #eta: EtaSchedule;
  readonly #limiter: RateLimiter<Request>;
  readonly #retrier: RetryPublisher;
  readonly #queues = new Map<string, Queue>();
  #channel: Channel | undefined;
  #consumer: Consumer | undefined;
  #events: EventDispatcher | null = null;
  /** The dispatcher while task events are on: the one check the hot path makes. */
  #taskEvents: EventDispatcher | null = null;
  #heart: Heart | undefined;
  #pidbox: PidboxNode | undefined;
  #started: Promise<void> | undefined;
  #closing: 'warm' | 'cold' | null = null;
  #closed: Promise<void> | undefined;
  #goCold: (() => void) | undefined;
  #qosApplied = 0;
  /** Channel-wide prefetch (false with quorum queues: per consumer). */
  #qosGlobal = true;
  readonly #delayed: DelayedDelivery;
  #qosChain: Promise<void> = Promise.resolve();
  readonly #report = (err: unknown): void => this.#error(err);
  readonly #onMessage = (message: Message): void => this.#receive(message);

  constructor(app: Celery, options: WorkerOptions = {}) {
    super();
    this.app = app;
    this.options = resolveWorkerOptions(options, app.conf.task_default_queue);
    const o = this.options;
    this.hostname = o.hostname;
    this.tasks = this.#tasks;
    for (const [name, def] of Object.entries(options.tasks ?? {})) this.register(name, def);
    this.#state = new WorkerState(
      o.hostname,
      {
        acksLate: o.acksLate,
        rejectOnWorkerLost: o.rejectOnWorkerLost,
        trackStarted: o.trackStarted,
        timeLimit: o.timeLimit,
        softTimeLimit: o.softTimeLimit,
      },
      o.now,
    );
    this.#log = new TaskLog(o.logger, o.loglevel);
    this.#retrier = new RetryPublisher(app, o.hostname);
    this.#pool = new TaskPool(o.concurrency, (req) => this.#run(req));
    this.#tracer = new Tracer({
      state: this.#state,
      store: new ResultStore(app.backend),
      retrier: this.#retrier,
      log: this.#log,
      emitter: this,
      taskEvents: () => this.#taskEvents,
      release: (req) => this.#release(req),
      detach: (req) => this.#pool.detach(req),
      reportError: this.#report,
    });
    this.#eta = new EtaSchedule({
      now: o.now,
      due: (req) => this.#ready(req),
      dropped: (req) => this.#forget(req),
      changed: () => this.#updateQos(),
    });
    this.#limiter = new RateLimiter((req) => this.#pool.submit(req));
    this.#delayed = new DelayedDelivery(app, this.#log);
    if (o.sendTaskEvents) this.#enableTaskEvents();
  }

  /** Counts since start (numbers only: bounded however long the worker runs). */
  get counters(): Readonly<WorkerCounters> {
    return this.#state.counters;
  }

  /** Tasks settled (result stored, message settled). */
  get processed(): number {
    return this.#state.counters.processed;
  }

  /** Tasks stored REVOKED (expired, revoked, terminated). */
  get revoked(): number {
    return this.#state.counters.revoked;
  }

  /** Tasks held for a future eta (their messages unacked). */
  get held(): number {
    return this.#eta.size;
  }

  /** Tasks running now. */
  get active(): number {
    return this.#pool.active.size;
  }

  /** Tasks waiting for a slot. */
  get reserved(): number {
    return this.#pool.reserved.length;
  }

  /** Tasks run at once (remote `pool_grow` / `pool_shrink` change it). */
  get concurrency(): number {
    return this.#pool.concurrency;
  }

  /** The queues consumed. */
  get queues(): string[] {
    return [...this.#queues.keys()];
  }

  /** True while task events are sent. */
  get sendsTaskEvents(): boolean {
    return this.#taskEvents !== null;
  }

  /**
   * Registers a handler, with options.
   *
   * @throws ArgumentError naming the task for a bad option.
   * @example
   * ```ts
   * worker.register('echo', ([x]) => x);
   * worker.register('fetch', { handler: fetchIt, autoretryFor: ['ConnectionError'], maxRetries: 5 });
   * ```
   */
  register(name: string, handler: TaskHandler | TaskDefinition): this {
    const task = new RegisteredTask(typeof handler === 'function' ? name : (handler.name ?? name), handler);
    this.#tasks.set(task.name, task);
    return this;
  }

  /**
   * Declares the queues (as Celery does) and starts consuming; then events (worker-online)
   * and the remote-control mailbox.
   *
   * @example
   * ```ts
   * await worker.start();
   * ```
   */
  start(): Promise<void> {
    if (this.#closed !== undefined && this.#started === undefined) {
      return Promise.reject(new ArgumentError('worker closed'));
    }
    this.#started ??= this.#start().catch(async (err: unknown) => {
      // Half started (a refused declaration, a lost connection): nothing may keep running.
      // A close() already under way waits for this start and then shuts down itself.
      if (this.#closed === undefined) {
        this.#closed = this.#shutdown({ cold: true });
        await this.#closed.catch(() => undefined);
      }
      throw err;
    });
    return this.#started;
  }

  async #start(): Promise<void> {
    const o = this.options;
    const channel = await this.app.connection.channel();
    this.#channel = channel;
    const accept = this.app.acceptContent;
    const consumer = new Consumer(channel, {
      onMessage: this.#onMessage,
      tagPrefix: 'worker.',
      // Celery's consumer accepts accept_content; unset, kombu's default (all but pickle).
      ...(accept === undefined ? {} : { accept }),
    });
    consumer.on('error', this.#report);
    this.#consumer = consumer;
    for (const name of o.queues) this.#queues.set(name, consumer.addQueue(this.app.taskQueue(name)));
    // Global (channel-wide) qos, as Celery 5 sets it on RabbitMQ: RabbitMQ applies a
    // per-consumer prefetch only to consumers created after it, so raising it for a held
    // eta task would not reach the running consumer; a global one changes at once. Quorum
    // queues refuse a global one (540): with a quorum queue in the app it is per consumer
    // (static), as Celery 5.5 decides it (worker_detect_quorum_queues).
    this.#qosGlobal = !(o.settings.worker_detect_quorum_queues && this.app.quorumQueue() !== undefined);
    // Celery's log line, word for word.
    if (!this.#qosGlobal && this.#log.info)
      this.#log.logger.info('Global QoS is disabled. Prefetch count in now static.');
    await this.#setQos();
    await consumer.consume();
    if (this.#delayed.enabled) await this.#delayed.start([...this.#queues.values()]).catch(this.#report);
    if (o.heartbeat) {
      this.#heart = new Heart(this.#dispatcher(), this.#heartSource, o.heartbeatInterval / 1000);
      this.#heart.start();
    }
    if (o.remoteControl) {
      const node = new PidboxNode(
        this.app.connection,
        this.hostname,
        o.settings,
        this.#state.clock,
        this.#panel(),
        { reportError: this.#report, debug: (text) => this.#log.debug(text) },
      );
      this.#pidbox = node;
      await node.start();
    }
  }

  readonly #heartSource = {
    active: (): number => this.#pool.active.size,
    processed: (): number => this.#state.counters.started,
  };

  #dispatcher(): EventDispatcher {
    if (this.#events === null) {
      const o = this.options;
      this.#events = new EventDispatcher(this.app.connection, {
        hostname: this.hostname,
        exchange: o.settings.event_exchange,
        serializer: o.settings.event_serializer,
        clock: this.#state.clock,
        groups: o.heartbeat ? ['worker'] : [],
        bufferGroups: ['task'],
        flushDelay: TASK_EVENT_FLUSH_MS,
        bufferLimit: TASK_EVENT_BUFFER,
        onError: this.#report,
      });
    }
    return this.#events;
  }

  #enableTaskEvents(): boolean {
    if (this.#taskEvents !== null) return false;
    const events = this.#dispatcher();
    (events.groups ??= new Set()).add('task');
    this.#taskEvents = events;
    return true;
  }

  #disableTaskEvents(): boolean {
    if (this.#taskEvents === null) return false;
    this.#taskEvents.groups?.delete('task');
    this.#taskEvents = null;
    return true;
  }

  /**
   * Turns task events on at run time (`celery control enable_events`).
   *
   * @returns false when they already were.
   */
  enableEvents(): boolean {
    return this.#enableTaskEvents();
  }

  /**
   * Turns task events off (`celery control disable_events`).
   *
   * @returns false when they already were.
   */
  disableEvents(): boolean {
    return this.#disableTaskEvents();
  }

  /** The hot path: one delivery from a task queue. */
  #receive(message: Message): void {
    if (this.#closing !== null) {
      // Racing the consumer cancel: back to the queue for another worker.
      this.#settle(message, true);
      return;
    }
    let req: Request;
    try {
      req = parseRequest(message, this.hostname, this.options.decodeLimits);
    } catch (err) {
      this.#invalid(message, err);
      return;
    }
    const task = this.#tasks.get(req.type);
    if (task === undefined) {
      this.#tracer.unknown(req).catch(this.#report);
      return;
    }
    try {
      checkSchedule(req);
    } catch (err) {
      this.#invalid(message, err);
      return;
    }
    req.registered = task;
    if (task.ignoreResult) req.ignoreResult = true;
    const s = this.#state;
    s.counters.received++;
    this.#log.received(req);
    if ((req.expires !== null || s.revoked.has(req.id)) && this.#tracer.revokedNow(req)) return;
    this.#tracer.received(req);
    s.requests.set(req.id, req);
    if (req.eta !== null && req.eta > s.now()) {
      if (!this.#eta.hold(req)) this.#forget(req);
      return;
    }
    this.#ready(req);
  }

  /** A request that may run now: through its rate limit, then the pool. */
  #ready(req: Request): void {
    const task = req.registered;
    if (
      task !== undefined &&
      !this.options.disableRateLimits &&
      this.#limiter.submit(req, task.name, task.rateLimit)
    ) {
      return;
    }
    this.#pool.submit(req);
  }

  #run(req: Request): void {
    const task = req.registered;
    if (task === undefined) return this.#release(req);
    this.#tracer.run(req, task).catch(this.#report);
  }

  #release(req: Request): void {
    this.#forget(req);
    this.#pool.release(req);
  }

  #forget(req: Request): void {
    const s = this.#state;
    if (s.requests.get(req.id) === req) s.requests.delete(req.id);
  }

  /**
   * A message that is no valid task: rejected without requeue, as Celery's
   * `on_invalid_task` / `on_unknown_message` do, so a dead-letter exchange keeps it (a
   * redelivery would fail the same way); an 'invalid' event and a log line say why.
   */
  #invalid(message: Message, err: unknown): void {
    const error =
      err instanceof InvalidTaskError
        ? err
        : new InvalidTaskError(`invalid task message: ${String(err)}`, null, null, { cause: err });
    const c = this.#state.counters;
    c.invalid++;
    c.rejected++;
    this.#settle(message, false);
    this.#log.invalid(error);
    if (this.listenerCount('invalid') > 0) {
      try {
        this.emit('invalid', error);
      } catch (listenerError) {
        this.#error(listenerError);
      }
    }
  }

  #settle(message: Message, requeue: boolean): void {
    try {
      if (!message.acknowledged) message.reject({ requeue });
    } catch (err) {
      this.#error(err);
    }
  }

  #error(err: unknown): void {
    this.#state.counters.errors++;
    const error = err instanceof Error ? err : new CeleryAmqpError(String(err), 'TASK_FAILED');
    reportError(this, error, this.options.logger, `Worker ${this.hostname}`);
  }

  /**
   * Revokes tasks by id, as `celery control revoke` does: remembered (a later delivery is
   * stored REVOKED, not run), settled at once when waiting here, and with `terminate`
   * aborted when running.
   *
   * @returns the ids of running tasks terminated.
   * @example
   * ```ts
   * worker.revoke([id], { terminate: true });
   * ```
   */
  revoke(ids: readonly string[], options: { terminate?: boolean } = {}): string[] {
    const terminated: string[] = [];
    for (const id of ids) {
      this.#state.revoked.add(id);
      const waiting = this.#eta.remove(id) ?? this.#limiter.remove(id) ?? this.#pool.remove(id);
      if (waiting !== undefined) {
        this.#forget(waiting);
        this.#log.discarded(waiting);
        this.#tracer.revoke(waiting, 'revoked', false, false).catch(this.#report);
      }
      if (options.terminate !== true) continue;
      for (const req of this.#pool.active) {
        if (req.id !== id || req.finished) continue;
        this.#tracer.terminate(req);
        terminated.push(id);
      }
    }
    return terminated;
  }

  /**
   * Starts consuming one more queue (`celery control add_consumer`).
   *
   * @example
   * ```ts
   * await worker.addConsumer('priority');
   * ```
   */
  async addConsumer(
    name: string,
    options: { exchange?: string | null; exchangeType?: string; routingKey?: string | null } = {},
  ): Promise<void> {
    const consumer = this.#consumer;
    if (consumer === undefined || this.#queues.has(name)) return;
    const custom = options.exchange !== undefined && options.exchange !== null && options.exchange !== name;
    const queue = custom
      ? new Queue(name, {
          exchange: new Exchange(options.exchange ?? name, { type: options.exchangeType ?? 'direct' }),
          routingKey: options.routingKey ?? name,
        })
      : this.app.taskQueue(name);
    this.#queues.set(name, consumer.addQueue(queue));
    this.#log.warning(`Started consuming from ${name}`);
    await consumer.consume();
    if (this.#delayed.enabled) await this.#delayed.start([queue]).catch(this.#report);
  }

  /**
   * Stops consuming a queue (`celery control cancel_consumer`).
   *
   * @example
   * ```ts
   * await worker.cancelConsumer('priority');
   * ```
   */
  async cancelConsumer(name: string): Promise<void> {
    const consumer = this.#consumer;
    if (consumer === undefined || !this.#queues.delete(name)) return;
    consumer.queues = consumer.queues.filter((q) => q.name !== name);
    await consumer.cancelByQueue(name);
  }

  /** What remote-control commands act on. */
  #panel(): PanelTarget {
    return {
      state: this.#state,
      tasks: this.#tasks,
      active: () => [...this.#pool.active].filter((r) => !r.finished),
      reserved: () => this.#pool.reserved,
      scheduled: () => this.#eta.requests(),
      revoke: (ids, terminate) => this.revoke(ids, { terminate }),
      rateLimitChanged: () => undefined,
      enableEvents: () => this.#enableTaskEvents(),
      disableEvents: () => this.#disableTaskEvents(),
      heartbeat: () => this.#heart?.send('worker-heartbeat', 5),
      addConsumer: (queue, exchange, exchangeType, routingKey) =>
        this.addConsumer(queue, { exchange, exchangeType, routingKey }),
      cancelConsumer: (queue) => this.cancelConsumer(queue),
      queues: () => [...this.#queues.values()],
      conf: () => ({
        ...this.app.conf,
        ...this.options.settings,
        worker_concurrency: this.#pool.concurrency,
      }),
      stats: () =>
        workerStats(this.#state, {
          concurrency: this.#pool.concurrency,
          prefetchCount: this.#qosApplied,
          timeLimits: [this.options.softTimeLimit, this.options.timeLimit],
          connection: this.app.connection,
        }),
      resize: (delta) => this.#resize(delta),
      shutdown: (msg) => {
        this.options.logger.warn(msg);
        this.close().catch(this.#report);
      },
      info: (text) => this.#log.warning(text),
    };
  }

  /**
   * Runs a remote-control command here, as if it came through the mailbox (tests, admin
   * endpoints).
   *
   * @example
   * ```ts
   * await worker.control('ping'); // { ok: 'pong' }
   * ```
   */
  control(method: string, args: Record<string, unknown> = {}): Promise<unknown> {
    return handleCommand(this.#panel(), method, args);
  }

  #resize(delta: number): void {
    this.#pool.concurrency = Math.max(1, this.#pool.concurrency + delta);
    this.#pool.pump();
    this.#updateQos();
  }

  #wantedPrefetch(): number {
    const m = this.options.prefetchMultiplier;
    // 0 is unlimited: nothing to raise (Celery's QoS leaves 0 alone too).
    return m === 0 ? 0 : this.#pool.concurrency * m + this.#eta.size;
  }

  async #setQos(): Promise<void> {
    const wanted = this.#wantedPrefetch();
    const consumer = this.#consumer;
    if (consumer === undefined || wanted === this.#qosApplied) return;
    await consumer.qos({ prefetchCount: wanted, applyGlobal: this.#qosGlobal });
    this.#qosApplied = wanted;
  }

  /** Moves the prefetch to concurrency x multiplier plus one per held task, one update at a time. */
  #updateQos(): void {
    if (this.options.prefetchMultiplier === 0 || this.#closing !== null) return;
    this.#qosChain = this.#qosChain
      .then(() => (this.#closing === null ? this.#setQos() : undefined))
      .catch((err: unknown) => {
        if (this.#closing === null) this.#error(err);
      });
  }

  /**
   * Shuts down. Warm (the first call): stops consuming, gives back at once the tasks that
   * have not started (held for an eta, waiting for a rate-limit token or a slot), lets the
   * running ones finish and store their results, sends worker-offline and closes. Cold (a
   * second call, `cold: true`, or the `timeout` passing): running tasks are abandoned too
   * (requeued, or stored WorkerLostError with `rejectOnWorkerLost: false`).
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void worker.close());
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed !== undefined) {
      this.#goCold?.();
      return this.#closed;
    }
    this.#closed = this.#close(options);
    return this.#closed;
  }

  async #close(options: CloseOptions): Promise<void> {
    this.#closing = options.cold === true ? 'cold' : 'warm';
    await this.#started?.catch(() => undefined);
    await this.#shutdown(options);
  }

  async #shutdown(options: CloseOptions): Promise<void> {
    this.#closing ??= options.cold === true ? 'cold' : 'warm';
    this.#emitSafely('shutdown', this.#closing);
    await this.#consumer?.cancel().catch(() => undefined);
    this.#pool.draining = true;
    for (const req of [...this.#eta.takeAll(), ...this.#limiter.takeAll(), ...this.#pool.takeReserved()]) {
      this.#forget(req);
      this.#tracer.rejected(req, true);
    }
    if (this.#closing === 'warm' && (this.#pool.active.size > 0 || this.#pool.finishing.size > 0)) {
      const cold = new Promise<void>((resolve) => {
        this.#goCold = resolve;
        if (options.timeout !== undefined) setTimeout(resolve, options.timeout).unref();
      });
      const warm = this.#pool.whenIdle().then(() => false);
      if (await Promise.race([warm, cold.then(() => true)])) this.#closing = 'cold';
    }
    if (this.#closing === 'cold') {
      if (options.cold !== true) this.#emitSafely('shutdown', 'cold');
      await Promise.allSettled([...this.#pool.active].map((req) => this.#tracer.lost(req)));
    }
    this.#heart?.stop();
    await this.#pidbox?.close();
    await this.#events?.close();
    await this.#retrier.close();
    await this.#channel?.close().catch(() => undefined);
    // Settles: a qos update still waiting for the channel fails with its close, and is ignored.
    await this.#qosChain;
  }

  #emitSafely(event: 'shutdown', how: 'warm' | 'cold'): void {
    try {
      this.emit(event, how);
    } catch (err) {
      this.#error(err);
    }
  }
}
