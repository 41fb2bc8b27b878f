/**
 * The backend side of the bench: store and collect as `celery-amqp demo` does (the helpers
 * are shared with it), and time `waitFor` on already-stored results.
 *
 * @module
 */
import type { AMQPBackend } from '../src/celery/amqp-backend.js';
import { percentile } from './stats.js';

export { collectAll, storeAll, taskIds, valueFor } from '../src/cli/demo-runner.js';
export type { CollectOutcome } from '../src/cli/demo-runner.js';

/**
 * Latency of `waitFor` on results that are already stored: one sequential call per id
 * (waitFor consumes the result, so each sample needs an id of its own). Returns ms.
 *
 * @example
 * ```ts
 * await storeAll(backend, ids, 64); const lat = await waitForLatencies(backend, ids);
 * ```
 */
export async function waitForLatencies(backend: AMQPBackend, ids: readonly string[]): Promise<number[]> {
  const latencies: number[] = [];
  for (const id of ids) {
    const start = performance.now();
    await backend.waitFor(id, { timeout: 10_000, propagate: false });
    latencies.push(performance.now() - start);
  }
  return latencies;
}

/** p50 and p99 of latency samples, in ms. */
export function latencySummary(latencies: readonly number[]): { p50: number; p99: number } {
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}
