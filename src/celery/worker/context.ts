/**
 * What a task handler gets besides its arguments: the request, the AbortSignal that time
 * limits and `revoke --terminate` fire, intermediate states, and retries.
 *
 * @module
 */
import type { TaskRequest } from '../backend-types.js';
import type { TaskMessage } from '../task-message.js';
import type { Request } from './request.js';

/**
 * Options of {@link TaskContext.retry}, as Celery's `Task.retry`.
 *
 * @example
 * ```ts
 * return ctx.retry({ countdown: 10, exc: err, maxRetries: 5 });
 * ```
 */
export interface RetryOptions {
  /** Seconds until the retry runs. @default the task's defaultRetryDelay (180 s) unless eta is given */
  countdown?: number | undefined;
  /** When the retry runs. @default now + countdown */
  eta?: Date | undefined;
  /** Retries allowed for this call; null for no limit. @default the task's maxRetries */
  maxRetries?: number | null | undefined;
  /** The error behind the retry: stored with RETRY, and raised instead of MaxRetriesExceededError. @default undefined */
  exc?: unknown;
  /** Positional arguments of the retry. @default the same */
  args?: unknown[] | undefined;
  /** Keyword arguments of the retry. @default the same */
  kwargs?: Record<string, unknown> | undefined;
}

/**
 * What a handler gets besides args and kwargs.
 *
 * @example
 * ```ts
 * worker.register('slow', async (_a, _k, ctx) => {
 *   await ctx.updateState('PROGRESS', { pct: 50 });
 *   await fetch(url, { signal: ctx.signal }); // aborted by a soft time limit or a terminate
 *   return 1;
 * });
 * ```
 */
export interface TaskContext {
  /** The task id. */
  readonly id: string;
  /** The task name (its `shadow` when the message has one). */
  readonly name: string;
  /** Retries before this run (0 for the first). */
  readonly retries: number;
  /** This worker's node name. */
  readonly hostname: string;
  /** The decoded message. */
  readonly message: TaskMessage;
  /** The request the backend stores with (id, correlation_id, reply_to, ...). */
  readonly request: TaskRequest;
  /**
   * Aborts when the task must stop: its soft time limit passed (reason
   * SoftTimeLimitExceeded), its hard limit passed (TimeLimitExceeded: the worker has already
   * stored the failure), it was revoked with terminate (TaskTerminated), or a cold shutdown
   * abandoned it. JS cannot stop a handler that ignores it.
   */
  readonly signal: AbortSignal;
  /** Publishes an intermediate state (Celery's `update_state`), e.g. PROGRESS with a dict. */
  updateState(state: string, meta?: unknown): Promise<void>;
  /**
   * Sends the task again (same id, reply_to and correlation_id; retries + 1) and rejects
   * with a {@link Retry}, which the worker turns into the RETRY state; past the retry limit
   * it rejects with `exc`, or MaxRetriesExceededError, and the task fails. Return or await it.
   */
  retry(options?: RetryOptions): Promise<never>;
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

/** What a context needs from the worker to store states and send retries. */
export interface ContextHost {
  updateState(req: Request, state: string, meta: unknown): Promise<void>;
  retry(req: Request, options: RetryOptions): Promise<never>;
}

/** The context handed to one run of a handler. */
export class TaskContextImpl implements TaskContext {
  readonly #req: Request;
  readonly #host: ContextHost;

  constructor(req: Request, host: ContextHost) {
    this.#req = req;
    this.#host = host;
  }

  get id(): string {
    return this.#req.id;
  }

  get name(): string {
    return this.#req.name;
  }

  get retries(): number {
    return this.#req.retries;
  }

  get hostname(): string {
    return this.#req.hostname;
  }

  get message(): TaskMessage {
    return this.#req.task;
  }

  get request(): TaskRequest {
    return this.#req.request;
  }

  get signal(): AbortSignal {
    return this.#req.signal;
  }

  updateState(state: string, meta: unknown = null): Promise<void> {
    return this.#host.updateState(this.#req, state, meta);
  }

  retry(options: RetryOptions = {}): Promise<never> {
    return this.#host.retry(this.#req, options);
  }
}
