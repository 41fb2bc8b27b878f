/**
 * The one fixture module of the test suites: the broker URL (from one variable, with a
 * default), unique names and ids, polling for a condition, and per-test cleanups.
 *
 * `TEST_BROKER_URL` points every RabbitMQ suite elsewhere; the conformance suite also takes
 * `off` there to run on the embedded broker only.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';

/** The RabbitMQ every integration, interop, fault and conformance suite uses. */
export const BROKER_URL = process.env['TEST_BROKER_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672//';

/**
 * {@link BROKER_URL} with some of its parts changed.
 *
 * @example
 * ```ts
 * brokerUrlWith((u) => (u.password = 'wrong')); // amqp://guest:wrong@127.0.0.1:5672//
 * ```
 */
export function brokerUrlWith(change: (url: URL) => void): string {
  const url = new URL(BROKER_URL);
  change(url);
  return url.href;
}

/** A name no other test (or earlier run) uses: `prefix-` and 8 hex digits. */
export function uid(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A fresh task id, a UUID as Celery makes them. */
export function newTaskId(): string {
  return randomUUID();
}

/** Options of {@link waitUntil}. */
export interface WaitUntilOptions {
  /** Give up after this many ms. @default 10000 */
  timeout?: number;
  /** Poll period in ms. @default 20 */
  interval?: number;
  /** Named in the error when the condition never held. @default 'condition' */
  what?: string;
}

/** `T` without its falsy members: what {@link waitUntil} resolves with. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | '' | null | undefined>;

function isTruthy<T>(value: T): value is Truthy<T> & T {
  return Boolean(value);
}

/**
 * Resolves with the first truthy value `check` returns (awaited), polling every
 * `interval` ms; rejects naming `what` after `timeout` ms.
 *
 * @example
 * ```ts
 * await waitUntil(() => worker.processed === 3, { what: 'three tasks processed' });
 * ```
 */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  options: WaitUntilOptions = {},
): Promise<Truthy<T>> {
  const timeout = options.timeout ?? 10_000;
  const interval = options.interval ?? 20;
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (isTruthy(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${options.what ?? 'condition'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** What a test registers cleanups on. */
export interface Cleanups {
  push(cleanup: () => Promise<unknown> | unknown): void;
}

/**
 * Cleanups for `afterEach(() => cleanups.run())`: newest first, each failure ignored so one
 * failed close cannot leave the rest of a test's resources open.
 *
 * @example
 * ```ts
 * const cleanups = cleanupStack();
 * afterEach(() => cleanups.run());
 * ```
 */
export function cleanupStack(): Cleanups & { run(): Promise<void> } {
  const stack: Array<() => Promise<unknown> | unknown> = [];
  return {
    push: (cleanup) => void stack.push(cleanup),
    run: async () => {
      for (let c = stack.pop(); c !== undefined; c = stack.pop()) {
        try {
          await c();
        } catch {
          // ignored: see above
        }
      }
    },
  };
}
