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
  /** Decoded size limit. */
  readonly maxBodyBytes: number | undefined;
  /** The result cache. */
  readonly cache: ResultCache<TaskMeta>;
  /** Aborted when the backend closes. */
  readonly closingSignal: AbortSignal;
  /** A task queue declaration bound to `channel` (with the exchange: declare binds it). */
  queueFor(routingKey: string, channel: Channel): NoCacheQueue;
}

/** How many queues getMany declares and consumes per pipelined batch. */
export const GET_MANY_BATCH = 1000;

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
 * results first, then in arrival order from one Consumer over all the task queues on one
 * channel. Queues are declared (nowait) and consumed in pipelined batches, and each queue's
 * consumer is cancelled as soon as its task is ready, so 100,000 ids fit in bounded memory.
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
  let channel: Channel | undefined;
  let consumer: Consumer | undefined;
  const ready: Array<[string, TaskMeta]> = [];
  const held: Message[] = [];
  const cancelling = new Set<Promise<unknown>>();
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const fail = (err: unknown): void => {
    failure ??= err instanceof Error ? err : new Error(String(err));
    wake?.();
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

    channel = await ctl.race(source.connection.channel());
    const ch = channel;
    const c = new Consumer(ch, {
      noAck: false, // acked by hand, so that a bad message can be requeued
      autoDeclare: false,
      accept: source.acceptTypes,
      ...(source.maxBodyBytes === undefined ? {} : { maxBytes: source.maxBodyBytes }),
      onMessage: (message) => {
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
        const mine = pending.get(routingKeyFor(meta.task_id));
        if (!isReady(meta.status) || mine !== meta.task_id) {
          // Not ready, or ready for an id outside the request: cache only (done above).
          if (noAck) message.ack();
          else held.push(message);
          ctl.interval();
          return;
        }
        const qrk = routingKeyFor(meta.task_id);
        pending.delete(qrk);
        if (noAck) message.ack();
        else held.push(message);
        ready.push([meta.task_id, meta]);
        // Done with this queue: stop its consumer now so the broker stops holding it for us.
        const p = c.cancelByQueue(qrk).then(
          () => ch.forgetQueue(qrk),
          () => undefined,
        );
        cancelling.add(p);
        void p.then(() => cancelling.delete(p));
        wake?.();
      },
    });
    consumer = c;

    // Declare and consume in pipelined batches while results are being yielded.
    const setup = (async () => {
      const exchange = source.exchange.bind(ch);
      await exchange.declare();
      for (let i = 0; i < order.length; i += GET_MANY_BATCH) {
        if (failure !== undefined || ctl.cancelled !== undefined) return;
        const batch: NoCacheQueue[] = [];
        const declared: Array<Promise<unknown>> = [];
        for (const rk of order.slice(i, i + GET_MANY_BATCH)) {
          if (!pending.has(rk)) continue;
          const q = source.queueFor(rk, ch);
          declared.push(q.queueDeclare({ nowait: true }), q.queueBind({ nowait: true }));
          batch.push(q);
        }
        if (batch.length === 0) continue;
        c.queues = batch;
        await Promise.all([...declared, c.consume()]);
        // The consumer keeps its tags; the queue objects are not needed any more.
        c.queues = [];
      }
    })();
    setup.catch(fail);

    for (;;) {
      const next = ready.shift();
      if (next !== undefined) {
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
      wake = undefined;
    }
  } finally {
    ctl.dispose();
    if (consumer !== undefined) await consumer.cancel().catch(() => undefined);
    await Promise.allSettled([...cancelling]);
    // Not acked: closing the channel gives them back to their queues.
    held.length = 0;
    await channel?.close().catch(() => undefined);
  }
}
