/**
 * The exceptions a worker stores or raises, with the Python types Celery uses for them, so a
 * Python client's `AsyncResult.get()` raises the same class it would get from a Celery worker.
 *
 * @module
 */
import { DecodeError } from '../../errors.js';
import type { ErrorOptions } from '../../errors.js';
import { TaskError, TaskRevokedError } from '../exceptions.js';
import { RETRY } from '../states.js';

/** An exception of billiard (Celery's pool library), with one argument. */
class BilliardError extends TaskError {
  constructor(type: string, arg: unknown) {
    super({ excType: type, excModule: 'billiard.exceptions', excArgs: [arg] });
  }
}

/**
 * The task ran past its soft time limit (billiard's `SoftTimeLimitExceeded`): the reason
 * the handler's `ctx.signal` aborts with. A handler that lets it propagate fails with it.
 *
 * @example
 * ```ts
 * if (ctx.signal.reason instanceof SoftTimeLimitExceeded) await cleanUp();
 * ```
 */
export class SoftTimeLimitExceeded extends BilliardError {
  constructor(seconds: number) {
    super('SoftTimeLimitExceeded', seconds);
  }
}

/**
 * The task ran past its hard time limit (billiard's `TimeLimitExceeded`): stored as its
 * FAILURE; the handler is abandoned (its signal aborts with this reason too).
 *
 * @example
 * ```ts
 * err instanceof TimeLimitExceeded && err.excArgs[0] === 10; // a 10 s hard limit
 * ```
 */
export class TimeLimitExceeded extends BilliardError {
  constructor(seconds: number) {
    super('TimeLimitExceeded', seconds);
  }
}

/**
 * The worker gave up a running task without a result (billiard's `WorkerLostError`): stored
 * as the FAILURE of an acks-late task a cold shutdown abandoned with `rejectOnWorkerLost: false`.
 *
 * @example
 * ```ts
 * new WorkerLostError('Worker exited prematurely: cold shutdown.');
 * ```
 */
export class WorkerLostError extends BilliardError {
  constructor(message: string) {
    super('WorkerLostError', message);
  }
}

/**
 * A retry was asked past the task's `maxRetries` (Celery's `MaxRetriesExceededError`).
 *
 * @example
 * ```ts
 * err instanceof MaxRetriesExceededError; // stored FAILURE once the retries ran out
 * ```
 */
export class MaxRetriesExceededError extends TaskError {
  constructor(message: string) {
    super({ excType: 'MaxRetriesExceededError', excModule: 'celery.exceptions', excArgs: [message] });
  }
}

/**
 * What `ctx.retry()` rejects with once the task has been sent again (Celery's `Retry`): the
 * worker then stores RETRY (with `exc` when given) and acks the current message.
 *
 * @example
 * ```ts
 * return ctx.retry({ countdown: 5, exc: err }); // rejects with a Retry
 * ```
 */
export class Retry extends TaskError {
  /** The exception that caused the retry, or null. */
  readonly exc: Error | null;
  /** Seconds until the retry runs, or its eta. */
  readonly when: number | Date;

  constructor(exc: Error | null, when: number | Date) {
    const humanized = typeof when === 'number' ? `in ${when}s` : `at ${when.toISOString()}`;
    const message = exc === null ? `Retry ${humanized}` : `Retry ${humanized}: ${exc.name}('${exc.message}')`;
    super({ excType: 'Retry', excModule: 'celery.exceptions', excArgs: [message], message, state: RETRY });
    this.exc = exc;
    this.when = when;
  }
}

/**
 * The task was revoked while running (`celery control revoke --terminate`): the reason its
 * signal aborts with; the task is stored REVOKED with `TaskRevokedError('terminated')`.
 *
 * @example
 * ```ts
 * ctx.signal.reason instanceof TaskTerminated;
 * ```
 */
export class TaskTerminated extends TaskRevokedError {
  constructor() {
    super({ excArgs: ['terminated'] });
  }
}

/**
 * A message on a task queue the worker cannot accept (Celery's `InvalidTaskError`): bad
 * body, headers of the wrong type or size, args not a list, kwargs with `__proto__`, ...
 * It is rejected (dead-lettered when the queue has a DLX), never run.
 *
 * @example
 * ```ts
 * worker.on('invalid', (err) => console.error(err.taskId, err.message));
 * ```
 */
export class InvalidTaskError extends DecodeError {
  /** The task id when the message had a readable one, else null. */
  readonly taskId: string | null;
  /** The task name when the message had a readable one, else null. */
  readonly taskName: string | null;

  constructor(message: string, taskId: string | null, taskName: string | null, options: ErrorOptions = {}) {
    super(message, options);
    this.taskId = taskId;
    this.taskName = taskName;
  }
}

/** A TaskError for an unregistered task (Celery's `NotRegistered`). */
export function notRegistered(name: string): TaskError {
  return new TaskError({ excType: 'NotRegistered', excModule: 'celery.exceptions', excArgs: [name] });
}
