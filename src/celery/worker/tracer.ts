/**
 * Runs one task and settles it (Celery's `app.trace` with the request's `on_success` /
 * `on_failure` / `on_retry` / `on_timeout` / `terminate`): store the state, then settle the
 * message, then announce it (event, log line, counter). Every way a task can end is here,
 * so each ends exactly once: a late result of an abandoned handler is dropped.
 *
 * @module
 */
import type { EventEmitter } from 'node:events';
import { EncodeError } from '../../errors.js';
import type { EventDispatcher } from '../events.js';
import { TaskContextImpl } from './context.js';
import type { ContextHost, RetryOptions } from './context.js';
import {
  MaxRetriesExceededError,
  Retry,
  SoftTimeLimitExceeded,
  TaskTerminated,
  TimeLimitExceeded,
  WorkerLostError,
  notRegistered,
} from './exceptions.js';
import type { ResultStore } from './result-store.js';
import { tracebackOf } from './result-store.js';
import { boundedRepr, isoOrNull } from './request.js';
import type { Request } from './request.js';
import type { RetryPublisher } from './retry.js';
import type { WorkerState } from './state.js';
import type { TaskLog } from './task-log.js';
import { excRepr } from './task-log.js';
import type { RegisteredTask } from './task-registry.js';
import type { WorkerEvents } from './worker-events.js';

/** The signal number Celery reports for a terminate (SIGTERM). */
const SIGTERM = 15;

/** What the tracer needs from its worker. */
export interface TracerDeps {
  readonly state: WorkerState;
  readonly store: ResultStore;
  readonly retrier: RetryPublisher;
  readonly log: TaskLog;
  readonly emitter: EventEmitter<WorkerEvents>;
  /** The dispatcher when task events are on, else null. */
  taskEvents(): EventDispatcher | null;
  /** Forgets the request and frees its concurrency slot if it holds one (idempotent). */
  release(req: Request): void;
  /** Frees the slot of a request whose handler returned, while its outcome is stored. */
  detach(req: Request): void;
  /** Hands an error nobody else receives to the worker's 'error' path. */
  reportError(err: unknown): void;
}

/** A running task's time limits and its timer. */
interface Limits {
  soft: number | null;
  hard: number | null;
  timer: NodeJS.Timeout | undefined;
}

/** Runs tasks and settles every way they can end. */
export class Tracer implements ContextHost {
  readonly #d: TracerDeps;
  readonly #limits = new WeakMap<Request, Limits>();
  /** The Retry each request's ctx.retry() produced: only that one means "retried". */
  readonly #retries = new WeakMap<Request, Retry>();

  constructor(deps: TracerDeps) {
    this.#d = deps;
  }

  /**
   * Runs a request whose slot was granted: revoked check, ack (early acks), task-started,
   * STARTED (track_started), the handler with its time limits, then the outcome.
   */
  async run(req: Request, task: RegisteredTask): Promise<void> {
    const d = this.#d;
    if (this.revokedNow(req)) {
      d.release(req);
      return;
    }
    const { counters, defaults, totals } = d.state;
    req.timeStart = Date.now() / 1000;
    counters.started++;
    totals.set(task.name, (totals.get(task.name) ?? 0) + 1);
    const acksLate = task.acksLate ?? defaults.acksLate;
    if (!acksLate) req.ack();
    d.taskEvents()?.send('task-started', { uuid: req.id });
    d.emitter.emit('task-started', req);
    const t0 = performance.now();
    let value: unknown;
    let failure: unknown;
    let ok = false;
    if (task.trackStarted ?? defaults.trackStarted) {
      if (!(await this.#store(req, () => d.store.started(req)))) {
        d.release(req);
        return;
      }
    }
    if (!req.finished) {
      this.#arm(req, task);
      try {
        value = await task.handler(req.args, req.kwargs, new TaskContextImpl(req, this));
        ok = true;
      } catch (err) {
        failure = err;
      }
    }
    if (req.finished) {
      // Abandoned (hard limit, terminate, cold shutdown): its outcome was settled already.
      d.state.counters.abandoned--;
      return;
    }
    this.#disarm(req);
    const runtime = (performance.now() - t0) / 1000;
    // The next task may start while this outcome waits for its confirm (see TaskPool).
    d.detach(req);
    try {
      if (ok) await this.#succeeded(req, value, runtime);
      else await this.#failedOrRetried(req, task, failure);
    } finally {
      d.release(req);
    }
  }

  async #succeeded(req: Request, value: unknown, runtime: number): Promise<void> {
    const d = this.#d;
    // A value that cannot be stored (too deep, too large once written, a bigint in json)
    // fails the same way on every run: the task fails with the EncodeError, as in Celery.
    if (
      !(await this.#store(
        req,
        () => d.store.success(req, value),
        (e) => this.failed(req, e),
      ))
    )
      return;
    req.ack();
    const { counters } = d.state;
    counters.succeeded++;
    counters.processed++;
    d.taskEvents()?.send('task-succeeded', { uuid: req.id, result: boundedRepr(value), runtime });
    d.log.succeeded(req, runtime, value);
    d.emitter.emit('task-succeeded', req, value, runtime);
  }

  async #failedOrRetried(req: Request, task: RegisteredTask, err: unknown): Promise<void> {
    if (err instanceof Retry && this.#retries.get(req) === err) {
      this.#retried(req, err);
      return;
    }
    if (task.autoretries(err)) {
      // Celery's autoretry: retry with the error; past the limit the error itself fails the task.
      const countdown = task.retryBackoff > 0 ? task.backoff(req.retries) : undefined;
      try {
        await this.retry(req, { exc: err, ...(countdown === undefined ? {} : { countdown }) });
      } catch (outcome) {
        if (outcome instanceof Retry && this.#retries.get(req) === outcome) this.#retried(req, outcome);
        else await this.failed(req, outcome);
      }
      return;
    }
    await this.failed(req, err);
  }

  /** Stores FAILURE, acks, sends task-failed and logs it. */
  async failed(req: Request, err: unknown): Promise<void> {
    const d = this.#d;
    // An error that cannot be stored is replaced by its EncodeError (once).
    const unencodable = err instanceof EncodeError ? undefined : (e: EncodeError) => this.failed(req, e);
    if (!(await this.#store(req, () => d.store.failure(req, err), unencodable))) return;
    req.ack();
    this.#announceFailed(req, err);
  }

  #announceFailed(req: Request, err: unknown): void {
    const d = this.#d;
    d.state.counters.failed++;
    d.state.counters.processed++;
    this.#sendError('task-failed', req, err);
    d.log.failed(req, err);
    d.emitter.emit('task-failed', req, err);
  }

  #retried(req: Request, reason: Retry): void {
    const d = this.#d;
    req.ack();
    d.state.counters.retried++;
    d.state.counters.processed++;
    this.#sendError('task-retried', req, reason.exc ?? reason);
    d.log.retry(req, reason);
    d.emitter.emit('task-retried', req, reason);
  }

  /** A task event carrying an exception: its repr and its traceback, as Celery's. */
  #sendError(type: string, req: Request, err: unknown): void {
    this.#d.taskEvents()?.send(type, { uuid: req.id, exception: excRepr(err), traceback: tracebackOf(err) });
  }

  /**
   * Runs a store; on failure the message goes back to the queue (or, already acked, is
   * reported) and false is returned. Celery would lose the result; here the task runs again.
   * An EncodeError (the value itself cannot be written: running again cannot help) goes to
   * `unencodable` instead, when given.
   */
  async #store(
    req: Request,
    store: () => Promise<unknown>,
    unencodable?: (err: EncodeError) => Promise<void>,
  ): Promise<boolean> {
    try {
      await store();
      return true;
    } catch (err) {
      if (unencodable !== undefined && err instanceof EncodeError) {
        await unencodable(err);
        return false;
      }
      this.#d.reportError(err);
      req.reject(true);
      return false;
    }
  }

  /** `ctx.updateState`: stores a custom state (Celery's `update_state`). */
  async updateState(req: Request, state: string, meta: unknown): Promise<void> {
    if (req.finished) return;
    await this.#d.store.state(req, state, meta);
  }

  /**
   * `ctx.retry`: past the limit rejects with `exc` or MaxRetriesExceededError; else stores
   * RETRY, publishes the retry and rejects with the {@link Retry} the tracer recognises.
   * RETRY is stored before the publish (Celery stores it after), so a fast retry's result
   * can never arrive before it.
   */
  async retry(req: Request, options: RetryOptions): Promise<never> {
    const d = this.#d;
    // An abandoned handler (past its hard limit, terminated) must not send the task again.
    if (req.finished) throw req.signal.reason;
    const task = req.registered;
    const retries = req.retries + 1;
    const max =
      options.maxRetries !== undefined ? options.maxRetries : task === undefined ? 3 : task.maxRetries;
    const exc = options.exc === undefined ? null : toError(options.exc);
    const args = options.args ?? req.args;
    const kwargs = options.kwargs ?? req.kwargs;
    if (max !== null && retries > max) {
      if (exc !== null) throw exc;
      throw new MaxRetriesExceededError(
        `Can't retry ${req.name}[${req.id}] args:${boundedRepr(args)} kwargs:${boundedRepr(kwargs)}`,
      );
    }
    const now = d.state.now();
    let eta: number;
    let when: number | Date;
    if (options.eta !== undefined) {
      eta = options.eta.getTime();
      when = options.eta;
    } else {
      const countdown = options.countdown ?? task?.defaultRetryDelay ?? 180;
      eta = now + countdown * 1000;
      when = countdown;
    }
    const reason = new Retry(exc, when);
    await d.store.retry(req, exc);
    await d.retrier.publish(req, { args, kwargs, eta: eta > now ? eta : null, retries }, now);
    this.#retries.set(req, reason);
    throw reason;
  }

  /**
   * Celery's `Request.revoked()`: an expired task or one in the revoked set is stored
   * REVOKED (`expired` / `revoked`), acked and announced instead of run.
   *
   * @returns true when the request was revoked.
   */
  revokedNow(req: Request): boolean {
    const { state } = this.#d;
    const expired = req.expires !== null && state.now() > req.expires;
    if (!expired && !state.revoked.has(req.id)) return false;
    if (expired) state.revoked.add(req.id);
    this.#d.log.discarded(req);
    this.revoke(req, expired ? 'expired' : 'revoked', false, expired).catch(this.#d.reportError);
    return true;
  }

  /** Stores REVOKED, acks, sends task-revoked; the request is finished. */
  async revoke(req: Request, reason: string, terminated: boolean, expired: boolean): Promise<void> {
    const d = this.#d;
    req.finished = true;
    if (!(await this.#store(req, () => d.store.revoked(req, reason)))) return;
    req.ack();
    d.state.counters.revoked++;
    d.state.counters.processed++;
    d.taskEvents()?.send('task-revoked', {
      uuid: req.id,
      terminated,
      signum: terminated ? SIGTERM : null,
      expired,
    });
    d.emitter.emit('task-revoked', req, { terminated, expired });
  }

  /**
   * `revoke --terminate` of a running task: its signal aborts with TaskTerminated, it is
   * stored REVOKED ('terminated') at once and its slot freed; the handler is abandoned.
   */
  terminate(req: Request): void {
    if (req.finished) return;
    this.#abandon(req, new TaskTerminated());
    this.#d.log.terminated(req);
    this.revoke(req, 'terminated', true, false)
      .catch(this.#d.reportError)
      .finally(() => this.#d.release(req));
  }

  /**
   * A cold shutdown leaves a running task: requeued when acks-late with rejectOnWorkerLost,
   * else stored FAILURE with WorkerLostError (and acked).
   */
  async lost(req: Request): Promise<void> {
    if (req.finished) return;
    const d = this.#d;
    const err = new WorkerLostError('Worker exited prematurely: cold shutdown.');
    this.#abandon(req, err);
    const task = req.registered;
    const acksLate = task?.acksLate ?? d.state.defaults.acksLate;
    const requeue = task?.rejectOnWorkerLost ?? d.state.defaults.rejectOnWorkerLost;
    if (acksLate && requeue) {
      this.rejected(req, true);
    } else {
      await this.failed(req, err);
    }
    d.release(req);
  }

  /** Rejects the message (requeued or not) and sends task-rejected (Celery's `Request.reject`). */
  rejected(req: Request, requeue: boolean): void {
    if (req.acknowledged) return;
    req.reject(requeue);
    if (!requeue) this.#d.state.counters.rejected++;
    this.#d.taskEvents()?.send('task-rejected', { uuid: req.id, requeue });
    this.#d.emitter.emit('task-rejected', req, requeue);
  }

  /**
   * Celery's `on_unknown_task`: stores FAILURE NotRegistered, then rejects the message
   * without requeue (a DLX keeps it). Stored first, unlike Celery: if the store fails the
   * message is requeued, where Celery's order would have lost the client's answer.
   */
  async unknown(req: Request): Promise<void> {
    const d = this.#d;
    const err = notRegistered(req.type);
    d.log.unknown(req);
    if (!(await this.#store(req, () => d.store.failure(req, err)))) return;
    req.reject(false);
    d.state.counters.rejected++;
    d.state.counters.processed++;
    d.state.counters.failed++;
    d.taskEvents()?.send('task-failed', { uuid: req.id, exception: excRepr(err) });
    d.emitter.emit('task-failed', req, err);
  }

  /** Sends task-received (Celery's strategy does, after the revoked check). */
  received(req: Request): void {
    this.#d.taskEvents()?.send('task-received', {
      uuid: req.id,
      name: req.name,
      args: req.argsrepr,
      kwargs: req.kwargsrepr,
      root_id: req.rootId,
      parent_id: req.parentId,
      retries: req.retries,
      eta: isoOrNull(req.eta),
      expires: isoOrNull(req.expires),
    });
    this.#d.emitter.emit('task-received', req);
  }

  /** Marks a running request finished and aborts its handler; its late outcome is dropped. */
  #abandon(req: Request, reason: Error): void {
    req.finished = true;
    this.#d.state.counters.abandoned++;
    this.#disarm(req);
    req.abort(reason);
  }

  /** Arms the first time limit due: the message's, else the task's, else the worker's. */
  #arm(req: Request, task: RegisteredTask): void {
    const { defaults } = this.#d.state;
    const [msgHard, msgSoft] = req.timeLimits;
    const hard = msgHard ?? (task.timeLimit === undefined ? defaults.timeLimit : task.timeLimit);
    const soft = msgSoft ?? (task.softTimeLimit === undefined ? defaults.softTimeLimit : task.softTimeLimit);
    if (hard === null && soft === null) return;
    const limits: Limits = { soft, hard, timer: undefined };
    this.#limits.set(req, limits);
    if (soft !== null && (hard === null || soft < hard)) {
      limits.timer = setTimeout(() => this.#softLimit(req, limits), soft * 1000);
    } else if (hard !== null) {
      limits.timer = setTimeout(() => this.#hardLimit(req, hard), hard * 1000);
    }
  }

  #disarm(req: Request): void {
    const limits = this.#limits.get(req);
    if (limits === undefined) return;
    clearTimeout(limits.timer);
    this.#limits.delete(req);
  }

  #softLimit(req: Request, limits: Limits): void {
    if (req.finished || limits.soft === null) return;
    this.#d.log.softLimit(req, limits.soft);
    req.abort(new SoftTimeLimitExceeded(limits.soft));
    const hard = limits.hard;
    if (hard !== null)
      limits.timer = setTimeout(() => this.#hardLimit(req, hard), (hard - limits.soft) * 1000);
  }

  /**
   * Celery's `on_timeout(soft=False)`: FAILURE with TimeLimitExceeded, acked, slot freed.
   * The handler cannot be killed: its signal aborts and whatever it returns later is dropped.
   */
  #hardLimit(req: Request, seconds: number): void {
    if (req.finished) return;
    const d = this.#d;
    const err = new TimeLimitExceeded(seconds);
    this.#abandon(req, err);
    d.log.hardLimit(req, seconds);
    this.failed(req, err)
      .catch(d.reportError)
      .finally(() => d.release(req));
  }
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
