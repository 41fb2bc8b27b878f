/**
 * The one place the worker writes to the result backend: every state it stores goes through
 * here, so a change in the backend's API (storeResult / markAs*) is one edit.
 *
 * @module
 */
import type { ResultBackend } from '../backend-types.js';
import { TaskRevokedError } from '../exceptions.js';
import { FAILURE, RETRY, REVOKED, STARTED, SUCCESS } from '../states.js';
import type { Request } from './request.js';

/** The traceback stored with a failure: the error's stack when it has one. */
export function tracebackOf(err: unknown): string | null {
  return err instanceof Error && typeof err.stack === 'string' ? err.stack : null;
}

/**
 * Stores task states through the app's backend, honouring `ignore_result` (message header
 * or task option: nothing is stored) and the request's reply_to / correlation_id.
 *
 * @example
 * ```ts
 * await store.success(req, 5);
 * ```
 */
export class ResultStore {
  readonly #backend: ResultBackend;

  constructor(backend: ResultBackend) {
    this.#backend = backend;
  }

  /** Stores any state (a custom one from `ctx.updateState` too). */
  state(req: Request, state: string, value: unknown, traceback: string | null = null): Promise<unknown> {
    if (req.ignoreResult) return Promise.resolve(undefined);
    return this.#backend.storeResult(req.id, value, state, { request: req.request, traceback });
  }

  /** STARTED with `{pid, hostname}`, as Celery's track_started. */
  started(req: Request): Promise<unknown> {
    return this.state(req, STARTED, { pid: process.pid, hostname: req.hostname });
  }

  /** SUCCESS with the handler's value (undefined becomes null). */
  success(req: Request, value: unknown): Promise<unknown> {
    return this.state(req, SUCCESS, value ?? null);
  }

  /** FAILURE with the error and its traceback. */
  failure(req: Request, err: unknown): Promise<unknown> {
    return this.state(req, FAILURE, err, tracebackOf(err));
  }

  /** RETRY with the error behind it (null when none), as Celery's mark_as_retry. */
  retry(req: Request, exc: Error | null): Promise<unknown> {
    return this.state(req, RETRY, exc, exc === null ? null : tracebackOf(exc));
  }

  /** REVOKED with `TaskRevokedError(reason)` and no traceback, as Celery's mark_as_revoked. */
  revoked(req: Request, reason: string): Promise<unknown> {
    return this.state(req, REVOKED, new TaskRevokedError({ excArgs: [reason] }));
  }
}
