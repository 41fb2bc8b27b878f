/**
 * The amqplib internals the amqp transport drives directly: method ids and the two
 * low-level calls (`rpc`, `sendImmediately`) that let it send any method with exactly the
 * fields it chooses (nowait flags, no client-side defaults), and the way around amqplib's
 * closes that never settle.
 *
 * @module
 */

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

/**
 * The parts of amqplib's channel below its public API that this class relies on:
 * `rpc` (send a method, resolve with the reply's fields) and `sendImmediately` (write a
 * method frame with no reply expected). Both exist on every amqplib 0.10+/2.x channel.
 *
 * @example
 * ```ts
 * (channel as unknown as AmqplibChannelInternals).sendImmediately(M.BasicAck, { deliveryTag: 1, multiple: false });
 * ```
 */
export interface AmqplibChannelInternals {
  rpc(method: number, fields: object, expect: number): Promise<Record<string, unknown>>;
  sendImmediately(method: number, fields: object): boolean;
}

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
