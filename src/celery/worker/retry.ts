/**
 * Sending a task again for a retry, as Celery's `Task.retry` does through
 * `signature_from_request(...).apply_async()`: the same id, reply_to, correlation_id,
 * priority, expiry, time limits and canvas, `retries + 1`, a new eta, to the exchange and
 * routing key the task came through.
 *
 * @module
 */
import type { FieldTable } from '../../transport/types.js';
import { Producer } from '../../kombu/producer.js';
import type { Celery } from '../app.js';
import { isoformat } from '../task-message.js';
import type { Request } from './request.js';

/**
 * What changes in the retried message.
 *
 * @example
 * ```ts
 * const change: RetryMessage = { args: [1], kwargs: {}, eta: Date.now() + 5000, retries: 1 };
 * ```
 */
export interface RetryMessage {
  /** Positional arguments of the new run. */
  args: unknown[];
  /** Keyword arguments of the new run. */
  kwargs: Record<string, unknown>;
  /** When it may run, ms since the epoch, or null for at once. */
  eta: number | null;
  /** The new retries count. */
  retries: number;
}

/** Publishes retries on a channel of its own (opened on the first retry). */
export class RetryPublisher {
  readonly #app: Celery;
  readonly #hostname: string;
  #producer: Promise<Producer> | undefined;

  constructor(app: Celery, hostname: string) {
    this.#app = app;
    this.#hostname = hostname;
  }

  #getProducer(): Promise<Producer> {
    if (this.#producer === undefined) {
      const p = this.#app.connection
        .channel({ confirm: this.#app.conf.task_publish_confirm, recoverDeclarations: false })
        .then((ch) => new Producer(ch, { serializer: this.#app.conf.task_serializer, autoDeclare: false }));
      this.#producer = p;
      p.catch(() => {
        if (this.#producer === p) this.#producer = undefined;
      });
    }
    return this.#producer;
  }

  /**
   * Publishes the retry; resolves once the broker has it (publisher confirms when the app
   * uses them).
   */
  async publish(req: Request, change: RetryMessage, now: number): Promise<void> {
    const headers = retryHeaders(req, change, this.#hostname);
    const producer = await this.#getProducer();
    const { exchange, routing_key: routingKey, priority } = req.deliveryInfo;
    const expires = req.expires;
    const compression = this.#app.conf.task_compression;
    await producer.publish([change.args, change.kwargs, req.task.embed], {
      exchange,
      routingKey,
      headers,
      deliveryMode: this.#app.conf.task_default_delivery_mode,
      correlationId: req.task.correlationId ?? req.id,
      ...(req.task.replyTo === null ? {} : { replyTo: req.task.replyTo }),
      ...(priority === null ? {} : { priority }),
      ...(compression === null ? {} : { compression }),
      // Celery's send_task turns the remaining expiry into the per-message TTL again.
      ...(expires === null ? {} : { expiration: Math.max(0, Math.trunc(expires - now)) }),
    });
  }

  /** Closes the retry channel, if one was opened. */
  async close(): Promise<void> {
    const producer = await this.#producer?.catch(() => undefined);
    this.#producer = undefined;
    if (producer === undefined) return;
    producer.close();
    await producer.channel.close().catch(() => undefined);
  }
}

/**
 * The protocol v2 headers of the retry: the original ones (a v1 body's fields become
 * headers) without broker-added `x-*` entries and the compression header, with the new
 * retries count and eta, and this worker as origin.
 */
function retryHeaders(req: Request, change: RetryMessage, hostname: string): FieldTable {
  const headers: FieldTable = {};
  const source = req.task.headers;
  for (const key of Object.keys(source)) {
    if (key.startsWith('x-') || key === 'compression') continue;
    if (req.task.protocol === 1 && (key === 'args' || key === 'kwargs' || key === 'callbacks')) continue;
    headers[key] = source[key];
  }
  headers['lang'] = 'py';
  headers['task'] = req.type;
  headers['id'] = req.id;
  headers['retries'] = change.retries;
  headers['eta'] = change.eta === null ? null : isoformat(new Date(change.eta));
  headers['origin'] = hostname;
  return headers;
}
