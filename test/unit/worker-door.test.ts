/**
 * The Worker's door on memory://: every hostile task message is rejected with one typed
 * InvalidTaskError ('invalid' event, a log line, a counter), its handler never runs, and the
 * worker keeps serving the next normal task.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pythonExceptionStr, pythonRepr } from '../../src/celery/exceptions.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { InvalidTaskError, Worker } from '../../src/celery/worker.js';
import { boundedRepr } from '../../src/celery/worker/request.js';
import { ArgumentError, DecodeLimitError } from '../../src/errors.js';
import type { EncodeLimitError } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import type { MessageProperties } from '../../src/transport/types.js';
import { cleanupStack, newTaskId, waitUntil } from '../fixture.js';
import {
  aliasBombValue,
  nestedValue,
  yamlAliasBombResult,
  yamlAliasBombTask,
  zlibBomb,
} from '../hostile/bodies.js';
import { listenToEvents, publishRaw, send, startWorker } from '../worker-fixture.js';

const URL = 'memory://';
const EMBED = { callbacks: null, errbacks: null, chain: null, chord: null };

/** Protocol v2 headers of a task named `echo`, with `over` replacing or adding keys. */
function headers(over: Record<string, unknown> = {}): Record<string, unknown> {
  const id = newTaskId();
  return {
    lang: 'py',
    task: 'echo',
    id,
    root_id: id,
    parent_id: null,
    group: null,
    retries: 0,
    eta: null,
    expires: null,
    timelimit: [null, null],
    ...over,
  };
}

const body = (args: unknown = [1], kwargs: unknown = {}): string => JSON.stringify([args, kwargs, EMBED]);

interface Case {
  name: string;
  body: string | Buffer;
  properties: MessageProperties;
}

const TEN_MB = 'x'.repeat(10 * 1024 * 1024);

const CASES: Case[] = [
  { name: 'a body that is not JSON', body: '[[1], {', properties: { headers: headers() } },
  {
    name: 'a body of another content type',
    body: body(),
    properties: { headers: headers(), contentType: 'application/x-python-serialize' },
  },
  { name: 'args that are not a list', body: body({ a: 1 }), properties: { headers: headers() } },
  { name: 'kwargs that are a list', body: body([1], [2]), properties: { headers: headers() } },
  {
    name: 'kwargs with a __proto__ key',
    body: '[[1], {"__proto__": {"polluted": true}}, {}]',
    properties: { headers: headers() },
  },
  {
    name: 'kwargs with a constructor key',
    body: body([1], { constructor: 'x' }),
    properties: { headers: headers() },
  },
  { name: 'an eta that is a number', body: body(), properties: { headers: headers({ eta: 5 }) } },
  {
    name: 'an eta of 10 kB',
    body: body(),
    properties: { headers: headers({ eta: `2026-01-01T00:00:00${'0'.repeat(10_000)}` }) },
  },
  {
    name: 'an expires that is an object',
    body: body(),
    properties: { headers: headers({ expires: { at: 1 } }) },
  },
  {
    name: 'a timelimit that is a string',
    body: body(),
    properties: { headers: headers({ timelimit: '10' }) },
  },
  {
    name: 'a timelimit of three values',
    body: body(),
    properties: { headers: headers({ timelimit: [1, 2, 3] }) },
  },
  {
    name: 'a negative time limit',
    body: body(),
    properties: { headers: headers({ timelimit: [-1, null] }) },
  },
  {
    name: 'an absurd time limit',
    body: body(),
    properties: { headers: headers({ timelimit: [1e15, null] }) },
  },
  { name: 'retries that are a string', body: body(), properties: { headers: headers({ retries: 'x' }) } },
  { name: 'negative retries', body: body(), properties: { headers: headers({ retries: -1 }) } },
  { name: 'fractional retries', body: body(), properties: { headers: headers({ retries: 1.5 }) } },
  { name: 'absurd retries', body: body(), properties: { headers: headers({ retries: 1e15 }) } },
  { name: 'no id', body: body(), properties: { headers: { task: 'echo' } } },
  { name: 'an id of 10 MB', body: body(), properties: { headers: headers({ id: TEN_MB }) } },
  { name: 'a reply_to of 10 MB', body: body(), properties: { headers: headers(), replyTo: TEN_MB } },
  {
    name: 'a correlation_id of 10 MB',
    body: body(),
    properties: { headers: headers(), correlationId: TEN_MB },
  },
  { name: 'a root_id that is a number', body: body(), properties: { headers: headers({ root_id: 7 }) } },
];

describe('Worker door: hostile task messages (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it.each(CASES)(
    '$name: rejected with an InvalidTaskError and a log line; the worker keeps serving',
    async (c) => {
      const ran: unknown[] = [];
      const lines: string[] = [];
      const logger: Logger = { debug() {}, info() {}, warn() {}, error: (m: string) => void lines.push(m) };
      const { queue, client, worker } = await startWorker(
        cleanups,
        { echo: ([x]) => (ran.push(x), x) },
        { logger },
      );
      const invalid: InvalidTaskError[] = [];
      worker.on('invalid', (err) => invalid.push(err));
      await publishRaw(URL, queue, c.body, c.properties);
      await waitUntil(() => worker.counters.invalid === 1, { what: 'the invalid message counted' });
      expect(invalid).toHaveLength(1);
      expect(invalid[0]).toBeInstanceOf(InvalidTaskError);
      expect(typeof invalid[0]?.code).toBe('string');
      expect(lines.some((l) => l.startsWith('Received invalid task message'))).toBe(true);
      // Never run, and the next task is served.
      const next = await send(client, 'echo', ['next']);
      expect(await next.get()).toBe('next');
      expect(ran).toEqual(['next']);
      expect(worker.counters.rejected).toBe(1);
      expect(Object.prototype).not.toHaveProperty('polluted');
    },
  );

  it('a body that cannot be decoded keeps its decode error as the cause, with its code', async () => {
    const { queue, worker } = await startWorker(cleanups, { echo: ([x]) => x });
    const invalid: InvalidTaskError[] = [];
    worker.on('invalid', (err) => invalid.push(err));
    await publishRaw(URL, queue, body(), {
      headers: headers(),
      contentType: 'application/x-python-serialize',
    });
    await waitUntil(() => invalid.length === 1);
    expect(invalid[0]?.code).toBe('CONTENT_DISALLOWED');
    expect(invalid[0]?.cause).toBeInstanceOf(Error);
  });

  it('an invalid message names the task and id it carried', async () => {
    const { queue, worker } = await startWorker(cleanups, { echo: ([x]) => x });
    const invalid: InvalidTaskError[] = [];
    worker.on('invalid', (err) => invalid.push(err));
    const h = headers({ retries: 'x' });
    await publishRaw(URL, queue, body(), { headers: h });
    await waitUntil(() => invalid.length === 1);
    expect(invalid[0]).toMatchObject({ taskId: h['id'], taskName: 'echo' });
    expect(invalid[0]?.message).toContain('retries');
  });

  it('without an invalid listener the worker still logs, counts and keeps consuming', async () => {
    const lines: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (m: string) => void lines.push(m) };
    const { queue, client, worker } = await startWorker(cleanups, { echo: ([x]) => x }, { logger });
    for (let i = 0; i < 20; i++) await publishRaw(URL, queue, '{', { headers: headers() });
    await waitUntil(() => worker.counters.invalid === 20);
    expect(lines.filter((l) => l.startsWith('Received invalid task message'))).toHaveLength(20);
    expect(await (await send(client, 'echo', [1])).get()).toBe(1);
  });
});

describe('Worker door: decode limits and values that cannot be written (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  const BOMBS = [
    {
      name: 'a body nested 200,000 deep',
      body: `[[${'['.repeat(200_000)}${']'.repeat(200_000)}], {}, {}]`,
      properties: {},
      code: 'TOO_DEEP',
      limit: 'maxDepth',
    },
    {
      name: 'a YAML alias bomb of 12 anchors',
      body: yamlAliasBombResult('x'),
      properties: { contentType: 'application/x-yaml', contentEncoding: 'utf-8' },
      code: 'TOO_MANY_ALIASES',
      limit: 'maxAliasExpansion',
    },
    {
      name: 'a zlib bomb inflating to 128 MiB',
      body: zlibBomb(2),
      properties: { headers: { compression: 'application/x-gzip' } },
      code: 'BODY_TOO_LARGE',
      limit: 'maxDecodedBytes',
    },
  ];

  it.each(BOMBS)('$name: rejected with the limit code, naming the task id and the limit', async (c) => {
    const { queue, client, worker } = await startWorker(cleanups, { echo: ([x]) => x });
    const invalid: InvalidTaskError[] = [];
    worker.on('invalid', (err) => invalid.push(err));
    const h = headers();
    const { headers: extra, ...props } = c.properties as MessageProperties;
    await publishRaw(URL, queue, c.body, { ...props, headers: { ...h, ...extra } });
    await waitUntil(() => invalid.length === 1, { what: 'the bomb rejected' });
    expect(invalid[0]?.code).toBe(c.code);
    expect(invalid[0]?.message).toContain(`task ${String(h['id'])}`);
    expect(invalid[0]?.message).toContain(`limit ${c.limit} =`);
    expect(invalid[0]?.cause).toBeInstanceOf(DecodeLimitError);
    expect(worker.counters.rejected).toBe(1);
    expect(await (await send(client, 'echo', ['next'])).get()).toBe('next');
  });

  it('the decodeLimits option bounds task messages (and is checked)', async () => {
    const { queue, client, worker } = await startWorker(
      cleanups,
      { echo: ([x]) => x },
      { decodeLimits: { maxDepth: 4 } },
    );
    expect(worker.options.decodeLimits.maxDepth).toBe(4);
    const invalid: InvalidTaskError[] = [];
    worker.on('invalid', (err) => invalid.push(err));
    // [args, kwargs, embed] is one level, args a second: [[[1]]] as the one arg is five.
    await publishRaw(URL, queue, body([[[[1]]]]), { headers: headers() });
    await waitUntil(() => invalid.length === 1);
    expect(invalid[0]).toMatchObject({ code: 'TOO_DEEP' });
    expect((invalid[0]?.cause as DecodeLimitError).max).toBe(4);
    expect(await (await send(client, 'echo', [[[1]]])).get()).toEqual([[1]]);
    expect(() => new Worker(client, { decodeLimits: { maxDepth: 1.5 } })).toThrow(ArgumentError);
  });

  it('a handler returning a value too large once written fails the task with the EncodeError, once', async () => {
    let runs = 0;
    const { client, worker } = await startWorker(cleanups, {
      bomb: () => {
        runs++;
        return aliasBombValue();
      },
      deep: () => nestedValue(5000),
    });
    const failed: unknown[] = [];
    worker.on('task-failed', (_req, err) => failed.push(err));
    const bomb = await (await send(client, 'bomb')).error();
    expect(bomb).toBeInstanceOf(Error);
    expect(String((bomb as Error).message)).toMatch(/exceeds .* bytes/);
    const deep = await (await send(client, 'deep')).error();
    expect(String((deep as Error).message)).toMatch(/nested more than 1000 levels/);
    expect(runs).toBe(1);
    expect(failed.map((e) => (e as EncodeLimitError).code)).toEqual(['BODY_TOO_LARGE', 'TOO_DEEP']);
    expect(worker.counters.failed).toBe(2);
  });

  it('a bomb the limits let through is quoted in bounded text (log, events) and cannot be echoed back', async () => {
    const lines: string[] = [];
    const logger: Logger = {
      debug() {},
      info: (m: string) => void lines.push(m),
      warn: (m: string) => void lines.push(m),
      error: (m: string) => void lines.push(m),
    };
    const events = await listenToEvents(URL, cleanups);
    const { queue, client, worker } = await startWorker(
      cleanups,
      { last: (args) => args[args.length - 1] },
      { logger, sendTaskEvents: true, decodeLimits: { maxAliasExpansion: Infinity } },
    );
    const failed: unknown[] = [];
    worker.on('task-failed', (_req, err) => failed.push(err));
    // Sent raw: the client's own sendTask would refuse to encode the bomb.
    const backend = client.backend;
    if (!(backend instanceof RPCBackend)) throw new Error('expected rpc://');
    await backend.ensureReplyQueue();
    const h = headers({ task: 'last', argsrepr: null });
    await publishRaw(URL, queue, yamlAliasBombTask(), {
      contentType: 'application/x-yaml',
      headers: h,
      replyTo: backend.oid,
      correlationId: String(h['id']),
    });
    const err = await backend.waitFor(String(h['id']), { timeout: 10_000 });
    expect(err.status).toBe('FAILURE');
    expect(String(JSON.stringify(err.result))).toMatch(/EncodeLimitError|exceeds/);
    expect(failed[0]).toMatchObject({ code: 'BODY_TOO_LARGE', limit: 'maxDecodedBytes' });
    await waitUntil(() => events.of('task-failed').length === 1, { what: 'task-failed' });
    const received = events.of('task-received')[0];
    expect(String(received?.['args']).length).toBeLessThanOrEqual(1024);
    expect(lines.every((l) => l.length < 10_000)).toBe(true);
    // The helpers that quote values are cut at their length, whatever the value expands to.
    const big = aliasBombValue();
    expect(boundedRepr(big)).toHaveLength(1024);
    expect(pythonRepr(big)).toHaveLength(4096);
    expect(pythonExceptionStr('ValueError', [big, big])).toMatch(/^\(\[\[.*\.\.\.$/);
  });
});
