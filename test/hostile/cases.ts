/**
 * The hostile peer's cases: seeded messages for the result doors (a result queue, an rpc://
 * reply queue) and the task door (a Worker's queue). Every family of issue 13: bombs of each
 * kind and codec (decompression, YAML aliases, pickle references, depth, collection count,
 * size), truncated and random bodies, wrong content types and encodings, malformed metas and
 * task bodies, hostile task headers, and random property tables. The same seed and index
 * always give the same message.
 *
 * @module
 */
import { compress, prepareCompression } from '../../src/kombu/compression.js';
import { dumps } from '../../src/kombu/serialization.js';
import type { FieldTable, MessageProperties } from '../../src/transport/types.js';
import { zlibBomb } from './bodies.js';
import type { Rng } from './random.js';

/** One hostile message: its family (for the report), body and properties. */
export interface HostileMessage {
  readonly kind: string;
  readonly body: Buffer;
  readonly properties: MessageProperties;
}

/** What a case is generated for. */
export interface CaseContext {
  /** The task id it is about (a result's task, a task message's id header). */
  readonly taskId: string;
  /** Longest short string the transport carries (AMQP's shortstr: 255; memory://: any). */
  readonly maxShortString: number;
  /** The readers' maxDecodedBytes: bombs expand to twice it. */
  readonly maxDecodedBytes: number;
  /** The readers' maxCollections: one case builds just that many lists, or one more. */
  readonly maxCollections: number;
}

const CODECS = ['zlib', 'bzip2', 'brotli', 'lzma', 'zstd'] as const;
const SERIALIZERS = ['json', 'msgpack', 'yaml'] as const;
const CONTENT_TYPES = [
  'application/json',
  'application/x-msgpack',
  'application/x-yaml',
  'application/x-python-serialize',
  'application/data',
  'text/plain',
  'application/xml',
  '',
  'application/json; charset=utf-8',
];
const ENCODINGS = ['utf-8', 'binary', 'utf-16le', 'latin1', 'ascii', 'base64', 'x-unknown', ''];
const STATES = ['SUCCESS', 'FAILURE', 'REVOKED', 'STARTED', 'RETRY', 'PENDING', 'PROGRESS', ''];

/** Compressed zeros per codec and size, made once: compressing megabytes per case is slow. */
const bombCache = new Map<string, Buffer>();

/** Starts the codecs that need it (zstd's WebAssembly); call once before generating. */
export async function prepareCases(): Promise<void> {
  await prepareCompression('zstd');
}

function codecBomb(codec: (typeof CODECS)[number], bytes: number): Buffer {
  const key = `${codec}:${bytes}`;
  let body = bombCache.get(key);
  if (body === undefined) {
    // zlib's own builder reaches any size from 64 KB; the others compress the zeros once.
    body =
      codec === 'zlib' && bytes >= 64 * 1024 * 1024
        ? zlibBomb(bytes / (64 * 1024 * 1024))
        : compress(Buffer.alloc(bytes), codec).body;
    bombCache.set(key, body);
  }
  return body;
}

/** A random JSON-shaped value, at most `depth` deep. */
export function randomValue(rng: Rng, depth = 4): unknown {
  const r = rng.int(depth <= 0 ? 5 : 8);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.bool();
    case 2:
      return rng.bool() ? rng.int(1_000_000) - 500_000 : (rng.next() - 0.5) * 1e6;
    case 3:
      return rng.string(rng.int(20));
    case 4:
      return rng.unicode(rng.int(10));
    case 5:
    case 6:
      return Array.from({ length: rng.int(6) }, () => randomValue(rng, depth - 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = rng.int(6); i > 0; i--) out[rng.string(rng.range(1, 8))] = randomValue(rng, depth - 1);
      return out;
    }
  }
}

/** A random AMQP field table (nested tables, arrays, Buffers, numbers, long strings). */
export function randomTable(rng: Rng, depth = 3): FieldTable {
  const table: FieldTable = {};
  for (let i = rng.int(6); i > 0; i--) table[rng.string(rng.range(1, 12))] = randomField(rng, depth);
  return table;
}

function randomField(rng: Rng, depth: number): unknown {
  switch (rng.int(depth <= 0 ? 6 : 8)) {
    case 0:
      return rng.string(rng.bool(0.95) ? rng.int(40) : rng.int(20_000));
    case 1:
      return rng.int(2 ** 31) - 2 ** 30;
    case 2:
      return rng.next() * 1e9;
    case 3:
      return rng.bool();
    case 4:
      return null;
    case 5:
      return rng.bytes(rng.int(32));
    case 6:
      return Array.from({ length: rng.int(5) }, () => randomField(rng, depth - 1));
    default:
      return randomTable(rng, depth - 1);
  }
}

function shortString(rng: Rng, ctx: CaseContext): string {
  return rng.string(rng.bool(0.9) ? rng.int(40) : rng.int(Math.min(ctx.maxShortString, 100_000)));
}

/** Random basic.properties around a body: encodings, priorities, ids, types. */
function randomProperties(rng: Rng, ctx: CaseContext): MessageProperties {
  const p: MessageProperties = {};
  if (rng.bool(0.3)) p.priority = rng.int(256);
  if (rng.bool(0.3)) p.messageId = shortString(rng, ctx);
  if (rng.bool(0.2)) p.type = shortString(rng, ctx);
  if (rng.bool(0.2)) p.appId = shortString(rng, ctx);
  if (rng.bool(0.2)) p.timestamp = rng.int(2 ** 31);
  if (rng.bool(0.3)) p.deliveryMode = rng.bool() ? 1 : 2;
  return p;
}

/** An encoded body of a random serializer (maybe compressed): the basis of many cases. */
function encoded(rng: Rng, value: unknown): { body: Buffer; properties: MessageProperties } {
  const serializer = rng.pick(SERIALIZERS);
  const d = dumps(value, serializer);
  const properties: MessageProperties = { contentType: d.contentType, contentEncoding: d.contentEncoding };
  if (rng.bool(0.3)) {
    const c = compress(d.body, rng.pick(CODECS));
    return { body: c.body, properties: { ...properties, headers: { compression: c.contentType } } };
  }
  return { body: d.body, properties };
}

function resultMeta(rng: Rng, taskId: string): Record<string, unknown> {
  return {
    task_id: taskId,
    status: rng.pick(['SUCCESS', 'FAILURE', 'SUCCESS']),
    result: randomValue(rng),
    traceback: null,
    children: null,
  };
}

/** Nesting `depth` deep in a serializer's own syntax. */
function deepBody(rng: Rng, taskId: string, depth: number): { body: Buffer; contentType: string } {
  switch (rng.int(3)) {
    case 0:
      return {
        body: Buffer.from(
          `{"task_id":${JSON.stringify(taskId)},"status":"SUCCESS","result":${'['.repeat(depth)}${']'.repeat(depth)}}`,
        ),
        contentType: 'application/json',
      };
    case 1:
      return {
        body: Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]),
        contentType: 'application/x-msgpack',
      };
    default:
      return {
        body: Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`),
        contentType: 'application/x-yaml',
      };
  }
}

function aliasBomb(rng: Rng, taskId: string): Buffer {
  const levels = rng.range(3, 16);
  const width = rng.range(2, 12);
  const out = [`&l0 [${Array.from({ length: width }, () => 'lol').join(', ')}]`];
  for (let i = 1; i < levels; i++)
    out.push(`&l${i} [${Array.from({ length: width }, () => `*l${i - 1}`).join(', ')}]`);
  return Buffer.from(
    `bombs: [${out.join(', ')}]\ntask_id: ${JSON.stringify(taskId)}\nstatus: SUCCESS\nresult: *l${levels - 1}\n`,
  );
}

function latin1(...parts: Array<string | number[]>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
}

/** Pickle streams: a cycle, a reference bomb, a memo flood, nested marks, random opcodes. */
function pickleBody(rng: Rng): Buffer {
  switch (rng.int(5)) {
    case 0:
      return latin1([0x80, 2], ']q\x00h\x00a.');
    case 1: {
      const levels = rng.range(5, 40);
      const parts: Array<string | number[]> = [[0x80, 2], ']q\x00'];
      for (let i = 1; i <= levels; i++)
        parts.push(
          '](',
          `h${String.fromCharCode(i - 1)}`.repeat(rng.range(2, 10)),
          `eq${String.fromCharCode(i)}`,
        );
      parts.push('.');
      return latin1(...parts);
    }
    case 2:
      return Buffer.concat([
        latin1([0x80, 4], 'N'),
        Buffer.alloc(rng.range(1000, 1_200_000), 0x94),
        latin1('.'),
      ]);
    case 3:
      return Buffer.concat([latin1([0x80, 2]), Buffer.alloc(rng.range(10, 300_000), 0x28)]);
    default:
      return Buffer.concat([latin1([0x80, rng.range(0, 5)]), rng.bytes(rng.int(200))]);
  }
}

/** Bodies every door gets: bombs, truncation, random bytes, wrong labels. */
function commonCase(rng: Rng, ctx: CaseContext, valid: () => unknown): HostileMessage | undefined {
  const family = rng.int(100);
  if (family < 8) {
    const codec = rng.pick(CODECS);
    return {
      kind: `bomb-${codec}`,
      body: codecBomb(codec, ctx.maxDecodedBytes * 2),
      properties: {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        headers: { compression: compressionMime(codec) },
      },
    };
  }
  if (family < 14) {
    return {
      kind: 'bomb-yaml-alias',
      body: aliasBomb(rng, ctx.taskId),
      properties: { contentType: 'application/x-yaml', contentEncoding: 'utf-8' },
    };
  }
  if (family < 20) {
    const depth = rng.bool(0.3) ? rng.range(995, 1005) : rng.range(1000, 300_000);
    const d = deepBody(rng, ctx.taskId, depth);
    return {
      kind: `deep-${d.contentType.split('/')[1]}`,
      body: d.body,
      properties: { contentType: d.contentType, contentEncoding: 'utf-8' },
    };
  }
  if (family < 26) {
    return {
      kind: 'pickle',
      body: pickleBody(rng),
      properties: { contentType: 'application/x-python-serialize', contentEncoding: 'binary' },
    };
  }
  if (family < 28) {
    // A msgpack list of empty lists (one byte each): past maxCollections, or (sometimes)
    // exactly at it, which decodes.
    const n = rng.bool(0.3) ? ctx.maxCollections - 1 : ctx.maxCollections;
    const head = Buffer.from([0xdd, 0, 0, 0, 0]);
    head.writeUInt32BE(n, 1);
    return {
      kind: 'many-collections',
      body: Buffer.concat([head, Buffer.alloc(n, 0x90)]),
      properties: { contentType: 'application/x-msgpack', contentEncoding: 'binary' },
    };
  }
  if (family < 29) {
    return {
      kind: 'oversized',
      body: Buffer.alloc(ctx.maxDecodedBytes + 1, 0x20),
      properties: { contentType: 'application/json', contentEncoding: 'utf-8' },
    };
  }
  if (family < 44) {
    const e = encoded(rng, valid());
    return {
      kind: 'truncated',
      body: e.body.subarray(0, rng.int(Math.max(1, e.body.length))),
      properties: { ...e.properties, ...randomProperties(rng, ctx) },
    };
  }
  if (family < 58) {
    const properties: MessageProperties = {
      contentType: rng.pick(CONTENT_TYPES),
      contentEncoding: rng.pick(ENCODINGS),
      ...randomProperties(rng, ctx),
    };
    if (rng.bool(0.3))
      properties.headers = {
        compression: rng.bool() ? compressionMime(rng.pick(CODECS)) : shortString(rng, ctx),
      };
    return { kind: 'random-bytes', body: rng.bytes(rng.int(2048)), properties };
  }
  if (family < 68) {
    const e = encoded(rng, valid());
    const properties: MessageProperties = { ...e.properties };
    if (rng.bool()) properties.contentType = rng.pick(CONTENT_TYPES);
    else properties.contentEncoding = rng.pick(ENCODINGS);
    return { kind: 'wrong-label', body: e.body, properties };
  }
  if (family < 78) {
    const e = encoded(rng, valid());
    const headers: FieldTable = { ...e.properties.headers, ...randomTable(rng) };
    if (rng.bool(0.2))
      headers['compression'] = rng.pick([...CODECS.map(compressionMime), shortString(rng, ctx), 42, null]);
    return {
      kind: 'random-headers',
      body: e.body,
      properties: { ...e.properties, ...randomProperties(rng, ctx), headers },
    };
  }
  return undefined;
}

function compressionMime(codec: (typeof CODECS)[number]): string {
  return compress(Buffer.alloc(0), codec).contentType;
}

/**
 * A hostile message for a result queue or an rpc:// reply queue, about `ctx.taskId`.
 *
 * @example
 * ```ts
 * const m = resultCase(rng, { taskId, maxShortString: 255, maxDecodedBytes: 1024 * 1024, maxCollections: 100_000 });
 * ```
 */
export function resultCase(rng: Rng, ctx: CaseContext): HostileMessage {
  const common = commonCase(rng, ctx, () => resultMeta(rng, ctx.taskId));
  if (common !== undefined) return common;
  if (rng.bool(0.6)) {
    // A malformed meta: fields missing or of the wrong type, or no object at all.
    const meta: Record<string, unknown> = resultMeta(rng, ctx.taskId);
    for (const key of ['task_id', 'status', 'result', 'traceback', 'children']) {
      const r = rng.int(10);
      if (r < 3) delete meta[key];
      else if (r < 5) meta[key] = randomValue(rng, 2);
    }
    if (rng.bool(0.2)) meta['status'] = rng.pick(STATES);
    const body = rng.bool(0.2) ? randomValue(rng, 2) : meta;
    const e = encoded(rng, body ?? null);
    return { kind: 'odd-meta', body: e.body, properties: { ...e.properties, ...randomProperties(rng, ctx) } };
  }
  const e = encoded(rng, resultMeta(rng, ctx.taskId));
  return { kind: 'valid', body: e.body, properties: { ...e.properties, ...randomProperties(rng, ctx) } };
}

/** Protocol v2 headers of a task, for `task` (`echo` unless told). */
export function taskHeaders(taskId: string, task = 'echo'): FieldTable {
  return {
    lang: 'py',
    task,
    id: taskId,
    root_id: taskId,
    parent_id: null,
    group: null,
    retries: 0,
    eta: null,
    expires: null,
    timelimit: [null, null],
    argsrepr: null,
    kwargsrepr: null,
  };
}

const EMBED = { callbacks: null, errbacks: null, chain: null, chord: null };

/** Hostile values for one task header. */
function hostileHeader(rng: Rng, ctx: CaseContext, key: string): unknown {
  switch (rng.int(9)) {
    case 0:
      return randomField(rng, 2);
    case 1:
      return shortString(rng, ctx);
    case 2:
      return rng.pick([-1, 1.5, 1e15, NaN, 0, 2 ** 31]);
    case 3:
      return rng.pick([
        '2026-01-01T00:00:00',
        '2020-01-01T00:00:00+00:00',
        'yesterday',
        '9999-12-31T23:59:59',
        '',
      ]);
    case 4:
      return [rng.pick([null, 0.001, -1, 'x', 1e12]), rng.pick([null, 0.001, 'y'])];
    case 5:
      return rng.bytes(rng.int(64));
    case 6:
      return null;
    case 7:
      return key === 'id' ? rng.string(rng.range(256, 4096)) : undefined;
    default:
      return rng.unicode(rng.int(30));
  }
}

/**
 * A hostile message for a Worker's task queue, with `ctx.taskId` as its id header (unless
 * the case is about the id).
 *
 * @example
 * ```ts
 * const m = taskCase(rng, { taskId, maxShortString: 255, maxDecodedBytes: 1024 * 1024, maxCollections: 100_000 });
 * ```
 */
export function taskCase(rng: Rng, ctx: CaseContext): HostileMessage {
  const headers = taskHeaders(ctx.taskId, rng.bool(0.8) ? 'echo' : rng.pick(['boom', shortString(rng, ctx)]));
  const validBody = (): unknown => [
    Array.from({ length: rng.int(4) }, () => randomValue(rng, 3)),
    Object.fromEntries(
      Array.from({ length: rng.int(3) }, () => [rng.string(rng.range(1, 8)), randomValue(rng, 2)]),
    ),
    EMBED,
  ];
  const common = commonCase(rng, ctx, validBody);
  if (common !== undefined)
    return {
      ...common,
      properties: { ...common.properties, headers: { ...headers, ...common.properties.headers } },
    };
  const e = encoded(rng, validBody());
  const properties: MessageProperties = {
    ...e.properties,
    ...randomProperties(rng, ctx),
    headers: { ...headers, ...e.properties.headers },
  };
  if (rng.bool(0.6)) {
    // Hostile headers and properties on a well-formed body.
    for (const key of [
      'id',
      'task',
      'eta',
      'expires',
      'timelimit',
      'retries',
      'root_id',
      'parent_id',
      'group',
      'argsrepr',
      'shadow',
      'ignore_result',
    ]) {
      if (rng.bool(0.15)) {
        const v = hostileHeader(rng, ctx, key);
        if (v === undefined) delete properties.headers?.[key];
        else if (properties.headers !== undefined) properties.headers[key] = v;
      }
    }
    if (rng.bool(0.2)) properties.replyTo = shortString(rng, ctx);
    if (rng.bool(0.2)) properties.correlationId = shortString(rng, ctx);
    return { kind: 'hostile-headers', body: e.body, properties };
  }
  if (rng.bool(0.5)) {
    // A malformed task body: args, kwargs or embed of the wrong shape, prototype keys.
    const shapes: unknown[] = [
      [randomValue(rng, 2), [], EMBED],
      [[1], randomValue(rng, 2), EMBED],
      [[1], {}, randomValue(rng, 2)],
      [[1], JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1}'), EMBED],
      randomValue(rng, 2),
      [[1]],
    ];
    const m = encoded(rng, rng.pick(shapes) ?? null);
    return {
      kind: 'odd-task',
      body: m.body,
      properties: { ...properties, ...m.properties, headers: properties.headers ?? {} },
    };
  }
  return { kind: 'valid', body: e.body, properties };
}
