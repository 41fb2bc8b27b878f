/**
 * Lost queues: finding the consumed queues a reconnect left behind, and bringing back a
 * consumer whose queue the broker cancelled.
 *
 * A queue and what it holds live on one RabbitMQ node (classic queues). It is lost when
 * that node goes down (a transient queue is deleted with it; a durable one is unavailable
 * until the node returns), or when it is auto-deleted because its last consumer's
 * connection died. Consumers on another node learn it from the broker's basic.cancel; a
 * client whose own connection died finds the queue missing once it has reconnected. Either
 * way the Channel declares the queue again (on the node it is connected to now) and
 * consumes from it again, and the Connection emits 'queueLost' so that whoever waited on
 * the queue (a result backend) can tell its callers that what it held is gone.
 *
 * @module
 */
import { CeleryAmqpError, QueueLostError } from '../errors.js';
import type { TransportChannel, TransportConnection } from '../transport/types.js';
import type { Connection } from './connection.js';
import { isRecoverable, retryIntervals, sleep } from './retry.js';
import type { RetryPolicy } from './retry.js';

/**
 * Sleeps between attempts to bring back a consumer whose queue is unavailable (its home
 * node is down): fast at first, as a restarted node is back within seconds, then every 2 s.
 */
const RESTORE_POLICY: RetryPolicy = { intervalStart: 250, intervalStep: 250, intervalMax: 1750 };

/**
 * How long a durable queue must stay missing before it counts as lost: while its node
 * stops gracefully (stop_app) RabbitMQ answers "no queue" for a moment, and only then "home
 * node is down" (seen on 3.10). A transient queue has no such in-between: it dies with its node.
 */
const DURABLE_CONFIRM_MS = 2000;

/** Passive declares sent at once by {@link missingQueues}. */
const PROBE_CHUNK = 64;

/**
 * True for RabbitMQ's refusal of a durable classic queue whose home node is down (404
 * "home node ... is down or inaccessible"): the queue and its messages come back with the
 * node, so nothing is lost, only unavailable for now.
 *
 * @example
 * ```ts
 * isUnavailable(err); // true for "404 NOT_FOUND - home node 'rabbit@a' of durable queue 'q' ... is down or inaccessible"
 * ```
 */
export function isUnavailable(err: unknown): boolean {
  return err instanceof CeleryAmqpError && err.code === 'NOT_FOUND' && /home node/.test(err.message);
}

/** True for a 404 that says the queue does not exist (rather than being unavailable). */
function isMissing(err: unknown): boolean {
  return err instanceof CeleryAmqpError && err.code === 'NOT_FOUND' && !isUnavailable(err);
}

/**
 * The queues among `names` that no longer exist, by passive declares on a channel of their
 * own (a 404 closes the channel it comes on). Pipelined a chunk at a time; a chunk with a
 * failure is checked again one queue at a time.
 *
 * @throws a recoverable error when the connection drops meanwhile; any error other than a 404.
 */
export async function missingQueues(tconn: TransportConnection, names: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  let probe: TransportChannel | undefined;
  const open = async (): Promise<TransportChannel> => {
    if (probe === undefined || probe.closed) probe = await tconn.createChannel();
    return probe;
  };
  try {
    for (let i = 0; i < names.length; i += PROBE_CHUNK) {
      const chunk = names.slice(i, i + PROBE_CHUNK);
      const ch = await open();
      const results = await Promise.allSettled(chunk.map((n) => ch.declareQueue(n, { passive: true })));
      if (results.every((r) => r.status === 'fulfilled')) continue;
      for (const r of results) if (r.status === 'rejected' && isRecoverable(r.reason)) throw r.reason;
      for (const name of chunk) {
        try {
          await (await open()).declareQueue(name, { passive: true });
        } catch (err) {
          if (isMissing(err)) missing.push(name);
          else if (!isUnavailable(err)) throw err;
        }
      }
    }
  } finally {
    if (probe !== undefined && !probe.closed) await probe.close().catch(() => undefined);
  }
  return missing;
}

/**
 * After a reconnect, before a channel's declarations are replayed: reports each consumed
 * queue that is gone (auto-deleted with the lost connection, or deleted with its node) on
 * the connection's 'queueLost'; the replay then declares it again, empty. A failure of the
 * check that is not a dropped connection is reported, not thrown: recovery goes on.
 *
 * @throws the recoverable error when the connection drops meanwhile.
 */
export async function reportMissing(
  connection: Connection,
  tconn: TransportConnection,
  queues: readonly string[],
): Promise<void> {
  if (queues.length === 0) return;
  try {
    for (const q of await missingQueues(tconn, queues)) {
      connection.queueLost(q, queueLostError(q, 'missing', tconn.displayUrl));
    }
  } catch (err) {
    if (isRecoverable(err)) throw err;
    connection.reportError(err);
  }
}

/**
 * The error for a lost queue, as the 'queueLost' event carries it.
 *
 * @param how - `'cancelled'`: the broker cancelled the consumer; `'missing'`: gone after a reconnect.
 */
export function queueLostError(queue: string, how: 'cancelled' | 'missing', url: string): QueueLostError {
  const why =
    how === 'cancelled'
      ? `the broker cancelled its consumer and it is gone from ${url}: deleted, or with its node`
      : `it was gone after reconnecting to ${url}: auto-deleted when its consumer's connection died, or deleted with its node`;
  return new QueueLostError(
    queue,
    `queue ${JSON.stringify(queue)} was lost with the messages in it (${why}); it was declared again and is consumed again`,
  );
}

/** What a {@link ConsumerRestorer} needs of its Channel. */
export interface RestoreHooks<R> {
  /** The connection (to reach the broker, to emit 'queueLost' and to report what could not be restored). */
  readonly connection: Connection;
  /** The queue a consumer consumes from. */
  queueOf(record: R): string;
  /** True when that queue was declared durable. */
  durable(record: R): boolean;
  /** Declares the consumer's queue and its bindings again on `ch`; false when the queue is no longer recorded. */
  redeclare(record: R, ch: TransportChannel): Promise<boolean>;
  /** Starts the consumer again with its tag and handler on the channel's transport channel. */
  resume(tag: string, record: R): Promise<void>;
}

/**
 * Brings back consumers the broker cancelled, one loop per consumer: when the queue is
 * gone, report it ('queueLost'); declare it again (on a channel of its own, so that a
 * refusal cannot close the consumer's channel); consume again with the same tag. A durable
 * queue whose home node is down is not lost, only unavailable: it is retried, unreported,
 * until the node returns. A consumer cancelled or a channel closed meanwhile ends its loop.
 *
 * @example
 * ```ts
 * const restorer = new ConsumerRestorer({ connection, queueOf, durable, redeclare, resume });
 * restorer.start(tag, record); // on the broker's basic.cancel
 * ```
 */
export class ConsumerRestorer<R> {
  readonly #hooks: RestoreHooks<R>;
  /** Consumers being brought back, by tag. */
  readonly #pending = new Map<string, R>();
  #abort: AbortController | undefined;

  constructor(hooks: RestoreHooks<R>) {
    this.#hooks = hooks;
  }

  /** Starts bringing back the consumer `tag` (its queue was cancelled by the broker). */
  start(tag: string, record: R): void {
    this.#pending.set(tag, record);
    const signal = (this.#abort ??= new AbortController()).signal;
    void this.#run(tag, record, signal).catch((err: unknown) => {
      if (this.#pending.get(tag) === record) this.#pending.delete(tag);
      // Ended by close(): nothing to report.
      if (!signal.aborted) this.#hooks.connection.reportError(err);
    });
  }

  /** Stops bringing back `tag` (the consumer was cancelled by its owner); true when it was pending. */
  cancel(tag: string): boolean {
    return this.#pending.delete(tag);
  }

  /** Stops every loop (the channel closed). */
  close(): void {
    this.#pending.clear();
    this.#abort?.abort();
    this.#abort = undefined;
  }

  async #run(tag: string, record: R, signal: AbortSignal): Promise<void> {
    const intervals = retryIntervals(RESTORE_POLICY);
    const wanted = (): boolean => !signal.aborted && this.#pending.get(tag) === record;
    const queue = this.#hooks.queueOf(record);
    let reported = false;
    let missingSince: number | undefined;
    while (wanted()) {
      try {
        const tconn = await this.#hooks.connection.whenConnected();
        if (!reported && (await missingQueues(tconn, [queue])).length > 0) {
          missingSince ??= Date.now();
          if (this.#hooks.durable(record) && Date.now() - missingSince < DURABLE_CONFIRM_MS) {
            await sleep(250, { signal });
            continue;
          }
          if (!wanted()) return;
          reported = true;
          this.#hooks.connection.queueLost(queue, queueLostError(queue, 'cancelled', tconn.displayUrl));
        } else missingSince = undefined;
        const probe = await tconn.createChannel();
        let recorded: boolean;
        try {
          recorded = await this.#hooks.redeclare(record, probe);
        } finally {
          if (!probe.closed) await probe.close().catch(() => undefined);
        }
        if (!wanted()) return;
        this.#pending.delete(tag);
        // Deleted on purpose by its owner (no longer recorded): the consumer just ends.
        if (recorded) await this.#hooks.resume(tag, record);
        return;
      } catch (err) {
        if (!isRecoverable(err) && !isUnavailable(err)) throw err;
      }
      await sleep(intervals.next().value, { signal });
    }
  }
}
