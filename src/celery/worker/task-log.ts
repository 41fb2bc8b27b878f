/**
 * The worker's log lines, worded as Celery's (`celery.app.trace` and `celery.worker`), so
 * a Node worker's log reads like a Celery worker's:
 *
 * ```text
 * Task tasks.add[6f1c...] received
 * Task tasks.add[6f1c...] succeeded in 0.0021s: 5
 * Task tasks.fail[0a2b...] raised unexpected: ValueError('bad')
 * ```
 *
 * @module
 */
import type { Logger } from '../../logger.js';
import { silentLogger } from '../../logger.js';
import { exceptionToMeta, pythonRepr } from '../exceptions.js';
import { boundedRepr } from './request.js';
import type { Request } from './request.js';

/** Celery's log levels, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;

/** A Celery log level name (`--loglevel`), case-insensitive on the command line. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Python's `repr()` of an exception as Celery logs and sends it: `ValueError('bad')`.
 *
 * @example
 * ```ts
 * excRepr(new RangeError('too big')); // "ValueError('too big')"
 * ```
 */
export function excRepr(err: unknown): string {
  const meta = exceptionToMeta(err);
  const args = meta.exc_message.length > 20 ? meta.exc_message.slice(0, 20) : meta.exc_message;
  return `${meta.exc_type}(${args.map((a) => cutRepr(a)).join(', ')})`;
}

function cutRepr(value: unknown): string {
  return typeof value === 'string' && value.length > 1024
    ? pythonRepr(`${value.slice(0, 1021)}...`)
    : boundedRepr(value);
}

/** Writes the per-task lines at Celery's levels, skipping those below the configured one. */
export class TaskLog {
  readonly logger: Logger;
  /** True when info lines (one or two per task) are written. */
  readonly info: boolean;
  readonly #debug: boolean;
  readonly #warning: boolean;

  constructor(logger: Logger, level: LogLevel) {
    this.logger = logger;
    const rank = LOG_LEVELS.indexOf(level);
    const on = logger !== silentLogger;
    this.#debug = on && rank <= 0;
    this.info = on && rank <= 1;
    this.#warning = on && rank <= 2;
  }

  received(req: Request): void {
    if (this.info) this.logger.info(`Task ${req.name}[${req.id}] received`);
  }

  succeeded(req: Request, runtime: number, value: unknown): void {
    if (this.info)
      this.logger.info(`Task ${req.name}[${req.id}] succeeded in ${runtime}s: ${boundedRepr(value)}`);
  }

  failed(req: Request, err: unknown): void {
    const tb = err instanceof Error && typeof err.stack === 'string' ? `\n${err.stack}` : '';
    this.logger.error(`Task ${req.name}[${req.id}] raised unexpected: ${excRepr(err)}${tb}`);
  }

  retry(req: Request, reason: Error): void {
    if (this.info) this.logger.info(`Task ${req.name}[${req.id}] retry: ${reason.message}`);
  }

  discarded(req: Request): void {
    if (this.info) this.logger.info(`Discarding revoked task: ${req.name}[${req.id}]`);
  }

  terminated(req: Request): void {
    if (this.info) this.logger.info(`Terminating ${req.id} (SIGTERM)`);
  }

  softLimit(req: Request, seconds: number): void {
    if (this.#warning) this.logger.warn(`Soft time limit (${seconds}s) exceeded for ${req.name}[${req.id}]`);
  }

  hardLimit(req: Request, seconds: number): void {
    this.logger.error(`Hard time limit (${seconds}s) exceeded for ${req.name}[${req.id}]`);
  }

  unknown(req: Request): void {
    this.logger.error(
      `Received unregistered task of type ${pythonRepr(req.type)}.\nThe message has been ignored and discarded.`,
    );
  }

  invalid(err: Error): void {
    this.logger.error(`Received invalid task message: ${err.message}`);
  }

  debug(text: string): void {
    if (this.#debug) this.logger.debug(text);
  }

  warning(text: string): void {
    if (this.#warning) this.logger.warn(text);
  }
}
