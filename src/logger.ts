/**
 * The one logger shape the library writes to, and the rule for errors nobody can receive:
 * an emitter with an `'error'` listener gets the error as an event; without one, the error
 * goes to the logger (once), never into a silent field.
 *
 * @module
 */
import type { EventEmitter } from 'node:events';

/**
 * Where the library writes what it has to say: one line per call, `meta` as extra context.
 * `console` fits; {@link silentLogger} drops everything.
 *
 * @example
 * ```ts
 * const logger: Logger = { debug() {}, info: console.info, warn: console.warn, error: console.error };
 * ```
 */
export interface Logger {
  debug(message: string, ...meta: unknown[]): void;
  info(message: string, ...meta: unknown[]): void;
  warn(message: string, ...meta: unknown[]): void;
  error(message: string, ...meta: unknown[]): void;
}

/**
 * The default logger: `console`, without debug lines.
 *
 * @example
 * ```ts
 * new Worker(app, { logger: consoleLogger });
 * ```
 */
export const consoleLogger: Logger = Object.freeze({
  debug: () => undefined,
  info: (message: string, ...meta: unknown[]) => console.info(message, ...meta),
  warn: (message: string, ...meta: unknown[]) => console.warn(message, ...meta),
  error: (message: string, ...meta: unknown[]) => console.error(message, ...meta),
});

/**
 * A logger that writes nothing (tests, or an application that listens to `'error'` events itself).
 *
 * @example
 * ```ts
 * new AMQPBackend({ logger: silentLogger });
 * ```
 */
export const silentLogger: Logger = Object.freeze({
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
});

/**
 * Hands `error` to whoever can receive it: the emitter's `'error'` listeners when it has any,
 * else the logger (prefixed with `source`). Never throws, so it is safe in callbacks and
 * finally blocks.
 *
 * @example
 * ```ts
 * reportError(this, err, this.logger, 'Connection');
 * ```
 */
export function reportError(
  emitter: Pick<EventEmitter, 'listenerCount' | 'emit'>,
  error: Error,
  logger: Logger,
  source: string,
): void {
  try {
    if (emitter.listenerCount('error') > 0) {
      emitter.emit('error', error);
      return;
    }
  } catch (listenerError) {
    // A throwing 'error' listener is the application's bug; it still must not vanish.
    error = listenerError instanceof Error ? listenerError : new Error(String(listenerError));
  }
  try {
    logger.error(`${source}: ${error.message}`, error);
  } catch {
    // A logger that throws has nowhere left to report to.
  }
}
