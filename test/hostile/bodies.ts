/**
 * Hostile bodies, built small: decompression bombs, alias bombs, deep nesting. Shared by
 * the door tests, the CLI test of issue 13's three cases and the hostile-peer run.
 *
 * @module
 */
import { constants, deflateRawSync } from 'node:zlib';

/** One 64 MiB run of zeros as a non-final deflate block (made once, ~64 KB). */
let zeroBlock: Buffer | undefined;
const BLOCK_BYTES = 64 * 1024 * 1024;

/**
 * A zlib stream (RFC 1950, what kombu sends under `compression: application/x-gzip`)
 * inflating to `blocks` x 64 MiB of zeros: 24 blocks (1.5 GiB) take 1.5 MB, 30 (1.9 GiB)
 * about 1.95 MB.
 *
 * @example
 * ```ts
 * const bomb = zlibBomb(30); // ~1.95 MB -> 1.875 GiB
 * ```
 */
export function zlibBomb(blocks: number): Buffer {
  zeroBlock ??= deflateRawSync(Buffer.alloc(BLOCK_BYTES), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  const total = blocks * BLOCK_BYTES;
  // Adler-32 of `total` zeros: a = 1, b = total mod 65521.
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((total % 65521) << 16) | 1) >>> 0);
  return Buffer.concat([
    Buffer.from([0x78, 0xda]),
    ...Array<Buffer>(blocks).fill(zeroBlock),
    Buffer.from([0x03, 0x00]),
    adler,
  ]);
}

/** Bytes a {@link zlibBomb} of `blocks` inflates to. */
export function zlibBombSize(blocks: number): number {
  return blocks * BLOCK_BYTES;
}

/**
 * A JSON result body whose `result` is a list nested `depth` deep.
 *
 * @example
 * ```ts
 * deepJsonResult(id, 200_000); // {"task_id": id, "status": "SUCCESS", "result": [[[...]]], ...}
 * ```
 */
export function deepJsonResult(taskId: string, depth: number): string {
  return (
    `{"task_id":${JSON.stringify(taskId)},"status":"SUCCESS","traceback":null,"children":null,` +
    `"result":${'['.repeat(depth)}${']'.repeat(depth)}}`
  );
}

/** The anchored levels of a YAML alias bomb, in flow style: `&l0 [lol, ...]`, `&l1 [*l0, ...]`, ... */
function aliasLevels(levels: number, width: number): string[] {
  const out = [`&l0 [${Array.from({ length: width }, () => 'lol').join(', ')}]`];
  for (let i = 1; i < levels; i++) {
    out.push(`&l${i} [${Array.from({ length: width }, () => `*l${i - 1}`).join(', ')}]`);
  }
  return out;
}

/**
 * A YAML result body whose `result` is "billion laughs": `levels` anchors, the first a list
 * of `width` strings, each next one a list of `width` aliases of the one before (12 x 10:
 * 10^12 leaves once expanded, 300 bytes as text).
 *
 * @example
 * ```ts
 * yamlAliasBombResult(id); // bombs: [...], task_id: ..., result: *l11
 * ```
 */
export function yamlAliasBombResult(taskId: string, levels = 12, width = 10): string {
  return (
    `bombs: [${aliasLevels(levels, width).join(', ')}]\n` +
    `task_id: ${JSON.stringify(taskId)}\nstatus: SUCCESS\ntraceback: null\nchildren: null\n` +
    `result: *l${levels - 1}\n`
  );
}

/**
 * A YAML task body (`[args, kwargs, embed]`) whose args are the levels of an alias bomb, the
 * last one the whole bomb.
 *
 * @example
 * ```ts
 * publishRaw(url, queue, yamlAliasBombTask(), { contentType: 'application/x-yaml', headers });
 * ```
 */
export function yamlAliasBombTask(levels = 12, width = 10): string {
  return `- [${aliasLevels(levels, width).join(', ')}]\n- {}\n- {}\n`;
}

/**
 * The same bomb as a decoded value would hold it (shared references), for the output paths.
 *
 * @example
 * ```ts
 * JSON.stringify(aliasBombValue()); // would never finish
 * ```
 */
export function aliasBombValue(levels = 12, width = 10): unknown {
  let v: unknown = Array.from({ length: width }, () => 'lol');
  for (let i = 1; i < levels; i++) v = Array.from({ length: width }, () => v);
  return v;
}

/** A value nested `depth` deep (a list of a list of ...). */
export function nestedValue(depth: number): unknown {
  let v: unknown = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}

/** One of issue 13's three result bodies, as a test publishes it and what reading it gives. */
export interface Issue13Case {
  readonly name: string;
  /** The body for a task id. */
  readonly body: (taskId: string) => Buffer;
  readonly contentType: string;
  readonly headers: Record<string, unknown>;
  /** The DecodeLimitError's code and limit. */
  readonly code: 'BODY_TOO_LARGE' | 'TOO_MANY_ALIASES' | 'TOO_DEEP';
  readonly limit: 'maxDecodedBytes' | 'maxAliasExpansion' | 'maxDepth';
}

/**
 * Issue 13's three cases: a zlib body of `zlibBlocks` x 64 MiB (30: 1.87 MB inflating to
 * 1.875 GiB), a YAML alias bomb of 12 nested anchors, a JSON result nested 200,000 deep.
 *
 * @example
 * ```ts
 * for (const c of issue13Cases(30)) await publish(c.body(id), c.contentType, c.headers);
 * ```
 */
export function issue13Cases(zlibBlocks: number): Issue13Case[] {
  const bomb = zlibBomb(zlibBlocks);
  const mb = (bomb.length / 2 ** 20).toFixed(2);
  const inflated = zlibBombSize(zlibBlocks) / 2 ** 30;
  return [
    {
      name: `a ${mb} MB zlib body inflating to ${inflated >= 1 ? `${inflated.toFixed(3)} GiB` : `${inflated * 1024} MiB`}`,
      body: () => bomb,
      contentType: 'application/json',
      headers: { compression: 'application/x-gzip' },
      code: 'BODY_TOO_LARGE',
      limit: 'maxDecodedBytes',
    },
    {
      name: 'a YAML alias bomb of 12 nested anchors (10^12 leaves)',
      body: (id) => Buffer.from(yamlAliasBombResult(id)),
      contentType: 'application/x-yaml',
      headers: {},
      code: 'TOO_MANY_ALIASES',
      limit: 'maxAliasExpansion',
    },
    {
      name: 'a JSON result nested 200,000 deep',
      body: (id) => Buffer.from(deepJsonResult(id, 200_000)),
      contentType: 'application/json',
      headers: {},
      code: 'TOO_DEEP',
      limit: 'maxDepth',
    },
  ];
}
