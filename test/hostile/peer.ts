/**
 * The hostile-peer run: a Node publisher sends seeded hostile messages (test/hostile/cases.ts)
 * into the three doors of one process — an AMQPBackend's result queues (read by getTaskMeta,
 * waitFor or getMany), an RPCBackend's reply queue (one long-lived no-ack consumer) and a
 * Worker's task queue — one case at a time, each followed by a normal message through the
 * same door. Every case must end, within a time bound, in a decoded value or a typed error
 * (a CeleryAmqpError), every normal message must arrive, and every message a poll could not
 * read must still be in its queue.
 *
 * @module
 */
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { Celery } from '../../src/celery/app.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { Worker } from '../../src/celery/worker.js';
import { CeleryAmqpError } from '../../src/errors.js';
import type { Channel } from '../../src/kombu/channel.js';
import { Connection } from '../../src/kombu/connection.js';
import type { DecodeLimits } from '../../src/kombu/decode-limits.js';
import type { Logger } from '../../src/logger.js';
import type { MessageProperties } from '../../src/transport/types.js';
import { uid, waitUntil } from '../fixture.js';
import { prepareCases, resultCase, taskCase } from './cases.js';
import type { CaseContext, HostileMessage } from './cases.js';
import { Rng } from './random.js';

/** The doors a case can go through. */
export type Door = 'amqp' | 'rpc' | 'worker';

const DOORS: readonly Door[] = ['amqp', 'rpc', 'worker'];

/** Options of {@link runPeer}. */
export interface PeerOptions {
  /** Broker URL (`memory://` or RabbitMQ). */
  readonly url: string;
  /** Seed of the cases: case i of seed s is always the same message (ids aside). */
  readonly seed: number;
  /** Cases, spread over the doors in turn. */
  readonly cases: number;
  /** The doors. @default ['amqp', 'rpc', 'worker'] */
  readonly doors?: readonly Door[] | undefined;
  /** Time bound of one case (and of its normal message), ms. @default 15000 */
  readonly caseTimeoutMs?: number;
  /**
   * The readers' maxDecodedBytes (bombs expand to twice it). Lower than the 64 MiB default so
   * that 10,000 cases take minutes, not hours: each bomb inflates up to this limit before it
   * is refused; every limit is still crossed (the CLI test covers the defaults). @default 1 MiB
   */
  readonly maxDecodedBytes?: number;
  /**
   * The readers' maxCollections. Scaled down with maxDecodedBytes: a million empty lists
   * (a 1 MB msgpack body) take about 41 MB of heap, and a few of those between two garbage
   * collections would be what bounds the run's memory. @default 100000
   */
  readonly maxCollections?: number;
  /** Called every `progressEvery` cases. @default undefined */
  readonly onProgress?: ((done: number, report: PeerReport) => void) | undefined;
  /** @default 1000 */
  readonly progressEvery?: number;
}

/** Counts of one door or one kind of case. */
export interface Tally {
  cases: number;
  decoded: number;
  typed: number;
}

/** What a run found. */
export interface PeerReport {
  url: string;
  seed: number;
  cases: number;
  doors: Record<Door, Tally>;
  kinds: Record<string, Tally>;
  /** Typed error codes seen, by code. */
  codes: Record<string, number>;
  /** Cases (or normal messages) that did not end within the bound. */
  hangs: number;
  /** Cases that ended with an error that is no CeleryAmqpError. */
  untyped: number;
  /** Polls (getTaskMeta) that could not read a message, and of those, messages no longer queued. */
  kept: { checked: number; missing: number };
  /** Normal messages sent after each case, and those that did not arrive intact. */
  normal: { sent: number; lost: number };
  /** Hostile messages the publishing client refused to send (typed errors), not counted as cases. */
  unsendable: number;
  /** 'error' events of the backends and the worker (errors no call could receive). */
  reported: { typed: number; untyped: number };
  /** The longest worker log line, characters. */
  longestLogLine: number;
  /** The first failures, described. */
  failures: string[];
  durationMs: number;
}

type Outcome =
  | { kind: 'decoded'; value: unknown }
  | { kind: 'typed'; code: string }
  | { kind: 'untyped'; error: unknown }
  | { kind: 'hang' };

/** How `p` ends within `ms`: a value, a typed error, another error, or not at all. */
async function outcome(p: Promise<unknown>, ms: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'hang' }), ms);
  });
  try {
    return await Promise.race([
      p.then(
        (value): Outcome => ({ kind: 'decoded', value }),
        (error: unknown): Outcome =>
          error instanceof CeleryAmqpError ? { kind: 'typed', code: error.code } : { kind: 'untyped', error },
      ),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function tally(): Tally {
  return { cases: 0, decoded: 0, typed: 0 };
}

/** A per-case generator: case i of a seed is the same whatever ran before it. */
function caseRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}

function describe(value: unknown): string {
  const text = value instanceof Error ? `${value.name}: ${value.message}` : String(value);
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/**
 * Runs the hostile peer against the three doors on `options.url`.
 *
 * @example
 * ```ts
 * const report = await runPeer({ url: 'memory://', seed: 1, cases: 3000 });
 * report.hangs; // 0
 * ```
 */
export async function runPeer(options: PeerOptions): Promise<PeerReport> {
  const { url, seed } = options;
  const doors = options.doors ?? DOORS;
  const timeout = options.caseTimeoutMs ?? 15_000;
  const maxDecodedBytes = options.maxDecodedBytes ?? 1024 * 1024;
  const maxCollections = options.maxCollections ?? 100_000;
  const limits: Partial<DecodeLimits> = { maxDecodedBytes, maxCollections };
  const accept = ['json', 'msgpack', 'yaml', 'pickle'];
  const tag = uid('run');
  const started = performance.now();
  const report: PeerReport = {
    url: url.replace(/:[^:@/]*@/, ':****@'),
    seed,
    cases: 0,
    doors: { amqp: tally(), rpc: tally(), worker: tally() },
    kinds: {},
    codes: {},
    hangs: 0,
    untyped: 0,
    kept: { checked: 0, missing: 0 },
    normal: { sent: 0, lost: 0 },
    unsendable: 0,
    reported: { typed: 0, untyped: 0 },
    longestLogLine: 0,
    failures: [],
    durationMs: 0,
  };
  const fail = (what: string): void => {
    if (report.failures.length < 20) report.failures.push(what);
  };
  const onReported = (err: unknown): void => {
    if (err instanceof CeleryAmqpError) report.reported.typed++;
    else {
      report.reported.untyped++;
      fail(`reported untyped: ${describe(err)}`);
    }
  };
  const lines: Logger = {
    debug: () => undefined,
    info: (m: string) => void (report.longestLogLine = Math.max(report.longestLogLine, m.length)),
    warn: (m: string) => void (report.longestLogLine = Math.max(report.longestLogLine, m.length)),
    error: (m: string) => void (report.longestLogLine = Math.max(report.longestLogLine, m.length)),
  };

  await prepareCases();
  const ctxBase = {
    maxShortString: url.startsWith('memory:') ? 100_000 : 255,
    maxDecodedBytes,
    maxCollections,
  };
  const exchange = `hostile-results-${tag}`;
  const queue = `hostile-tasks-${tag}`;
  const publisher = new Connection(url, { heartbeat: 0 });
  const reader = new AMQPBackend({
    connection: url,
    exchange,
    persistent: false,
    expires: 300,
    accept,
    decodeLimits: limits,
    logger: lines,
  });
  const writer = new AMQPBackend({ connection: url, exchange, persistent: false, expires: 300 });
  const rpcClient = new RPCBackend({ connection: url, accept, decodeLimits: limits, logger: lines });
  const rpcWorker = new RPCBackend({ connection: url });
  const server = new Celery({ broker: url, settings: { task_default_queue: queue } });
  const client = new Celery({ broker: url, settings: { task_default_queue: queue } });
  const worker = new Worker(server, {
    queue,
    tasks: {
      echo: (args) => args[0] ?? null,
      boom: () => {
        throw new Error('boom');
      },
    },
    concurrency: 8,
    heartbeat: false,
    remoteControl: false,
    logger: lines,
    decodeLimits: limits,
  });
  for (const emitter of [reader, rpcClient, worker]) emitter.on('error', onReported);
  // The worker door's outcome: an 'invalid' event (the case's typed error), else decoded.
  const invalid = { count: 0, code: '' };
  worker.on('invalid', (err) => {
    invalid.count++;
    invalid.code = err.code;
    if (!(err instanceof CeleryAmqpError)) onReported(err);
  });
  let ch: Channel | undefined;
  try {
    await worker.start();
    await rpcClient.ensureReplyQueue();
    ch = await publisher.channel({ confirm: true });
    const pub = ch;
    const send = (
      exchangeName: string,
      routingKey: string,
      m: HostileMessage | { body: Buffer; properties: MessageProperties },
    ): Promise<void> =>
      pub.publish({ exchange: exchangeName, routingKey, body: m.body, properties: m.properties });
    // A hostile message the publishing client itself refuses (amqplib cannot encode a NaN
    // header, a short string past 255 bytes): typed, counted apart, not a case.
    const sendHostile = async (
      exchangeName: string,
      routingKey: string,
      m: HostileMessage,
    ): Promise<boolean> => {
      try {
        await send(exchangeName, routingKey, m);
        return true;
      } catch (err) {
        if (!(err instanceof CeleryAmqpError)) throw err;
        report.unsendable++;
        return false;
      }
    };
    const terminator = (id: string): { body: Buffer; properties: MessageProperties } => ({
      body: Buffer.from(
        JSON.stringify({
          task_id: id,
          status: 'SUCCESS',
          result: 'terminator',
          traceback: null,
          children: null,
        }),
      ),
      properties: { contentType: 'application/json', contentEncoding: 'utf-8', correlationId: id },
    });
    const record = (door: Door, m: HostileMessage, o: Outcome, index: number): void => {
      const d = report.doors[door];
      const k = (report.kinds[`${door}:${m.kind}`] ??= tally());
      d.cases++;
      k.cases++;
      report.cases++;
      if (o.kind === 'decoded') {
        d.decoded++;
        k.decoded++;
      } else if (o.kind === 'typed') {
        d.typed++;
        k.typed++;
        report.codes[o.code] = (report.codes[o.code] ?? 0) + 1;
      } else if (o.kind === 'hang') {
        report.hangs++;
        fail(`case ${index} (${door}:${m.kind}) did not end within ${timeout} ms`);
      } else {
        report.untyped++;
        fail(`case ${index} (${door}:${m.kind}) ended untyped: ${describe(o.error)}`);
      }
    };
    const checkNormal = async (
      index: number,
      door: Door,
      p: Promise<unknown>,
      expected: unknown,
    ): Promise<void> => {
      report.normal.sent++;
      const o = await outcome(p, timeout);
      if (o.kind === 'decoded' && JSON.stringify(o.value) === JSON.stringify(expected)) return;
      report.normal.lost++;
      fail(
        `normal message after case ${index} (${door}) did not arrive: ${o.kind} ${o.kind === 'decoded' ? JSON.stringify(o.value) : o.kind === 'typed' ? o.code : ''}`,
      );
    };

    for (let i = 0; i < options.cases; i++) {
      const door = doors[i % doors.length] ?? 'amqp';
      const rng = caseRng(seed, i);
      const id = `hostile-${seed}-${i}-${tag}`;
      const normalId = `normal-${seed}-${i}-${tag}`;
      const ctx: CaseContext = { ...ctxBase, taskId: id };
      if (door === 'amqp') {
        const m = resultCase(rng, ctx);
        const rk = id.replaceAll('-', '');
        const method = rng.pick(['getTaskMeta', 'waitFor', 'getMany'] as const);
        await reader.queueFor(rk, pub).declare();
        if (!(await sendHostile(exchange, rk, m))) {
          await pub.deleteQueue({ queue: rk }).catch(() => undefined);
          continue;
        }
        // A READY state after the hostile one, so that a wait always has an end.
        if (method !== 'getTaskMeta') await send(exchange, rk, terminator(id));
        const read =
          method === 'getTaskMeta'
            ? reader.getTaskMeta(id)
            : method === 'waitFor'
              ? reader.waitFor(id, { timeout })
              : (async () => {
                  const got: string[] = [];
                  for await (const [tid] of reader.getMany([id], { timeout })) got.push(tid);
                  return got;
                })();
        const o = await outcome(read, timeout + 1000);
        record(door, m, o, i);
        if (method === 'getTaskMeta' && o.kind === 'typed') {
          report.kept.checked++;
          // The requeue went on the reader's channel: give it a moment to reach the queue.
          const count = async (): Promise<number> =>
            (await pub.declareQueue({ queue: rk, passive: true }).catch(() => null))?.messageCount ?? -1;
          const queued = await waitUntil(async () => (await count()) === 1, { timeout: 2000 }).catch(
            () => false,
          );
          if (!queued) {
            report.kept.missing++;
            fail(`case ${i} (amqp:${m.kind}): the poll's message is no longer queued`);
          }
        }
        // The next normal result, read through the same door.
        await writer.storeResult(normalId, { n: i }, 'SUCCESS');
        const normal =
          method === 'getMany'
            ? (async () => {
                for await (const [, meta] of reader.getMany([normalId], { timeout })) return meta.result;
                return undefined;
              })()
            : method === 'waitFor'
              ? reader.waitFor(normalId, { timeout }).then((meta) => meta.result)
              : reader.getTaskMeta(normalId).then((meta) => meta.result);
        await checkNormal(i, door, normal, { n: i });
        await pub.deleteQueue({ queue: rk }).catch(() => undefined);
        await pub.deleteQueue({ queue: normalId.replaceAll('-', '') }).catch(() => undefined);
      } else if (door === 'rpc') {
        const m = resultCase(rng, ctx);
        const properties: MessageProperties = { ...m.properties };
        const corr = rng.int(10);
        if (corr < 7) properties.correlationId = id;
        else if (corr < 8) delete properties.correlationId;
        else properties.correlationId = rng.string(rng.range(1, 40));
        // Its outcome is taken at once: the wait may reject before the sends below return.
        const wait = outcome(rpcClient.waitFor(id, { timeout }), timeout + 1000);
        const sent = await sendHostile('', rpcClient.oid, { ...m, properties });
        await send('', rpcClient.oid, terminator(id));
        const o = await wait;
        if (sent) record(door, m, o, i);
        await rpcWorker.storeResult(normalId, { n: i }, 'SUCCESS', {
          request: { id: normalId, reply_to: rpcClient.oid, correlation_id: normalId },
        });
        await checkNormal(
          i,
          door,
          rpcClient.waitFor(normalId, { timeout }).then((meta) => meta.result),
          { n: i },
        );
      } else {
        const m = taskCase(rng, ctx);
        const c = worker.counters;
        const before = c.received + c.rejected;
        const invalidBefore = invalid.count;
        const rejectedBefore = c.rejected;
        if (!(await sendHostile('', queue, m))) continue;
        const deadline = Date.now() + timeout;
        const handled = new Promise<void>((resolve, reject) => {
          const poll = (): void => {
            if (c.received + c.rejected > before) resolve();
            else if (Date.now() > deadline) reject(new Error('not handled'));
            else setTimeout(poll, 1);
          };
          poll();
        });
        const o = await outcome(handled, timeout + 1000);
        const rejected = c.rejected > rejectedBefore;
        record(
          door,
          m,
          o.kind === 'hang'
            ? o
            : invalid.count > invalidBefore
              ? { kind: 'typed', code: invalid.code }
              : rejected
                ? { kind: 'typed', code: 'NOT_REGISTERED' }
                : { kind: 'decoded', value: null },
          i,
        );
        const r = await client.sendTask('echo', [`n${i}`]);
        await checkNormal(i, door, r.get({ timeout }), `n${i}`);
      }
      if (options.onProgress !== undefined && (i + 1) % (options.progressEvery ?? 1000) === 0) {
        report.durationMs = performance.now() - started;
        options.onProgress(i + 1, report);
      }
    }
  } finally {
    await worker.close({ cold: true }).catch(onReported);
    if (ch !== undefined) {
      await ch.deleteQueue({ queue }).catch(() => undefined);
      await ch.deleteExchange({ exchange: queue }).catch(() => undefined);
      await ch.deleteExchange({ exchange }).catch(() => undefined);
    }
    for (const closable of [client, server, rpcWorker, rpcClient, writer, reader, publisher]) {
      await closable.close().catch(onReported);
    }
  }
  report.durationMs = performance.now() - started;
  return report;
}
