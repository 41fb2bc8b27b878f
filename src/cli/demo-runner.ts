/**
 * The backend side of `celery-amqp demo` (and of the bench, which reuses it): store N results
 * with bounded concurrency and collect them with one `getMany`, checking every value.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { AMQPBackend } from '../celery/amqp-backend.js';
import type { TaskMeta } from '../celery/backend-types.js';

/** N fresh task ids (UUID4, as Celery makes them). */
export function taskIds(n: number): string[] {
  return Array.from({ length: n }, () => randomUUID());
}

/** The value stored for the i-th result: small, like a typical task return, and checkable. */
export function valueFor(i: number): { i: number; ok: boolean } {
  return { i, ok: true };
}

/**
 * Stores `SUCCESS` results for every id, `concurrency` in flight; returns the elapsed ms.
 *
 * @example
 * ```ts
 * const ms = await storeAll(backend, ids, 64, () => bar.increment());
 * ```
 */
export async function storeAll(
  backend: AMQPBackend,
  ids: readonly string[],
  concurrency: number,
  onStored: () => void = () => {},
): Promise<number> {
  const start = performance.now();
  await pool(ids.length, concurrency, async (i) => {
    await backend.storeResult(ids[i] as string, valueFor(i), 'SUCCESS');
    onStored();
  });
  return performance.now() - start;
}

/** What {@link collectAll} found. */
export interface CollectOutcome {
  /** From the getMany call to the last result in hand. */
  ms: number;
  /** From the last result to getMany's return (its consumer cancels and channel close). */
  teardownMs: number;
  received: number;
  /** Results that arrived with the wrong status or value. */
  wrong: number;
}

/**
 * Collects every id with one `getMany` and checks each value against {@link valueFor};
 * returns the time to the last result, the teardown time after it, and the counts (a
 * timeout ends the collection, it does not throw).
 *
 * @example
 * ```ts
 * const { ms, received, wrong } = await collectAll(backend, ids, 120_000);
 * ```
 */
export async function collectAll(
  backend: AMQPBackend,
  ids: readonly string[],
  timeoutMs: number,
  onMessage: (meta: TaskMeta) => void = () => {},
  verify = true,
): Promise<CollectOutcome> {
  const index = verify ? new Map(ids.map((id, i) => [id, i])) : undefined;
  const seen = new Set<string>();
  let wrong = 0;
  const start = performance.now();
  let last = start;
  try {
    for await (const [id, meta] of backend.getMany(ids, { timeout: timeoutMs })) {
      last = performance.now();
      if (seen.has(id)) continue;
      seen.add(id);
      onMessage(meta);
      if (index !== undefined) {
        const i = index.get(id);
        const value = meta.result as { i?: unknown; ok?: unknown } | null;
        if (i === undefined || meta.status !== 'SUCCESS' || value?.i !== i || value.ok !== true) wrong++;
      }
      if (seen.size === ids.length) break;
    }
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'TIMEOUT') throw err;
  }
  const end = performance.now();
  // Both clocks are reported: results are usable from `last`, the call returns at `end`.
  return {
    ms: (seen.size === ids.length ? last : end) - start,
    teardownMs: end - last,
    received: seen.size,
    wrong,
  };
}

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` in flight; rejects on the
 * first failure (the remaining workers stop picking up new items).
 *
 * @example
 * ```ts
 * await pool(1000, 64, (i) => backend.storeResult(ids[i]!, i, 'SUCCESS'));
 * ```
 */
export async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
}

/**
 * Items per second, rounded to a whole number.
 *
 * @example
 * ```ts
 * rate(4000, 2000); // 2000
 * ```
 */
export function rate(count: number, ms: number): number {
  return ms <= 0 ? 0 : Math.round((count * 1000) / ms);
}

/** Rounds to `digits` decimals (JSON figures stay readable). */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
