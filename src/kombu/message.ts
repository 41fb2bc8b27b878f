/**
 * A received message (kombu's `transport.base.Message`): raw body, lazy decoding and the
 * ack / reject / requeue state machine.
 *
 * @module
 */
import { CallbackError, ChannelError, ConnectionError, MessageStateError } from '../errors.js';
import { consoleLogger, reportError } from '../logger.js';
import type {
  Delivery,
  DeliveryInfo,
  FieldTable,
  MessageProperties,
  TransportChannel,
} from '../transport/types.js';
import { decodeBody } from './compression.js';
import type { DecodeLimits, DecodeOptions } from './decode-limits.js';

/** The states of a received message. */
export type MessageState = 'RECEIVED' | 'ACK' | 'REJECTED' | 'REQUEUED';

/** Options of a received message: how its body decodes ({@link DecodeOptions}), and how it was delivered. */
export interface MessageOptions extends DecodeOptions {
  /** Accepted content types (mime types), as `prepareAcceptContent` returns. @default undefined (all but pickle) */
  accept?: ReadonlySet<string> | undefined;
  /** Delivered with no_ack: settling is an error. @default false */
  noAck?: boolean | undefined;
}

const UNSET: unique symbol = Symbol('unset');

/** The listeners of one transport channel's close, and where a throwing one is reported. */
interface CloseWatch {
  readonly listeners: Set<() => void>;
  report: (err: unknown) => void;
}

/** A watcher nobody registered a reporter for (a detached message): the console logger. */
const NO_LISTENERS = { listenerCount: () => 0, emit: () => false };
function reportToLogger(err: unknown): void {
  reportError(NO_LISTENERS, toCallbackError(err), consoleLogger, 'Message');
}

function toCallbackError(err: unknown): CallbackError {
  return new CallbackError(`a channel-close listener threw: ${String(err)}`, { cause: err });
}

/** One 'close' listener per transport channel, however many messages are watched on it. */
const watches = new WeakMap<TransportChannel, CloseWatch>();

function watchOf(channel: TransportChannel): CloseWatch {
  let watch = watches.get(channel);
  if (watch === undefined) {
    const created: CloseWatch = { listeners: new Set(), report: reportToLogger };
    channel.once('close', () => {
      for (const listener of [...created.listeners]) runListener(created, listener);
      created.listeners.clear();
    });
    watches.set(channel, (watch = created));
  }
  return watch;
}

function runListener(watch: CloseWatch, listener: () => void): void {
  try {
    listener();
  } catch (err) {
    watch.report(toCallbackError(err));
  }
}

/**
 * Sets where a throwing {@link Message.onChannelClose} listener of messages that arrived on
 * `channel` is reported. Called by the kombu Channel for each transport channel it opens.
 *
 * @internal
 */
export function reportChannelCloseErrors(channel: TransportChannel, report: (err: unknown) => void): void {
  watchOf(channel).report = report;
}

/** Reads a message's transport channel; set once, in a static block of {@link Message}. */
let channelOf: (message: Message) => TransportChannel | null = () => null;

/**
 * The transport channel a message arrived on, for kombu's own deferred settling (one
 * `multiple` ack per channel).
 *
 * @internal
 */
export function deliveryChannel(message: Message): TransportChannel | null {
  return channelOf(message);
}

/**
 * A message received from a queue.
 *
 * Decoding is lazy: {@link payload} decompresses (per the `compression` header) and
 * deserializes the body the first time it is read, checking the content type against the
 * accept list, and caches the result.
 *
 * A message received before a reconnect cannot be settled afterwards: the broker has already
 * requeued it when the old channel died, so {@link ack}, {@link reject} and {@link requeue}
 * return `false` and do nothing (the state still changes, so a second settle still throws).
 *
 * @example
 * ```ts
 * consumer.registerCallback((body, message) => {
 *   console.log(body, message.properties.correlationId);
 *   message.ack();
 * });
 * ```
 */
export class Message {
  /** The raw body bytes, not decoded. */
  readonly body: Buffer;
  /** basic.properties. */
  readonly properties: MessageProperties;
  /** Delivery metadata: tag, exchange, routing key, redelivered. */
  readonly deliveryInfo: DeliveryInfo;
  /** Accepted content types for decoding; `undefined` accepts everything but pickle. */
  accept: ReadonlySet<string> | undefined;
  /** Decoded size limit in bytes. @default undefined */
  maxBytes: number | undefined;
  /** Decode limits. @default undefined (DEFAULT_DECODE_LIMITS) */
  limits: Partial<DecodeLimits> | undefined;
  /** Names the message at the head of decode errors. @default undefined */
  label: string | undefined;
  /** True when delivered without acknowledgement. @default false */
  readonly noAck: boolean;

  #state: MessageState = 'RECEIVED';
  #payload: unknown = UNSET;
  readonly #channel: TransportChannel | null;

  static {
    channelOf = (message) => message.#channel;
  }

  /**
   * @param delivery - What the transport received.
   * @param channel - The transport channel it arrived on; settling goes there. `null` for
   *   detached messages, whose settle is a no-op returning false.
   * @param options - accept list, size limit, noAck.
   */
  constructor(delivery: Delivery, channel: TransportChannel | null = null, options: MessageOptions = {}) {
    this.body = delivery.body;
    this.properties = delivery.properties;
    this.deliveryInfo = delivery.fields;
    this.accept = options.accept;
    this.maxBytes = options.maxBytes;
    this.limits = options.limits;
    this.label = options.label;
    this.noAck = options.noAck ?? false;
    this.#channel = channel;
  }

  /** The delivery tag (per channel). */
  get deliveryTag(): number {
    return this.deliveryInfo.deliveryTag;
  }

  /** The content type property, `undefined` when absent. */
  get contentType(): string | undefined {
    return this.properties.contentType;
  }

  /** The content encoding property, `undefined` when absent. */
  get contentEncoding(): string | undefined {
    return this.properties.contentEncoding;
  }

  /** The headers table (`{}` when absent). */
  get headers(): FieldTable {
    return this.properties.headers ?? {};
  }

  /**
   * True while the channel this message arrived on is open. Once it closes (lost
   * connection, channel error, the consumer's channel closed) the broker has requeued the
   * message if it was unacked, and will deliver it again: it can no longer be settled, and
   * work held for it (an eta task) should be dropped. Always false for a detached message.
   *
   * @example
   * ```ts
   * if (!message.channelOpen) return; // redelivered later: nothing to do with this copy
   * ```
   */
  get channelOpen(): boolean {
    const ch = this.#channel;
    return ch !== null && !ch.closed;
  }

  /**
   * Calls `listener` once when the channel this message arrived on closes (at once, on a
   * microtask, when it is closed already; never for a detached message). One listener per
   * transport channel is registered however many messages are watched. A listener that
   * throws is reported (a {@link CallbackError} on the connection's error path), never
   * thrown into the transport.
   *
   * @returns A function that removes the listener.
   * @example
   * ```ts
   * const off = message.onChannelClose(() => clearTimeout(timer)); // ... off();
   * ```
   */
  onChannelClose(listener: () => void): () => void {
    const ch = this.#channel;
    if (ch === null) return () => undefined;
    const watch = watchOf(ch);
    if (ch.closed) {
      let cancelled = false;
      queueMicrotask(() => {
        if (!cancelled) runListener(watch, listener);
      });
      return () => {
        cancelled = true;
      };
    }
    // A wrapper, so that the same function watched twice is two registrations.
    const entry = (): void => listener();
    watch.listeners.add(entry);
    return () => {
      watch.listeners.delete(entry);
    };
  }

  /** True when the broker delivered this message before. */
  get redelivered(): boolean {
    return this.deliveryInfo.redelivered;
  }

  /** The settle state. */
  get state(): MessageState {
    return this.#state;
  }

  /** True once acked, rejected or requeued. */
  get acknowledged(): boolean {
    return this.#state !== 'RECEIVED';
  }

  /**
   * The decoded body (decompressed, accept-checked, deserialized), cached after the first read.
   *
   * @throws ContentDisallowedError for a type outside the accept list, DecodeError for malformed bodies.
   */
  get payload(): unknown {
    if (this.#payload === UNSET) this.#payload = this.decode();
    return this.#payload;
  }

  /**
   * Decodes the body now (not cached; {@link payload} caches).
   *
   * @example
   * ```ts
   * const data = message.decode();
   * ```
   */
  decode(): unknown {
    const compression = this.properties.headers?.['compression'];
    return decodeBody(this.body, {
      contentType: this.contentType,
      contentEncoding: this.contentEncoding,
      compression: typeof compression === 'string' ? compression : undefined,
      accept: this.accept,
      maxBytes: this.maxBytes,
      limits: this.limits,
      label: this.label,
    });
  }

  /**
   * Acknowledges the message (the broker deletes it).
   *
   * @returns true when sent; false when the channel it came from is gone (the broker requeued it).
   * @throws MessageStateError when already settled or received with noAck.
   * @example
   * ```ts
   * message.ack();
   * ```
   */
  ack(): boolean {
    const ch = this.#settle('ACK');
    if (ch === null) return false;
    return sent(() => ch.ack({ deliveryTag: this.deliveryTag }));
  }

  /**
   * Rejects the message; with `requeue` the broker redelivers it, else it is dropped (or dead-lettered).
   *
   * @param options - `requeue` @default false
   * @returns true when sent; false when its channel is gone.
   * @throws MessageStateError when already settled or received with noAck.
   * @example
   * ```ts
   * message.reject({ requeue: false });
   * ```
   */
  reject(options: { requeue?: boolean } = {}): boolean {
    const requeue = options.requeue ?? false;
    const ch = this.#settle(requeue ? 'REQUEUED' : 'REJECTED');
    if (ch === null) return false;
    return sent(() => ch.reject({ deliveryTag: this.deliveryTag, requeue }));
  }

  /**
   * Rejects with requeue: the broker delivers the message again.
   *
   * @returns true when sent; false when its channel is gone.
   * @example
   * ```ts
   * message.requeue();
   * ```
   */
  requeue(): boolean {
    return this.reject({ requeue: true });
  }

  /** Moves to `next`, returning the channel to send on, or null when that channel is gone. */
  #settle(next: MessageState): TransportChannel | null {
    if (this.noAck) {
      throw new MessageStateError(`Message was received with no_ack and cannot be settled (${next})`);
    }
    if (this.#state !== 'RECEIVED') {
      throw new MessageStateError(`Message already acknowledged with state: ${this.#state}`);
    }
    this.#state = next;
    const ch = this.#channel;
    // The old channel is closed after a reconnect or a channel error: the broker has
    // already requeued everything unacked on it, so there is nothing left to settle.
    if (ch === null || ch.closed) return null;
    return ch;
  }
}

/**
 * Sends a settle frame. A transport throws CHANNEL_CLOSED (or the close reason) when the
 * channel is closing or its connection dropped before 'close' was seen: the broker requeues
 * the message then, so it is reported as not sent (false), never thrown at the caller.
 */
function sent(send: () => void): boolean {
  try {
    send();
    return true;
  } catch (err) {
    if (err instanceof ChannelError || err instanceof ConnectionError) return false;
    throw err;
  }
}
