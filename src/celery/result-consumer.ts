/**
 * The consuming side of the backend: waiting for one task (the slow path of `waitFor`), and
 * `getMany` over kombu's ManyQueueConsumer for many task queues.
 *
 * @module
 */
import { TimeoutError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import type { Connection } from '../kombu/connection.js';
import type { DecodeLimits } from '../kombu/decode-limits.js';
import { Consumer } from '../kombu/consumer.js';
import type { Exchange } from '../kombu/exchange.js';
import { ManyQueueConsumer } from '../kombu/many-queue-consumer.js';
import type { Message } from '../kombu/message.js';
import type { NoCacheQueue } from '../kombu/queue.js';
import type { GetManyOptions, TaskMeta } from './backend-types.js';
import type { ResultCache } from './result-cache.js';
import { decodeMeta, routingKeyFor } from './result-meta.js';
import { isReady } from './states.js';
import { WaitControl } from './wait-control.js';

/** What the consuming code needs from the backend. */
export interface ResultSource {
  /** The connection. */
  readonly connection: Connection;
  /** The result exchange (unbound). */
  readonly exchange: Exchange;
  /** Accepted content types (mime set). */
  readonly acceptTypes: ReadonlySet<string>;
  /** The limits results are decoded under. */
  readonly decodeLimits: Readonly<DecodeLimits>;
  /** The result cache. */
  readonly cache: ResultCache<TaskMeta>;
  /** Aborted when the backend closes. */
  readonly closingSignal: AbortSignal;
  /** A task queue declaration, bound to `channel` when given (with the exchange: declare binds it). */
  queueFor(routingKey: string, channel?: Channel): NoCacheQueue;
}

/**
 * How many queues one getMany lane declares and consumes per pipelined batch. RabbitMQ runs a
 * channel's methods one at a time, so a few in flight per lane keep it busy: 64 did as well
 * as 500 (5,400 vs 5,300 collects/s over 30,000 ids), and 16 as well as 64. The pending
 * operations live long enough to reach V8's old generation, so their number sets how far
 * the heap grows between collections: over 50,000 ids, peak RSS 153 MB at 16 vs 272 MB at
 * 64 (500 had peaked at 226 MB heap over 30,000).
 */
export const GET_MANY_BATCH = 16;

/**
 * How often a running getMany acks what it has handled. An ack per result made every queue
 * process on RabbitMQ touch its index a second time while the setup was still running, and
 * lanes stalled behind them for seconds (4,000 results: 700-2,000/s instead of 4,500/s).
 */
export const ACK_INTERVAL_MS = 1000;

/** Most channels one getMany spreads its queues over. */
export const GET_MANY_CHANNELS = 64;

/** Fewest queues per getMany channel: small calls stay on one channel. */
export const GET_MANY_MIN_PER_CHANNEL = 64;

/**
 * Consumes one task's queue on a channel of its own until a READY state arrives.
 * Non-ready states update the cache and call the interval callback; they are acked away
 * when `noAck` (Celery drops them) and left for the broker otherwise. A message that cannot
 * be decoded is rejected with requeue (see the note on auto-delete queues in the backend)
 * and the wait fails with the DecodeError.
 *
 * @example
 * ```ts
 * const meta = await consumeUntilReady(source, id, rk, true, ctl);
 * ```
 */
export async function consumeUntilReady(
  source: ResultSource,
  taskId: string,
  routingKey: string,
  noAck: boolean,
  ctl: WaitControl,
): Promise<TaskMeta> {
  const channel = await ctl.race(source.connection.channel());
  let consumer: Consumer | undefined;
  const toAck: Message[] = [];
  let bad: Message | undefined;
  try {
    return await ctl.race(
      new Promise<TaskMeta>((resolve, reject) => {
        let done = false;
        consumer = new Consumer(channel, {
          queues: [source.queueFor(routingKey, channel)],
          noAck: false, // acked by hand, so that a bad message can still be requeued
          accept: source.acceptTypes,
          onMessage: (message) => {
            if (done) return; // left unacked: the broker requeues it when the channel closes
            let meta: TaskMeta;
            try {
              meta = decodeMeta(message, taskId, source.decodeLimits);
            } catch (err) {
              done = true;
              bad = message;
              reject(err);
              return;
            }
            source.cache.set(meta.task_id, meta);
            if (meta.task_id === taskId && isReady(meta.status)) {
              done = true;
              if (noAck) toAck.push(message);
              resolve(meta);
              return;
            }
            if (noAck) toAck.push(message);
            ctl.interval();
          },
        });
        consumer.consume().catch((err: unknown) => {
          done = true;
          reject(err);
        });
      }),
    );
  } finally {
    // Cancel first, so a requeued message is not redelivered to us; closing the channel
    // then hands every message we did not ack back to the queue.
    await consumer?.cancel().catch(() => undefined);
    for (const m of toAck.splice(0)) if (!m.acknowledged) m.ack();
    if (bad !== undefined && !bad.acknowledged) bad.reject({ requeue: true });
    channel.forgetQueue(routingKey);
    await channel.close().catch(() => undefined);
  }
}

/**
 * Celery's `get_many`: yields `[taskId, meta]` as each task becomes READY, cached ready
 * results first, then in arrival order from consumers over all the task queues.
 *
 * The consuming is kombu's {@link ManyQueueConsumer}, shaped by profiling against bare
 * amqplib on RabbitMQ: the queues spread over up to {@link GET_MANY_CHANNELS} channels, set
 * up {@link GET_MANY_BATCH} at a time per channel, acked in bulk every
 * {@link ACK_INTERVAL_MS}, and, like Celery, all consumers ended at once when the call ends,
 * by closing the channels (one round trip each; RabbitMQ then deletes the auto-delete queues)
 * rather than cancelled one by one as results arrive (a round trip each, queued behind the
 * setup).
 *
 * @throws TimeoutError naming how many results are missing; AbortError; a DecodeError for
 *   an undecodable message (rejected with requeue); a ChannelError for a refused declaration.
 * @example
 * ```ts
 * for await (const [id, meta] of getMany(source, ids, { timeout: 10_000 })) console.log(id, meta.status);
 * ```
 */
export async function* getMany(
  source: ResultSource,
  taskIds: Iterable<string>,
  options: GetManyOptions = {},
): AsyncGenerator<[string, TaskMeta], void, undefined> {
  const noAck = options.noAck ?? true;
  const onMessage = options.onMessage;
  // routing key -> task id, for the ids still awaited.
  const pending = new Map<string, string>();
  const order: string[] = [];
  for (const id of taskIds) {
    const rk = routingKeyFor(id);
    if (!pending.has(rk)) {
      pending.set(rk, id);
      order.push(rk);
    }
  }
  const total = pending.size;
  const ctl = new WaitControl(
    {
      timeout: options.timeout,
      signal: options.signal,
      onInterval: options.onInterval,
      timeoutError: () =>
        new TimeoutError(`The operation timed out. ${pending.size} of ${total} results not ready`),
    },
    source.closingSignal,
  );
  // A ring of ready results: shift() on a large array is O(n), so a head index is kept.
  let ready: Array<[string, TaskMeta] | undefined> = [];
  let head = 0;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const fail = (err: unknown): void => {
    failure ??= err instanceof Error ? err : new Error(String(err));
    wake?.();
  };

  // One handler for every queue. Acks are deferred (many.ack): messages are handled in tag
  // order on a channel, and nothing after a failure is handled, so everything up to the last
  // one handled is exactly what may be acked.
  const receive = (message: Message): void => {
    const rk = message.deliveryInfo.routingKey;
    const expected = pending.get(rk) ?? rk;
    let meta: TaskMeta;
    try {
      meta = decodeMeta(message, expected, source.decodeLimits);
    } catch (err) {
      // The first goes back to its queue and fails the call; redelivered to us, it (or any
      // later bad one) stays unacked until the channel closes: a reject would bring it back.
      if (failure === undefined) {
        message.reject({ requeue: true });
        fail(err);
      }
      return;
    }
    if (failure !== undefined) {
      // The call has failed, but a result that arrived meanwhile is cached (a later read in
      // this process finds it; an auto-delete queue is deleted, messages and all, when the
      // call closes its consumers) and left unacked (a kept queue gets it back).
      source.cache.set(meta.task_id, meta);
      return;
    }
    try {
      onMessage?.(meta);
    } catch (err) {
      fail(err);
      return;
    }
    source.cache.set(meta.task_id, meta);
    // Not acked when noAck is false: closing the channel gives it back to its queue.
    if (noAck) many.ack(message);
    const qrk = meta.task_id === expected ? rk : routingKeyFor(meta.task_id);
    if (!isReady(meta.status) || pending.get(qrk) !== meta.task_id) {
      // Not ready, or ready for an id outside the request: cache only (done above).
      ctl.interval();
      return;
    }
    pending.delete(qrk);
    ready.push([meta.task_id, meta]);
    if (wake !== undefined) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  // The queue as every store declares it (with the exchange: declaring it binds the queue).
  const template = source.queueFor('template');
  const many = new ManyQueueConsumer(source.connection, {
    queue: template.declareParams(),
    bindTo: source.exchange,
    onMessage: receive,
    // After a reconnect only the queues whose result is still to come are set up again.
    wanted: (rk) => pending.has(rk),
    accept: source.acceptTypes,
    maxLanes: GET_MANY_CHANNELS,
    minPerLane: GET_MANY_MIN_PER_CHANNEL,
    batch: GET_MANY_BATCH,
    ackInterval: ACK_INTERVAL_MS,
  });
  many.on('error', fail);

  try {
    // Cached ready results first, like Celery.
    for (const rk of order) {
      const id = pending.get(rk);
      const cached = id === undefined ? undefined : source.cache.get(id);
      if (id !== undefined && cached !== undefined && isReady(cached.status)) {
        pending.delete(rk);
        yield [id, cached];
      }
    }
    if (pending.size === 0) return;
    many.consume(order).catch(fail);

    for (;;) {
      if (head < ready.length) {
        const next = ready[head];
        ready[head] = undefined;
        head += 1;
        if (head === ready.length) {
          ready = [];
          head = 0;
        }
        if (next !== undefined) yield next;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (pending.size === 0) return;
      await ctl.race(
        new Promise<void>((resolve) => {
          wake = resolve;
        }),
      );
    }
  } finally {
    wake = undefined;
    ctl.dispose();
    // Acked before the close, which would otherwise hand them back to their queues. Not
    // for auto-delete queues: the close deletes them, messages and all (the acks doubled
    // RabbitMQ's teardown: 3.5 vs 1.8 s over 4,000 queues); a queue someone else still
    // consumes from lives on and hands that consumer the result too.
    await many.close({ flushAcks: noAck && !template.autoDelete });
  }
}
