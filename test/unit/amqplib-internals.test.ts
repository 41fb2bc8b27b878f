/**
 * The amqp transport sends methods through amqplib's undeclared channel internals (`rpc`,
 * `sendImmediately`, `ch`). This fails loudly when the installed amqplib is not one they were
 * checked against, or no longer has them: check them again in the new version (arguments,
 * reply shapes, nowait handling), then widen AMQPLIB_CHECKED_RANGE.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  AMQPLIB_CHECKED_RANGE,
  amqplibInternals,
  amqplibVersionChecked,
  coalesceWrites,
  replyNumber,
  replyString,
} from '../../src/transport/amqp/amqplib-internals.js';

const require = createRequire(import.meta.url);
const amqplibDir = path.dirname(require.resolve('amqplib'));

describe('amqplib internals', () => {
  it('the installed amqplib is one the private calls were checked against', () => {
    const { version } = JSON.parse(readFileSync(path.join(amqplibDir, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(
      amqplibVersionChecked(version),
      `amqplib ${version} is outside >= ${AMQPLIB_CHECKED_RANGE.from} < ${AMQPLIB_CHECKED_RANGE.below}: ` +
        're-check src/transport/amqp/amqplib-internals.ts against it, then widen the range',
    ).toBe(true);
  });

  it("amqplib's channel still has rpc and sendImmediately with the arities used", () => {
    const { Channel } = require(path.join(amqplibDir, 'lib', 'channel_model.js')) as {
      Channel: { prototype: Record<string, unknown> };
    };
    const rpc = Channel.prototype['rpc'];
    const send = Channel.prototype['sendImmediately'];
    expect(typeof rpc).toBe('function');
    expect(typeof send).toBe('function');
    expect((rpc as (...a: unknown[]) => unknown).length).toBe(3);
    expect((send as (...a: unknown[]) => unknown).length).toBe(2);
  });

  it('refuses a channel without them, and reply fields of the wrong shape, with UNSUPPORTED', () => {
    expect(() => amqplibInternals(Object.create(null) as never)).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED' }),
    );
    expect(replyNumber({ messageCount: 3 }, 'messageCount')).toBe(3);
    expect(replyString({ queue: 'q' }, 'queue')).toBe('q');
    expect(() => replyNumber({ messageCount: '3' }, 'messageCount')).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED' }),
    );
  });

  it('compares versions by number, not text', () => {
    expect(amqplibVersionChecked('2.3.1')).toBe(true);
    expect(amqplibVersionChecked('2.3.10')).toBe(true);
    expect(amqplibVersionChecked('2.3.0')).toBe(false);
    expect(amqplibVersionChecked('2.4.0')).toBe(false);
    expect(amqplibVersionChecked('10.3.1')).toBe(false);
  });

  it("coalesceWrites makes amqplib's connection write a tick's frames in one socket write", async () => {
    const { Connection } = require(path.join(amqplibDir, 'lib', 'connection.js')) as {
      Connection: new (stream: Duplex) => { muxer: { pipeFrom(s: PassThrough): void } };
    };
    // The socket: counts the write calls that reach it (one per write, or one writev).
    const calls: number[] = [];
    const bytes: Buffer[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        calls.push(1);
        bytes.push(chunk);
        done();
      },
      writev(chunks, done) {
        calls.push(chunks.length);
        for (const c of chunks) bytes.push(c.chunk as Buffer);
        done();
      },
    });
    const connection = new Connection(socket);
    expect(coalesceWrites(connection)).toBe(true);
    // Three channels' frame buffers, as amqplib pipes each channel into its Mux.
    const channels = [new PassThrough({ objectMode: true }), new PassThrough({ objectMode: true })];
    for (const ch of channels) connection.muxer.pipeFrom(ch);
    channels[0]?.write(Buffer.from('a'));
    channels[1]?.write(Buffer.from('b'));
    channels[0]?.write(Buffer.from('c'));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(bytes).toString()).toBe('abc');
    expect(calls).toEqual([3]);
    expect(coalesceWrites({ connection: {} })).toBe(false);
  });
});
