/**
 * The round-trip driver of the cluster suite: a Node client keeps a window of tasks in flight
 * until every one of `total` has its result, while a node is lost and brought back; it
 * counts what each task took (failed waits, re-sends) and measures the failover time, the
 * longest gap in the stream of replies after the loss began.
 *
 * @module
 */
import type { Celery } from '../../src/celery/app.js';
import type { AsyncResult } from '../../src/celery/async-result.js';
import { QueueLostError, TimeoutError } from '../../src/errors.js';
import { newTaskId } from '../fixture.js';
import { percentile } from './cluster.js';

/** Options of {@link roundTrips}. */
export interface RoundTripOptions {
  /** The client app (its default queue is the task queue). */
  client: Celery;
  /** Name of the task. @default 'echo' */
  task?: string;
  /** The arguments of round trip `i`; the task must return `i`. @default `[i]` */
  args?: (i: number) => unknown[];
  /** Round trips in all. @default 2000 */
  total?: number;
  /** Tasks in flight at most. @default 16 */
  window?: number;
  /**
   * Round trips started per second at most: a steady stream, so that a node's loss (which
   * rabbitmqctl takes a second or more to carry out) falls in the middle of the run.
   * @default 400
   */
  ratePerSec?: number;
  /** Each wait's deadline in ms. @default 30000 */
  timeoutMs?: number;
  /** Called with the number of round trips done after each one. */
  onProgress?: (done: number) => void;
}

/** What a run of round trips saw. */
export interface RoundTripStats {
  /** Round trips with the right result (each task id once). */
  completed: number;
  /** Results that were not the value sent. */
  wrongValues: number;
  /** Waits that failed with QueueLostError (the reply queue was lost): the task was sent again. */
  queueLost: number;
  /** Sends that failed (the connection dropped under the publish): the task was sent again. */
  sendFailures: number;
  /** The distinct errors of those sends, as text. */
  sendErrors: string[];
  /** Waits that ran to their deadline: a result lost without notice. */
  timeouts: number;
  /** The task ids of those waits. */
  timedOut: string[];
  /** Any other error, as text. */
  otherErrors: string[];
  /** Arrival time (ms since the epoch) of each result, in order. */
  arrivals: number[];
  /** Task ids, by round-trip index. */
  ids: string[];
}

/**
 * Runs `total` round trips with `window` in flight. A task whose wait fails with
 * QueueLostError, or whose send fails, is sent again with the same id (the test task is
 * idempotent); a wait that times out is counted and sent again too, so the run always ends.
 */
export async function roundTrips(options: RoundTripOptions): Promise<RoundTripStats> {
  const total = options.total ?? 2000;
  const window = options.window ?? 16;
  const timeout = options.timeoutMs ?? 30_000;
  const task = options.task ?? 'echo';
  const stats: RoundTripStats = {
    completed: 0,
    wrongValues: 0,
    queueLost: 0,
    sendFailures: 0,
    sendErrors: [],
    timeouts: 0,
    timedOut: [],
    otherErrors: [],
    arrivals: [],
    ids: Array.from({ length: total }, () => newTaskId()),
  };
  let next = 0;
  const startedAt = Date.now();
  const spacing = 1000 / (options.ratePerSec ?? 400);
  const one = async (i: number): Promise<void> => {
    const due = startedAt + i * spacing - Date.now();
    if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
    const id = stats.ids[i] ?? newTaskId();
    for (let attempt = 0; attempt < 10; attempt++) {
      let r: AsyncResult;
      try {
        // Resolves once the broker has the task (publisher confirms), else rejects.
        r = await options.client.sendTask(task, options.args?.(i) ?? [i], {}, { taskId: id });
      } catch (err) {
        stats.sendFailures++;
        const text = String(err);
        if (!stats.sendErrors.includes(text)) stats.sendErrors.push(text);
        continue;
      }
      try {
        const value = await r.get({ timeout });
        stats.arrivals.push(Date.now());
        if (value === i) stats.completed++;
        else stats.wrongValues++;
        options.onProgress?.(stats.completed + stats.wrongValues);
        return;
      } catch (err) {
        if (err instanceof QueueLostError) stats.queueLost++;
        else if (err instanceof TimeoutError) {
          stats.timeouts++;
          stats.timedOut.push(id);
        } else stats.otherErrors.push(String(err));
      }
    }
  };
  const lane = async (): Promise<void> => {
    for (let i = next++; i < total; i = next++) await one(i);
  };
  await Promise.all(Array.from({ length: window }, lane));
  return stats;
}

/**
 * The failover time: the longest gap between consecutive results that ends after `lostAt`
 * (the start of the node's loss) and starts before `until` (when it was being brought back).
 */
export function failoverGap(arrivals: readonly number[], lostAt: number, until = Infinity): number {
  let gap = 0;
  for (let k = 1; k < arrivals.length; k++) {
    const a = arrivals[k - 1] ?? 0;
    const b = arrivals[k] ?? 0;
    if (b > lostAt && a < until) gap = Math.max(gap, b - a);
  }
  return gap;
}

/** p50 and p99 of failover times, as text: `p50 123 ms, p99 456 ms (n=4)`. */
export function describeGaps(gaps: readonly number[]): string {
  return `p50 ${percentile(gaps, 50)} ms, p99 ${percentile(gaps, 99)} ms (n=${gaps.length})`;
}
