/**
 * Every compression kombu 5 knows, both ways against kombu.compression itself
 * (peers/compression_peer.py on /usr/bin/python3): kombu compresses, Node decompresses;
 * Node compresses, kombu decompresses. Same names, aliases and MIME types on both sides.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { compress, prepareCompression, decompress } from '../../src/kombu/compression.js';
import { assertPythonPeers, PEERS_DIR, PYTHON } from './python.js';

// zstd's encoder is WebAssembly, started once before the first direct compress().
await prepareCompression('zstd');

interface PeerOut {
  content_type: string;
  bodies: string[];
}

function kombu(command: 'compress' | 'decompress', name: string, bodies: readonly Buffer[]): PeerOut {
  const out = execFileSync(PYTHON, [join(PEERS_DIR, 'compression_peer.py'), command, name], {
    input: JSON.stringify(bodies.map((b) => b.toString('hex'))),
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(out.toString('utf8')) as PeerOut;
}

/** Payloads: random bytes, JSON text, long runs, and one of 3 MB (several bzip2 blocks). */
const payloads = (): Buffer[] => [
  Buffer.alloc(0),
  Buffer.from('{"status": "SUCCESS", "result": 42}'),
  Buffer.alloc(1_000_000, 0x61),
  Buffer.from(Array.from({ length: 3_000_000 }, (_v, i) => (i * 2_654_435_761) >>> 24)),
  ...fc.sample(
    fc.oneof(
      fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
      fc.json().map((j) => Buffer.from(j)),
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat(5000))
        .map(([b, n]) => Buffer.concat(Array(n).fill(Buffer.from(b)))),
    ),
    { numRuns: 30 },
  ),
];

const METHODS: [string, string, string[]][] = [
  ['zlib', 'application/x-gzip', ['gzip']],
  ['bzip2', 'application/x-bz2', ['bzip']],
  ['brotli', 'application/x-brotli', []],
  ['lzma', 'application/x-lzma', ['xz']],
  ['zstd', 'application/zstd', ['zstandard']],
];

describe('compression interop with kombu 5.2', () => {
  beforeAll(async () => {
    await assertPythonPeers();
    // kombu registers brotli and zstd only when their modules import.
    const check = execFileSync(PYTHON, [
      '-c',
      'from kombu import compression; print(" ".join(sorted(compression.encoders())))',
    ]);
    const encoders = check.toString().trim().split(' ');
    for (const [, mime] of METHODS) {
      if (!encoders.includes(mime)) {
        throw new Error(`kombu on ${PYTHON} lacks ${mime}: install python3-brotli and python3-zstandard`);
      }
    }
  });

  for (const [name, mime, aliases] of METHODS) {
    it(`${name}: kombu → Node and Node → kombu`, () => {
      const data = payloads();
      for (const alias of [name, ...aliases]) {
        expect(kombu('compress', alias, []).content_type).toBe(mime);
        expect(compress(Buffer.alloc(1), alias).contentType).toBe(mime);
      }
      const fromKombu = kombu('compress', name, data);
      expect(fromKombu.content_type).toBe(mime);
      fromKombu.bodies.forEach((hex, i) => {
        expect(decompress(Buffer.from(hex, 'hex'), mime).equals(data[i] ?? Buffer.alloc(0))).toBe(true);
      });
      const fromNode = data.map((d) => compress(d, name).body);
      const back = kombu('decompress', mime, fromNode);
      back.bodies.forEach((hex, i) => {
        expect(Buffer.from(hex, 'hex').equals(data[i] ?? Buffer.alloc(0))).toBe(true);
      });
    }, 120_000);
  }
});
