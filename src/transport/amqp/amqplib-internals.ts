/**
 * Everything the amqp transport relies on below amqplib's public API, in one place.
 *
 * amqplib's public channel methods always wait for the broker's reply and fill in fields of
 * their own; the transport needs `nowait` declares and binds (a store costs no round trip
 * besides its confirm) and exactly the fields it chooses, so it sends methods through the
 * channel's `rpc` and `sendImmediately`, which amqplib does not declare in its types. They
 * were checked against {@link AMQPLIB_CHECKED_RANGE}; `test/unit/amqplib-internals.test.ts`
 * fails when the installed amqplib leaves that range or drops them, and
 * {@link amqplibInternals} refuses a channel that lacks them instead of failing later.
 *
 * @module
 */
import type { Channel } from 'amqplib';
import { CeleryAmqpError } from '../../errors.js';

/**
 * The amqplib versions whose channel internals were checked: `>= from` and `< below`. A
 * newer amqplib must be checked again (the methods, their arguments and reply shapes) before
 * widening it.
 */
export const AMQPLIB_CHECKED_RANGE = { from: '2.3.1', below: '2.4.0' } as const;

/** `[major, minor, patch]` of a `x.y.z` version; prerelease tags are ignored. */
function parts(version: string): [number, number, number] {
  const [major = 0, minor = 0, patch = 0] = version
    .split('-')[0]!
    .split('.')
    .map((n) => Number.parseInt(n, 10) || 0);
  return [major, minor, patch];
}

function compare(a: string, b: string): number {
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < 3; i += 1) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/**
 * True when `version` lies in {@link AMQPLIB_CHECKED_RANGE}.
 *
 * @example
 * ```ts
 * amqplibVersionChecked('2.3.1'); // true
 * amqplibVersionChecked('2.4.0'); // false: check the internals again, then widen the range
 * ```
 */
export function amqplibVersionChecked(version: string): boolean {
  return (
    compare(version, AMQPLIB_CHECKED_RANGE.from) >= 0 && compare(version, AMQPLIB_CHECKED_RANGE.below) < 0
  );
}

/**
 * The undeclared members of an amqplib channel the transport uses: `rpc` (send a method,
 * resolve with the reply's fields once no other RPC is outstanding), `sendImmediately`
 * (write a method frame, no reply expected) and `ch` (the channel number).
 */
export interface AmqplibChannelInternals {
  rpc(method: number, fields: object, expect: number): Promise<unknown>;
  sendImmediately(method: number, fields: object): unknown;
  readonly ch: number;
}

function hasInternals(channel: object): channel is AmqplibChannelInternals {
  return (
    typeof Reflect.get(channel, 'rpc') === 'function' &&
    typeof Reflect.get(channel, 'sendImmediately') === 'function' &&
    typeof Reflect.get(channel, 'ch') === 'number'
  );
}

/**
 * The internals of an amqplib channel, checked to be there.
 *
 * @throws CeleryAmqpError (UNSUPPORTED) when the installed amqplib lacks them.
 * @example
 * ```ts
 * amqplibInternals(channel).sendImmediately(M.BasicAck, { deliveryTag: 1, multiple: false });
 * ```
 */
export function amqplibInternals(channel: Channel): AmqplibChannelInternals {
  if (hasInternals(channel)) return channel;
  throw new CeleryAmqpError(
    'the installed amqplib lacks the channel internals (rpc, sendImmediately, ch) this transport ' +
      `was checked against (amqplib >= ${AMQPLIB_CHECKED_RANGE.from} < ${AMQPLIB_CHECKED_RANGE.below})`,
    'UNSUPPORTED',
  );
}

/** A writable side that can hold writes back and let them go as one (a net.Socket). */
interface Corkable {
  cork(): void;
  uncork(): void;
}

function isCorkable(value: unknown): value is Corkable {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof Reflect.get(value, 'cork') === 'function' &&
    typeof Reflect.get(value, 'uncork') === 'function'
  );
}

/**
 * Makes an amqplib connection write the frames it has queued in one socket write (a
 * `writev`) instead of one write per frame. amqplib's Mux (`connection.muxer`) empties the
 * channels' frame buffers in `_readIncoming` (scheduled with setImmediate, so everything a
 * tick produced), writing each frame to the socket (`connection.stream`) on its own: one
 * system call per publish, ack or method. Corking the socket around that call sends the
 * same bytes, in the same order, with one call; backpressure is unchanged (`write` still
 * returns false past the high-water mark).
 *
 * @param model - The ChannelModel `connect()` resolved with (its `connection`), or the
 *   amqplib Connection itself.
 * @returns false when the internals are not there (nothing patched: writes stay per frame).
 * @example
 * ```ts
 * coalesceWrites(await amqplib.connect(url));
 * ```
 */
export function coalesceWrites(model: object): boolean {
  const inner: unknown = Reflect.get(model, 'connection') ?? model;
  if (typeof inner !== 'object' || inner === null) return false;
  const muxer: unknown = Reflect.get(inner, 'muxer');
  const stream: unknown = Reflect.get(inner, 'stream');
  if (typeof muxer !== 'object' || muxer === null || !isCorkable(stream)) return false;
  const readIncoming: unknown = Reflect.get(muxer, '_readIncoming');
  if (typeof readIncoming !== 'function') return false;
  Reflect.set(muxer, '_readIncoming', function coalesced(this: unknown): unknown {
    stream.cork();
    try {
      return Reflect.apply(readIncoming, this, []);
    } finally {
      stream.uncork();
    }
  });
  return true;
}

/** A field of an RPC reply (amqplib resolves `rpc` with the reply method's fields). */
function replyField(reply: unknown, key: string): unknown {
  return typeof reply === 'object' && reply !== null ? Reflect.get(reply, key) : undefined;
}

function malformed(key: string): CeleryAmqpError {
  return new CeleryAmqpError(`amqplib returned a reply without a valid ${key}`, 'UNSUPPORTED');
}

/**
 * A numeric field of an RPC reply, e.g. `messageCount` of queue.declare-ok.
 *
 * @throws CeleryAmqpError (UNSUPPORTED) when amqplib's reply shape changed.
 * @example
 * ```ts
 * replyNumber(await raw.rpc(M.QueuePurge, fields, M.QueuePurgeOk), 'messageCount');
 * ```
 */
export function replyNumber(reply: unknown, key: string): number {
  const value = replyField(reply, key);
  if (typeof value !== 'number') throw malformed(key);
  return value;
}

/**
 * A string field of an RPC reply, e.g. `queue` of queue.declare-ok.
 *
 * @throws CeleryAmqpError (UNSUPPORTED) when amqplib's reply shape changed.
 * @example
 * ```ts
 * replyString(ok, 'queue');
 * ```
 */
export function replyString(reply: unknown, key: string): string {
  const value = replyField(reply, key);
  if (typeof value !== 'string') throw malformed(key);
  return value;
}

/**
 * AMQP method ids as amqplib numbers them: `(classId << 16) | methodId`.
 *
 * @example
 * ```ts
 * raw.rpc(M.QueueDeclare, fields, M.QueueDeclareOk);
 * ```
 */
export const M = {
  ExchangeDeclare: (40 << 16) | 10,
  ExchangeDeclareOk: (40 << 16) | 11,
  ExchangeDelete: (40 << 16) | 20,
  ExchangeDeleteOk: (40 << 16) | 21,
  ExchangeBind: (40 << 16) | 30,
  ExchangeBindOk: (40 << 16) | 31,
  ExchangeUnbind: (40 << 16) | 40,
  ExchangeUnbindOk: (40 << 16) | 51,
  QueueDeclare: (50 << 16) | 10,
  QueueDeclareOk: (50 << 16) | 11,
  QueueBind: (50 << 16) | 20,
  QueueBindOk: (50 << 16) | 21,
  QueuePurge: (50 << 16) | 30,
  QueuePurgeOk: (50 << 16) | 31,
  QueueDelete: (50 << 16) | 40,
  QueueDeleteOk: (50 << 16) | 41,
  QueueUnbind: (50 << 16) | 50,
  QueueUnbindOk: (50 << 16) | 51,
  BasicQos: (60 << 16) | 10,
  BasicQosOk: (60 << 16) | 11,
  BasicAck: (60 << 16) | 80,
  BasicReject: (60 << 16) | 90,
  BasicRecover: (60 << 16) | 110,
  BasicRecoverOk: (60 << 16) | 111,
} as const;

/** What {@link closeUntilClosed} needs of a channel or connection: its 'close' event. */
export interface CloseEvents {
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/**
 * Runs `start` (a close) and resolves when it settles or when `target` emits 'close',
 * whichever comes first. amqplib settles a channel's or connection's close() only on the
 * broker's close-ok: when the connection or socket dies after the close was written, it
 * closes without one and that promise never settles, while 'close' comes either way. The
 * listener is attached before `start` runs and removed after. Rejects with `start`'s error
 * when that comes first.
 *
 * @example
 * ```ts
 * await closeUntilClosed(model, () => model.close());
 * ```
 */
export async function closeUntilClosed(target: CloseEvents, start: () => Promise<unknown>): Promise<void> {
  let onClose = (): void => undefined;
  const ended = new Promise<void>((resolve) => {
    onClose = () => resolve();
    target.once('close', onClose);
  });
  try {
    await Promise.race([start(), ended]);
  } finally {
    target.off('close', onClose);
  }
}
