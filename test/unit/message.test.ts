import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { CallbackError, ContentDisallowedError, MessageStateError } from '../../src/errors.js';
import { compress } from '../../src/kombu/compression.js';
import { Message, reportChannelCloseErrors } from '../../src/kombu/message.js';
import { dumps, prepareAcceptContent } from '../../src/kombu/serialization.js';
import type { Delivery, TransportChannel } from '../../src/transport/types.js';

/** Records settle calls; a real object, not a stub of behaviour under test. */
class RecordingChannel extends EventEmitter {
  closed = false;
  readonly calls: string[] = [];
  ack(p: { deliveryTag: number }): void {
    this.calls.push(`ack ${p.deliveryTag}`);
  }
  reject(p: { deliveryTag: number; requeue: boolean }): void {
    this.calls.push(`reject ${p.deliveryTag} ${p.requeue}`);
  }
}

function delivery(body: Buffer, contentType?: string, headers?: Record<string, unknown>): Delivery {
  return {
    body,
    properties: {
      ...(contentType === undefined ? {} : { contentType, contentEncoding: 'utf-8' }),
      ...(headers === undefined ? {} : { headers }),
    },
    fields: { deliveryTag: 7, redelivered: false, exchange: 'ex', routingKey: 'rk' },
  };
}

const asChannel = (c: RecordingChannel): TransportChannel => c as unknown as TransportChannel;

describe('Message', () => {
  it('decodes lazily and caches, decompressing per the compression header', () => {
    const enc = dumps({ a: 1 }, 'json');
    const z = compress(enc.body, 'zlib');
    const m = new Message(delivery(z.body, enc.contentType, { compression: z.contentType }));
    const first = m.payload;
    expect(first).toEqual({ a: 1 });
    expect(m.payload).toBe(first);
    expect(m.decode()).not.toBe(first);
    expect(m.headers).toEqual({ compression: 'application/x-gzip' });
  });

  it('checks the accept list', () => {
    const enc = dumps({ a: 1 }, 'msgpack');
    const m = new Message(delivery(enc.body, enc.contentType), null, {
      accept: prepareAcceptContent(['json']),
    });
    expect(() => m.payload).toThrow(ContentDisallowedError);
    m.accept = prepareAcceptContent(['msgpack']);
    expect(m.payload).toEqual({ a: 1 });
  });

  it('settles once on its channel, then throws MessageStateError', () => {
    const ch = new RecordingChannel();
    const m = new Message(delivery(Buffer.from('x')), asChannel(ch));
    expect(m.reject({ requeue: true })).toBe(true);
    expect(m.state).toBe('REQUEUED');
    expect(() => m.ack()).toThrow(new MessageStateError('Message already acknowledged with state: REQUEUED'));
    const m2 = new Message(delivery(Buffer.from('x')), asChannel(ch));
    expect(m2.ack()).toBe(true);
    expect(ch.calls).toEqual(['reject 7 true', 'ack 7']);
  });

  it('is a no-op returning false once its channel is gone (the broker requeued it)', () => {
    const ch = new RecordingChannel();
    const m = new Message(delivery(Buffer.from('x')), asChannel(ch));
    ch.closed = true;
    expect(m.ack()).toBe(false);
    expect(m.state).toBe('ACK');
    expect(ch.calls).toEqual([]);
  });

  it('refuses to settle a noAck message', () => {
    const m = new Message(delivery(Buffer.from('x')), null, { noAck: true });
    expect(() => m.ack()).toThrow(MessageStateError);
    expect(m.deliveryTag).toBe(7);
    expect(m.redelivered).toBe(false);
    expect(m.contentType).toBeUndefined();
  });

  describe('the channel it arrived on', () => {
    /** Closes the recording channel as a transport does: flag first, then 'close'. */
    function close(ch: RecordingChannel): void {
      ch.closed = true;
      ch.emit('close');
    }

    it('channelOpen follows the channel; a detached message has none', () => {
      const ch = new RecordingChannel();
      const m = new Message(delivery(Buffer.from('x')), asChannel(ch));
      expect(m.channelOpen).toBe(true);
      close(ch);
      expect(m.channelOpen).toBe(false);
      expect(new Message(delivery(Buffer.from('x'))).channelOpen).toBe(false);
    });

    it('onChannelClose calls each listener once, with one close listener per channel', () => {
      const ch = new RecordingChannel();
      const fired: number[] = [];
      const offs = Array.from({ length: 50 }, (_, i) =>
        new Message(delivery(Buffer.from('x')), asChannel(ch)).onChannelClose(() => fired.push(i)),
      );
      expect(ch.listenerCount('close')).toBe(1);
      offs[3]?.();
      close(ch);
      close(ch);
      expect(fired).toHaveLength(49);
      expect(fired).not.toContain(3);
    });

    it('onChannelClose on a closed channel calls the listener on a microtask, unless removed first', async () => {
      const ch = new RecordingChannel();
      close(ch);
      const m = new Message(delivery(Buffer.from('x')), asChannel(ch));
      let called = 0;
      m.onChannelClose(() => (called += 1));
      const off = m.onChannelClose(() => (called += 10));
      off();
      expect(called).toBe(0);
      await Promise.resolve();
      expect(called).toBe(1);
    });

    it('a listener that throws is reported as a CallbackError, and the others still run', () => {
      const ch = new RecordingChannel();
      const reported: unknown[] = [];
      reportChannelCloseErrors(asChannel(ch), (err) => reported.push(err));
      const m = new Message(delivery(Buffer.from('x')), asChannel(ch));
      const boom = new Error('listener bug');
      let second = false;
      m.onChannelClose(() => {
        throw boom;
      });
      m.onChannelClose(() => (second = true));
      close(ch);
      expect(second).toBe(true);
      expect(reported).toHaveLength(1);
      expect(reported[0]).toBeInstanceOf(CallbackError);
      expect(reported[0]).toMatchObject({ code: 'CALLBACK_FAILED', cause: boom });
    });
  });
});
