/**
 * The bare-amqplib baseline of `bench`: the same wire shape as the backend (docs/wire.md sections
 * 1-3: a direct durable `celeryresults` exchange, one durable auto-delete queue per task named
 * after the id without dashes, with x-expires), written as directly as amqplib allows.
 *
 * This is the only place outside src/transport that touches amqplib, on purpose: it is the
 * yardstick the backend is measured against, so it must not go through the library.
 *
 * Fairness rules, so the ratio means something:
 * - same concurrency: `concurrency` confirm channels, one store in flight on each, as the
 *   backend gets `concurrency` concurrent storeResult calls;
 * - same guarantees: every publish waits for its broker confirm (the backend's default
 *   `confirmPublish: true`), and queue + binding are declared before every publish
 *   (Celery's NoCacheQueue);
 * - same work per message: the body is JSON-encoded on store and decoded on collect;
 * - best-case socket: TCP_NODELAY on (amqplib leaves it off by default).
 *
 * @module
 */
import { connect } from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { pool } from './stats.js';

/** Settings of the baseline, mirroring the backend's. */
export interface RawOptions {
  url: string;
  concurrency: number;
  exchange: string;
  /** Durable exchange/queues and delivery_mode 2. */
  persistent: boolean;
  /** x-expires in ms, or null for none. */
  expires: number | null;
}

/** The queue (and routing key) of a task: its id without dashes. */
export function queueName(taskId: string): string {
  return taskId.replace(/-/g, '');
}

/**
 * A bare amqplib client with `concurrency` confirm channels.
 *
 * @example
 * ```ts
 * const raw = await RawAmqp.open({ url, concurrency: 64, exchange: 'celeryresults', persistent: true, expires: 86_400_000 });
 * const storeMs = await raw.store(ids, valueFor);
 * const collectMs = await raw.collect(ids, 60_000);
 * await raw.deleteQueues(allIds); await raw.close();
 * ```
 */
export class RawAmqp {
  readonly #conn: ChannelModel;
  readonly #channels: ConfirmChannel[];
  readonly #options: RawOptions;

  private constructor(conn: ChannelModel, channels: ConfirmChannel[], options: RawOptions) {
    this.#conn = conn;
    this.#channels = channels;
    this.#options = options;
  }

  /** Connects, opens the channels and declares the exchange once. */
  static async open(options: RawOptions): Promise<RawAmqp> {
    // amqplib reads `//` as vhost "/", as kombu does, so the URL is passed as is.
    const conn = await connect(options.url, { noDelay: true });
    // Channel errors (a 404 on cleanup) must not become unhandled 'error' events.
    conn.on('error', () => {});
    const channels = await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        const ch = await conn.createConfirmChannel();
        ch.on('error', () => {});
        return ch;
      }),
    );
    // '' is the default exchange (cleanup-only clients): it cannot be declared.
    if (options.exchange !== '') {
      await channels[0]?.assertExchange(options.exchange, 'direct', {
        durable: options.persistent,
        autoDelete: false,
      });
    }
    return new RawAmqp(conn, channels, options);
  }

  #queueOptions(): { durable: boolean; autoDelete: boolean; arguments: Record<string, unknown> } {
    const args: Record<string, unknown> = {};
    if (this.#options.expires !== null) args['x-expires'] = this.#options.expires;
    return { durable: this.#options.persistent, autoDelete: true, arguments: args };
  }

  /** Runs `task` over `count` items, worker w always on channel w. */
  async #perChannel(count: number, task: (ch: ConfirmChannel, i: number) => Promise<void>): Promise<void> {
    let next = 0;
    await Promise.all(
      this.#channels.map(async (ch) => {
        while (next < count) await task(ch, next++);
      }),
    );
  }

  /**
   * Stores one SUCCESS result per id the way a Celery worker does (declare queue, bind,
   * publish, wait for the confirm); returns the elapsed ms.
   */
  async store(ids: readonly string[], valueFor: (i: number) => unknown): Promise<number> {
    const { exchange, persistent } = this.#options;
    const queueOptions = this.#queueOptions();
    const start = performance.now();
    await this.#perChannel(ids.length, async (ch, i) => {
      const id = ids[i] as string;
      const name = queueName(id);
      await ch.assertQueue(name, queueOptions);
      await ch.bindQueue(name, exchange, name);
      const body = Buffer.from(
        JSON.stringify({
          task_id: id,
          status: 'SUCCESS',
          result: valueFor(i),
          traceback: null,
          children: null,
        }),
      );
      await new Promise<void>((resolve, reject) => {
        ch.publish(
          exchange,
          name,
          body,
          {
            contentType: 'application/json',
            contentEncoding: 'utf-8',
            deliveryMode: persistent ? 2 : 1,
            priority: 0,
            correlationId: id,
            headers: {},
          },
          (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()),
        );
      });
    });
    return performance.now() - start;
  }

  /**
   * Consumes every id's queue (no-ack, spread over the channels) until one message per id
   * has arrived and been decoded, then cancels the consumers (RabbitMQ then deletes the
   * auto-delete queues). Returns the time to the last message, the cancel time after it and
   * how many arrived before the timeout.
   */
  async collect(
    ids: readonly string[],
    timeoutMs: number,
  ): Promise<{ ms: number; teardownMs: number; received: number }> {
    const wanted = new Set(ids);
    const seen = new Set<string>();
    const tags: Array<{ ch: ConfirmChannel; tag: string }> = [];
    const start = performance.now();
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const onMessage = (msg: { content: Buffer } | null): void => {
      if (msg === null) return;
      const meta = JSON.parse(msg.content.toString('utf8')) as { task_id?: unknown; status?: unknown };
      if (typeof meta.task_id === 'string' && wanted.has(meta.task_id) && meta.status === 'SUCCESS') {
        seen.add(meta.task_id);
        if (seen.size === wanted.size) done();
      }
    };
    const subscribe = this.#perChannel(ids.length, async (ch, i) => {
      const { consumerTag } = await ch.consume(queueName(ids[i] as string), onMessage, { noAck: true });
      tags.push({ ch, tag: consumerTag });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.all([subscribe, all]), timeout]);
    const ms = performance.now() - start;
    clearTimeout(timer);
    await subscribe.catch(() => {});
    await pool(tags.length, this.#channels.length, async (i) => {
      const t = tags[i];
      if (t !== undefined) await t.ch.cancel(t.tag).catch(() => {});
    });
    return { ms, teardownMs: performance.now() - start - ms, received: seen.size };
  }

  /** Deletes the queues of these ids (a queue already gone is fine); returns how many were deleted. */
  async deleteQueues(ids: readonly string[]): Promise<number> {
    let deleted = 0;
    await this.#perChannel(ids.length, async (ch, i) => {
      // RabbitMQ answers delete-ok for a missing queue, so this never closes the channel.
      await ch.deleteQueue(queueName(ids[i] as string));
      deleted++;
    });
    return deleted;
  }

  /** Closes the channels and the connection. */
  async close(): Promise<void> {
    await this.#conn.close().catch(() => {});
  }
}
