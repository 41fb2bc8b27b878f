/**
 * The consuming side of the backend: waiting for one task (the slow path of `waitFor`) and
 * `getMany` over one channel and one kombu Consumer for many task queues.
 *
 * @module
 */
import { TimeoutError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import type { Connection } from '../kombu/connection.js';
import { Consumer } from '../kombu/consumer.js';
import type { Exchange } from '../kombu/exchange.js';
import { Message } from '../kombu/message.js';
import { isRecoverable } from '../kombu/retry.js';
import type { MessageOptions } from '../kombu/message.js';
import type { NoCacheQueue } from '../kombu/queue.js';
import type {
  ConsumeOptions,
  Delivery,
  QueueDeclareOk,
  QueueDeclareOptions,
  TransportChannel,
} from '../transport/types.js';
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
  /** Decoded size limit. */
  readonly maxBodyBytes: number | undefined;
  /** The result cache. */
  readonly cache: ResultCache<TaskMeta>;
  /** Aborted when the backend closes. */
  readonly closingSignal: AbortSignal;
  /** A task queue declaration bound to `channel` (with the exchange: declare binds it). */
  queueFor(routingKey: string, channel: Channel): NoCacheQueue;
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

/** Frame options of a nowait bind. */
const NOWAIT = { nowait: true } as const;

/** getMany's declarations and consumers are not recorded: its recovery hooks restore them. */
const NO_RECORD = { recover: false } as const;

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
          ...(source.maxBodyBytes === undefined ? {} : { maxBytes: source.maxBodyBytes }),
          onMessage: (message) => {
            if (done) return; // left unacked: the broker requeues it when the channel closes
            let meta: TaskMeta;
            try {
              meta = decodeMeta(message, taskId);
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
 * Why it is shaped this way (profiled against bare amqplib on RabbitMQ):
 * - The queues are spread over up to {@link GET_MANY_CHANNELS} channels: the broker runs
 *   each channel's declares and consumes one after another, so one channel caps the setup
 *   at one queue per round trip.
 * - Each lane declares (nowait) and consumes one chunk of {@link GET_MANY_BATCH} queues at a
 *   time, so 100,000 ids never have more than a chunk of promises in flight per lane.
 * - Consumers are not cancelled one by one as results arrive (a round trip each, which
 *   queued behind the setup): like Celery, they all go when the call ends, by closing the
 *   lanes' channels, one round trip per lane; RabbitMQ then deletes the auto-delete queues.
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
  const channels: Channel[] = [];
  let ackTimer: NodeJS.Timeout | undefined;
  const unhook: Array<() => void> = [];
  let ackOnClose = noAck;
  // A ring of ready results: shift() on a large array is O(n), so a head index is kept.
  let ready: Array<[string, TaskMeta]> = [];
  let head = 0;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  let finished = false;
  const fail = (err: unknown): void => {
    failure ??= err instanceof Error ? err : new Error(String(err));
    wake?.();
  };

  // Acks are deferred and sent as one `multiple` ack per channel (see flushAcks): the
  // highest delivery tag handled so far on each transport channel. Tags are handled in
  // order on a channel, and nothing after a failure is handled, so everything up to that
  // tag is exactly what may be acked.
  const toAck = new Map<TransportChannel, number>();
  const flushAcks = (): void => {
    for (const [tch, tag] of toAck) {
      // A closed channel's unacked messages went back to their queues; they come back to
      // a recovered consumer and are filtered out as no longer pending.
      if (tch.closed) continue;
      try {
        tch.ack(tag, true);
      } catch {
        // Closing under us: same as above.
      }
    }
    toAck.clear();
  };

  // One handler for every lane: no per-queue closure.
  const receive = (message: Message, tch: TransportChannel): void => {
    if (failure !== undefined) return; // unacked: requeued when the channel closes
    const rk = message.deliveryInfo.routingKey;
    const expected = pending.get(rk) ?? rk;
    let meta: TaskMeta;
    try {
      meta = decodeMeta(message, expected);
    } catch (err) {
      // Back to the queue (redelivered to us it stays unacked until the channel closes).
      message.reject({ requeue: true });
      fail(err);
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
    if (noAck) toAck.set(tch, message.deliveryInfo.deliveryTag);
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

  try {
    // Cached ready results first, like Celery.
    for (const rk of order) {
      const id = pending.get(rk) as string;
      const cached = source.cache.get(id);
      if (cached !== undefined && isReady(cached.status)) {
        pending.delete(rk);
        yield [id, cached];
      }
    }
    if (pending.size === 0) return;

    const first = await ctl.race(source.connection.channel());
    channels.push(first);
    await ctl.race(source.exchange.bind(first).declare());
    const lanes = Math.min(GET_MANY_CHANNELS, Math.ceil(pending.size / GET_MANY_MIN_PER_CHANNEL));
    // Chunks small enough that every lane gets a share of a small call.
    const chunk = Math.min(GET_MANY_BATCH, Math.ceil(pending.size / lanes));
    let cursor = 0;
    // Straight to the channel, with option objects built once and one handler for all:
    // a Consumer would keep a Queue object, a tag entry and a promise per id.
    const template = source.queueFor('template', first);
    ackOnClose = noAck && !template.autoDelete;
    const exchangeName = source.exchange.name;
    const declareOptions: QueueDeclareOptions = {
      durable: template.durable,
      exclusive: template.exclusive,
      autoDelete: template.autoDelete,
      passive: false,
      nowait: false,
      ...(template.queueArguments === undefined ? {} : { arguments: template.queueArguments }),
    };
    const messageOptions: MessageOptions = {
      accept: source.acceptTypes,
      maxBytes: source.maxBodyBytes,
      noAck: false, // acked by hand, so that a bad message can be requeued
    };
    const consumeOptions: ConsumeOptions = { noAck: false };
    const connection = source.connection;
    // A lost connection during recovery makes the channel recover again; anything else
    // (a refused declaration) ends the call.
    const failUnlessRecoverable = (err: unknown): void => {
      if (isRecoverable(err)) throw err;
      fail(err);
    };
    const deliver = (d: Delivery, tch: TransportChannel): void => {
      try {
        receive(new Message(d, tch, messageOptions), tch);
      } finally {
        connection.dispatched();
      }
    };
    // Sets up one queue: declared and consumed, and bound when still empty. A queue that
    // already holds a message was routed to through its binding, so the bind (a metadata
    // transaction on RabbitMQ: as costly as the rest of the setup together) is skipped; so
    // is the bind of a queue whose result overtook the declare-ok within one socket read.
    const setUp = (
      rk: string,
      declare: (rk: string) => Promise<QueueDeclareOk | null>,
      bind: (rk: string) => Promise<void>,
      consume: (rk: string) => Promise<string>,
    ): Array<Promise<unknown>> => [
      declare(rk).then((ok) => {
        if ((ok === null || ok.messageCount === 0) && pending.has(rk)) return bind(rk);
        return undefined;
      }),
      consume(rk),
    ];
    const lane = async (ch: Channel): Promise<void> => {
      // Nothing is recorded per queue (at 100,000 ids the records were most of the memory):
      // the chunks this lane took are its record, and its recovery hook sets up again, on
      // the reopened channel, the queues of those chunks whose result is still to come.
      const taken: number[] = [];
      const declare = (rk: string): Promise<QueueDeclareOk | null> =>
        ch.declareQueue(rk, declareOptions, undefined, NO_RECORD);
      const bind = (rk: string): Promise<void> =>
        ch.bindQueue(rk, exchangeName, rk, undefined, NOWAIT, undefined, NO_RECORD);
      const consume = (rk: string): Promise<string> =>
        ch.consume(rk, deliver, consumeOptions, undefined, NO_RECORD);
      const recoverLane = async (tch: TransportChannel): Promise<void> => {
        const onDelivery = (d: Delivery): void => deliver(d, tch);
        let ops: Array<Promise<unknown>> = [];
        for (const start of taken) {
          for (let i = start; i < Math.min(order.length, start + chunk); i += 1) {
            const rk = order[i] as string;
            if (!pending.has(rk)) continue;
            ops.push(
              ...setUp(
                rk,
                (q) => tch.declareQueue(q, declareOptions),
                (q) => tch.bindQueue(q, exchangeName, q, undefined, NOWAIT),
                (q) => tch.consume(q, onDelivery, consumeOptions),
              ),
            );
            if (ops.length >= 2 * GET_MANY_BATCH) {
              await Promise.all(ops);
              ops = [];
            }
          }
        }
        await Promise.all(ops);
      };
      unhook.push(ch.addRecoveryHook((tch) => recoverLane(tch).catch(failUnlessRecoverable)));
      while (cursor < order.length) {
        if (finished || failure !== undefined || ctl.cancelled !== undefined) return;
        const start = cursor;
        const end = Math.min(order.length, cursor + chunk);
        taken.push(start);
        const ops: Array<Promise<unknown>> = [];
        for (; cursor < end; cursor += 1) {
          const rk = order[cursor] as string;
          if (pending.has(rk)) ops.push(...setUp(rk, declare, bind, consume));
        }
        await Promise.all(ops);
      }
    };
    const setup = Promise.all(
      Array.from({ length: lanes }, async (_, i) => {
        const ch = i === 0 ? first : await source.connection.channel();
        if (i !== 0) {
          // The call may have ended while this lane's channel was opening.
          if (finished) return ch.close();
          channels.push(ch);
        }
        await lane(ch);
      }),
    );
    setup.catch(fail);
    // A long call acks as it goes, so that the broker does not hold every delivered result.
    ackTimer = setInterval(flushAcks, ACK_INTERVAL_MS);
    ackTimer.unref();

    for (;;) {
      if (head < ready.length) {
        const next = ready[head] as [string, TaskMeta];
        ready[head] = undefined as unknown as [string, TaskMeta];
        head += 1;
        if (head === ready.length) {
          ready = [];
          head = 0;
        }
        yield next;
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
    finished = true;
    wake = undefined;
    ctl.dispose();
    clearInterval(ackTimer);
    for (const off of unhook) off();
    // Acked before the close, which would otherwise hand them back to their queues. Not
    // for auto-delete queues: the close deletes them, messages and all (the acks doubled
    // RabbitMQ's teardown: 3.5 vs 1.8 s over 4,000 queues); a queue someone else still
    // consumes from lives on and hands that consumer the result too.
    if (ackOnClose) flushAcks();
    // One close per lane cancels all its consumers at once and hands back what we did not ack.
    await Promise.allSettled(channels.map((c) => c.close()));
  }
}
