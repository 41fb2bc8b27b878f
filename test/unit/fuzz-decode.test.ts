/**
 * Fuzz of the whole decode path: Message.payload over arbitrary bytes, content types,
 * encodings, compression headers and size limits never throws anything but our typed errors.
 */
import fc from 'fast-check';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ContentDisallowedError, DecodeError } from '../../src/errors.js';
import { Message } from '../../src/kombu/message.js';
import { prepareAcceptContent } from '../../src/kombu/serialization.js';

const CONTENT_TYPES = [
  'application/json',
  'application/x-msgpack',
  'application/x-yaml',
  'application/x-python-serialize',
  'application/data',
  'text/plain',
  'application/x-unknown',
  '',
];
const ENCODINGS = ['utf-8', 'binary', 'latin1', 'utf-16le', 'no-such-codec', ''];
const COMPRESSION = [
  undefined,
  'application/x-gzip',
  'zlib',
  'application/x-brotli',
  'application/x-bz2',
  '',
];

const bodies = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.json().map((j) => new TextEncoder().encode(j)),
  fc.uint8Array({ maxLength: 256 }).map((b) => new Uint8Array(deflateSync(b))),
);

describe('fuzz: Message.payload decode path', () => {
  it('throws only DecodeError / ContentDisallowedError over 5,000 arbitrary messages', () => {
    fc.assert(
      fc.property(
        bodies,
        fc.constantFrom(...CONTENT_TYPES),
        fc.constantFrom(...ENCODINGS),
        fc.constantFrom(...COMPRESSION),
        fc.option(fc.constantFrom(['json'], ['json', 'msgpack', 'yaml']), { nil: undefined }),
        fc.option(fc.nat({ max: 1024 }), { nil: undefined }),
        (body, contentType, contentEncoding, compression, accept, maxBytes) => {
          const m = new Message(
            {
              body: Buffer.from(body),
              properties: {
                contentType,
                contentEncoding,
                headers: compression === undefined ? {} : { compression },
              },
              fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
            },
            null,
            {
              ...(accept === undefined ? {} : { accept: prepareAcceptContent(accept) }),
              ...(maxBytes === undefined ? {} : { maxBytes }),
            },
          );
          try {
            void m.payload;
          } catch (err) {
            if (!(err instanceof DecodeError || err instanceof ContentDisallowedError)) throw err;
          }
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('a 50 MB body is refused by the decoded-size limit, compressed or not', () => {
    const big = Buffer.alloc(50 * 1024 * 1024, 0x61);
    const make = (body: Buffer, headers: Record<string, unknown>): Message =>
      new Message(
        {
          body,
          properties: { contentType: 'text/plain', contentEncoding: 'utf-8', headers },
          fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
        },
        null,
        { maxBytes: 16 * 1024 * 1024 },
      );
    expect(() => make(big, {}).payload).toThrow(expect.objectContaining({ code: 'BODY_TOO_LARGE' }));
    // A zip bomb: 50 MB of 'a' deflates to ~50 KB; inflation stops at the limit.
    const bomb = deflateSync(big);
    expect(() => make(bomb, { compression: 'application/x-gzip' }).payload).toThrow(
      expect.objectContaining({ code: 'BODY_TOO_LARGE' }),
    );
    // Without a limit the same body decodes.
    const open = new Message({
      body: big,
      properties: { contentType: 'text/plain', contentEncoding: 'utf-8' },
      fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
    });
    expect((open.payload as string).length).toBe(big.length);
  });
});
