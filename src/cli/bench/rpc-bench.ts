/**
 * The rpc:// benchmark: RPCBackend's store/collect path alone (Node worker side storing N
 * results to one reply queue, collected by the reply consumer), and task round trips
 * (sendTask + result) from Node versus the Python Celery client against the same real Celery
 * 5 worker.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Celery } from '../../celery/app.js';
import { ResultSet } from '../../celery/result.js';
import { RPCBackend } from '../../celery/rpc-backend.js';
import { Connection } from '../../kombu/connection.js';
import { pool, rate } from './stats.js';

/**
 * Options of {@link runRpcBench}.
 *
 * @example
 * ```ts
 * await runRpcBench({ results: 10_000, roundTrips: 0 });
 * ```
 */
export interface RpcBenchOptions {
  /** Broker URL. @default 'amqp://guest:guest@127.0.0.1:5672//' */
  url?: string | undefined;
  /** Results stored and collected in the store/collect phase. @default 50_000 */
  results?: number | undefined;
  /** storeResult calls in flight. @default 512 */
  concurrency?: number | undefined;
  /** Round trips per client in the Celery phase; 0 skips it. @default 2000 */
  roundTrips?: number | undefined;
  /** Python interpreter with celery 5. @default '/usr/bin/python3' */
  python?: string | undefined;
  /** Folder of celery_app.py / celery_client.py. @default './test/interop/peers' */
  peersDir?: string | undefined;
  /** Worker thread pool size. @default 8 */
  workerConcurrency?: number | undefined;
  /** Progress lines. @default none */
  log?: ((line: string) => void) | undefined;
}

/**
 * What {@link runRpcBench} measured (rates per second, times in ms).
 *
 * @example
 * ```ts
 * const { storeCollect } = await runRpcBench(); storeCollect.collectPerS;
 * ```
 */
export interface RpcBenchReport {
  /** Store/collect phase. */
  storeCollect: { n: number; storePerS: number; collectPerS: number; totalMs: number };
  /** Round trips against the Celery worker, or null when skipped. */
  roundTrips: {
    n: number;
    nodePerS: number;
    nodeSendPerS: number;
    pythonPerS: number | null;
    pythonSendPerS: number | null;
  } | null;
}

/**
 * Runs the rpc:// benchmark. Wire it into `bench` as `runRpcBench(options)`.
 *
 * @example
 * ```ts
 * const report = await runRpcBench({ results: 50_000, roundTrips: 2000, log: console.error });
 * ```
 */
export async function runRpcBench(options: RpcBenchOptions = {}): Promise<RpcBenchReport> {
  const url = options.url ?? 'amqp://guest:guest@127.0.0.1:5672//';
  const log = options.log ?? ((): void => undefined);
  const storeCollect = await storeCollectPhase(url, options.results ?? 50_000, options.concurrency ?? 512);
  log(`rpc store/collect: ${JSON.stringify(storeCollect)}`);
  const n = options.roundTrips ?? 2000;
  const roundTrips = n > 0 ? await roundTripPhase(url, n, options, log) : null;
  return { storeCollect, roundTrips };
}

async function storeCollectPhase(
  url: string,
  n: number,
  concurrency: number,
): Promise<RpcBenchReport['storeCollect']> {
  const clientConn = new Connection(url);
  const workerConn = new Connection(url);
  const client = new RPCBackend({ connection: clientConn });
  const worker = new RPCBackend({ connection: workerConn });
  try {
    await client.ensureReplyQueue();
    const ids = Array.from({ length: n }, () => randomUUID());
    const t0 = performance.now();
    const collected = (async (): Promise<number> => {
      let count = 0;
      for await (const [, meta] of client.getMany(ids, { timeout: 120_000 })) {
        if (meta.status === 'SUCCESS') count++;
      }
      return count;
    })();
    // Let getMany register its ids before the first reply arrives.
    await new Promise((r) => setImmediate(r));
    await pool(n, concurrency, (i) => {
      const id = ids[i] as string;
      return worker.storeResult(id, i, 'SUCCESS', {
        request: { id, reply_to: client.oid, correlation_id: id },
      });
    });
    const tStored = performance.now();
    const ok = await collected;
    const tDone = performance.now();
    if (ok !== n) throw new Error(`collected ${ok} of ${n}`);
    return {
      n,
      storePerS: rate(n, tStored - t0),
      collectPerS: rate(n, tDone - t0),
      totalMs: Math.round(tDone - t0),
    };
  } finally {
    await worker.close();
    await client.close();
    await workerConn.close();
    await clientConn.close();
  }
}

async function roundTripPhase(
  url: string,
  n: number,
  options: RpcBenchOptions,
  log: (line: string) => void,
): Promise<RpcBenchReport['roundTrips']> {
  const python = options.python ?? '/usr/bin/python3';
  const peers = resolve(options.peersDir ?? 'test/interop/peers');
  if (!existsSync(resolve(peers, 'celery_app.py'))) {
    log(`rpc round trips skipped: no celery_app.py in ${peers}`);
    return null;
  }
  const queue = `rpc-bench-${randomUUID().slice(0, 8)}`;
  const env = { ...process.env, CELERY_QUEUE: queue, CELERY_BROKER_URL: url, PYTHONUNBUFFERED: '1' };
  const worker = spawn(
    python,
    ['-m', 'celery', '-A', 'celery_app', 'worker', '-Q', queue, '-P', 'threads', '-c']
      .concat([String(options.workerConcurrency ?? 8), '-n', `${queue}@%h`, '--without-gossip'])
      .concat(['--without-mingle', '--without-heartbeat', '-l', 'warning']),
    { cwd: peers, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((r) => worker.on('close', () => r()));
  worker.stdout.resume();
  worker.stderr.resume();
  const app = new Celery({ broker: url, settings: { task_default_queue: queue } });
  try {
    // The worker is ready when it answers a task.
    await app.sendTask('add', [0, 0]).get({ timeout: 60_000 });
    const t0 = performance.now();
    const results = Array.from({ length: n }, (_, i) => app.sendTask('add', [i, i]));
    await Promise.all(results.map((r) => r.sent));
    const tSent = performance.now();
    const values = await new ResultSet(results, app.backend).joinNative({ timeout: 300_000 });
    const tDone = performance.now();
    if (values.some((v, i) => v !== 2 * i)) throw new Error('wrong results from the Celery worker');
    const node = { nodePerS: rate(n, tDone - t0), nodeSendPerS: rate(n, tSent - t0) };
    log(`rpc round trips node: ${JSON.stringify(node)}`);
    const py = await pythonSendMany(python, peers, env, n, queue);
    log(`rpc round trips python: ${JSON.stringify(py)}`);
    return { n, ...node, pythonPerS: py?.roundtrip_per_s ?? null, pythonSendPerS: py?.send_per_s ?? null };
  } finally {
    await app.close();
    worker.kill('SIGTERM');
    const kill = setTimeout(() => worker.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(kill);
    const conn = new Connection(url);
    const ch = await conn.channel();
    await ch.deleteQueue(queue, {}).catch(() => undefined);
    await ch.deleteExchange(queue, {}).catch(() => undefined);
    await conn.close();
  }
}

interface SendManyOut {
  roundtrip_per_s?: number;
  send_per_s?: number;
}

function pythonSendMany(
  python: string,
  peers: string,
  env: NodeJS.ProcessEnv,
  n: number,
  queue: string,
): Promise<SendManyOut | null> {
  return new Promise((done) => {
    const child = spawn(
      python,
      ['celery_client.py', 'send-many', String(n), '--queue', queue, '--timeout', '300'],
      {
        cwd: peers,
        env,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', () => done(null));
    child.on('close', () => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        done(JSON.parse(line) as SendManyOut);
      } catch {
        done(null);
      }
    });
  });
}
