/**
 * The rpc:// benchmark: RPCBackend's store/collect path alone (Node worker side storing N
 * results to one reply queue, collected by the reply consumer), and task round trips
 * (sendTask + result) from Node versus the Python Celery client against the same real Celery
 * 5 worker.
 *
 * How the round trips are measured, and why: a first version ran Node first on a cold worker,
 * once, and Node sent all N tasks in a burst (3,500-6,000/s) while Python's client sends at
 * about the worker's pace (450-1,700/s). With a full task queue this Celery worker (threads
 * pool, prefetch 4 x 8) idles: 5-13% CPU at 140-380 round trips/s, and Python's own client
 * drops to 117-236/s when the same backlog is made for it (8 sleeping tasks first). Timelines
 * showed replies following the queue's drain within 250 ms, and the Node process at 5-9%
 * CPU: the worker, not the client, set the pace. So each client now runs `reps` times in
 * alternating order after a warm-up of both, on the same worker and the same N, and the
 * medians are reported; `nodePerS` keeps at most `window` tasks in flight (no backlog, like
 * Python's paced sends), `nodeBurstPerS` is the burst, and the worker's CPU is reported so a
 * worker-bound figure can be told from a client-bound one. On the loaded 2-core box (CPU
 * pressure 60-90%) the worker spent 0.33-0.43 ms of CPU per task for either client (Node's
 * tasks no dearer), and each run's rate was its worker CPU share divided by that. In the slow
 * runs the worker's threads were asleep (98% of /proc samples) while RabbitMQ ran at 117%:
 * the worker waited for deliveries from a backlog of persistent task messages, a cost of the
 * broker and worker that Python's client pays too when it meets a backlog. Its cause: the
 * round-trip latencies were bimodal (median 40-60 ms, a third at 1.04 s or 2.03 s), Celery's
 * deferred acks waiting for the event loop's 1 s tick (see `workerPrefetch`). With the
 * worker's prefetch at 64 x 8 (median of 3): Node 2,553/s windowed, 1,837/s burst, Python
 * 1,085/s, on the same worker.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Celery } from '../src/celery/app.js';
import { ResultSet } from '../src/celery/result.js';
import { RPCBackend } from '../src/celery/rpc-backend.js';
import { Connection } from '../src/kombu/connection.js';
import { median, pool, rate } from './stats.js';

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
  /** worker_prefetch_multiplier of the Celery workers (x threads = unacked window). @default 64 */
  workerPrefetch?: number | undefined;
  /** Celery worker processes on the task queue (CPU figures are their sum). @default 1 */
  workerProcesses?: number | undefined;
  /** Measured repetitions per client (alternating which client goes first); medians are reported. @default 3 */
  reps?: number | undefined;
  /** Tasks in flight for the windowed Node figure. @default 64 */
  window?: number | undefined;
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
  /** Round trips against the Celery worker (medians over `reps`), or null when skipped. */
  roundTrips: {
    n: number;
    reps: number;
    /** Node, at most `window` tasks in flight (sendTask, then await each result). */
    nodePerS: number;
    /** Node, all N sent at once, then joinNative (the queue fills: see the module doc). */
    nodeBurstPerS: number;
    /** Send rate of the burst. */
    nodeSendPerS: number;
    /** Python celery_client.py send-many (send all, then join_native). */
    pythonPerS: number | null;
    pythonSendPerS: number | null;
    /** Worker processes used. */
    workers: number;
    /** Celery worker CPU (% of one core, all processes) during each client's runs, null off Linux. */
    workerCpuPct: { node: number | null; nodeBurst: number | null; python: number | null };
    /**
     * Celery worker CPU ms per task during each client's runs: equal for both clients means
     * the tasks cost the worker the same, and the round-trip rate is the worker's CPU share
     * divided by it (worker-bound), whichever client sends.
     */
    workerCpuMsPerTask: { node: number | null; nodeBurst: number | null; python: number | null };
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
  // Celery 5.2 defers a pool thread's ack to the worker's event loop, which sleeps up to 1 s
  // when nothing arrives: with the prefetch window full of done-but-unacked tasks, a third of
  // the round trips took 1.04 or 2.03 s (prefetch 4 x 8). A window far past the tasks in
  // flight removes that stall for every client (measured: 0 round trips over 1 s).
  const prefetch = String(options.workerPrefetch ?? 64);
  const env = {
    ...process.env,
    CELERY_QUEUE: queue,
    CELERY_BROKER_URL: url,
    CELERY_PREFETCH: prefetch,
    PYTHONUNBUFFERED: '1',
  };
  // Several worker processes on the one queue: a client can only be measured past one
  // worker's (or one consumer's) pace when there is more than one.
  const workers = Array.from({ length: Math.max(1, options.workerProcesses ?? 1) }, (_, k) =>
    spawn(
      python,
      ['-m', 'celery', '-A', 'celery_app', 'worker', '-Q', queue, '-P', 'threads', '-c']
        .concat([String(options.workerConcurrency ?? 8), '-n', `${queue}-${k}@%h`, '--without-gossip'])
        .concat(['--without-mingle', '--without-heartbeat', '-l', 'warning']),
      { cwd: peers, env, stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  const exited = workers.map((w) => new Promise<void>((r) => w.on('close', () => r())));
  for (const w of workers) {
    w.stdout.resume();
    w.stderr.resume();
  }
  const workersCpuMs = (): number | null => {
    let total = 0;
    for (const w of workers) {
      const ms = procCpuMs(w.pid);
      if (ms === null) return null;
      total += ms;
    }
    return total;
  };
  const app = new Celery({ broker: url, settings: { task_default_queue: queue } });
  const reps = Math.max(1, options.reps ?? 3);
  const window = Math.max(1, options.window ?? 64);
  try {
    // The worker is ready when it answers a task; then both clients warm up.
    await (await app.sendTask('add', [0, 0])).get({ timeout: 60_000 });
    const warm = Math.min(n, 200);
    await nodeBurst(app, warm);
    await pythonSendMany(python, peers, env, warm, queue);
    const runs = { node: [] as Run[], nodeBurst: [] as Run[], python: [] as Run[] };
    const measured = async <T>(fn: () => Promise<T>): Promise<{ value: T; cpu: Cpu | null }> => {
      const c0 = workersCpuMs();
      const t0 = performance.now();
      const value = await fn();
      const c1 = workersCpuMs();
      if (c0 === null || c1 === null) return { value, cpu: null };
      const pct = Math.round(((c1 - c0) / (performance.now() - t0)) * 100);
      return { value, cpu: { pct, msPerTask: Math.round(((c1 - c0) / n) * 1000) / 1000 } };
    };
    const clients: Array<() => Promise<void>> = [
      async () => {
        const r = await measured(() => nodeWindowed(app, n, window));
        runs.node.push({ perS: r.value, sendPerS: null, cpu: r.cpu });
      },
      async () => {
        const r = await measured(() => nodeBurst(app, n));
        runs.nodeBurst.push({ perS: r.value.perS, sendPerS: r.value.sendPerS, cpu: r.cpu });
      },
      async () => {
        const r = await measured(() => pythonSendMany(python, peers, env, n, queue));
        if (r.value?.roundtrip_per_s !== undefined) {
          runs.python.push({
            perS: r.value.roundtrip_per_s,
            sendPerS: r.value.send_per_s ?? null,
            cpu: r.cpu,
          });
        }
      },
    ];
    for (let rep = 0; rep < reps; rep++) {
      // Alternate the order so neither client always meets a warmer (or more tired) worker.
      for (const run of rep % 2 === 0 ? clients : [...clients].reverse()) await run();
      log(`rpc round trips rep ${rep + 1}/${reps}: ${JSON.stringify(runs)}`);
    }
    const perS = (xs: Run[]): number | null => median(xs.map((x) => x.perS));
    return {
      n,
      reps,
      workers: workers.length,
      nodePerS: perS(runs.node) ?? 0,
      nodeBurstPerS: perS(runs.nodeBurst) ?? 0,
      nodeSendPerS: median(runs.nodeBurst.map((x) => x.sendPerS ?? 0)) ?? 0,
      pythonPerS: perS(runs.python),
      pythonSendPerS: median(runs.python.map((x) => x.sendPerS ?? 0)),
      workerCpuPct: {
        node: cpuMedian(runs.node, 'pct'),
        nodeBurst: cpuMedian(runs.nodeBurst, 'pct'),
        python: cpuMedian(runs.python, 'pct'),
      },
      workerCpuMsPerTask: {
        node: cpuMedian(runs.node, 'msPerTask'),
        nodeBurst: cpuMedian(runs.nodeBurst, 'msPerTask'),
        python: cpuMedian(runs.python, 'msPerTask'),
      },
    };
  } finally {
    await app.close();
    for (const w of workers) w.kill('SIGTERM');
    const kill = setTimeout(() => {
      for (const w of workers) w.kill('SIGKILL');
    }, 10_000);
    await Promise.all(exited);
    clearTimeout(kill);
    await deleteTaskQueue(url, queue);
  }
}

/**
 * Deletes a bench task queue and its same-named exchange (Celery's default routing).
 *
 * @example
 * ```ts
 * await deleteTaskQueue('amqp://guest:guest@127.0.0.1:5672//', 'rpc-bench-1234');
 * ```
 */
export async function deleteTaskQueue(url: string, queue: string): Promise<void> {
  const conn = new Connection(url);
  try {
    const ch = await conn.channel();
    await ch.deleteQueue({ queue }).catch(() => undefined);
    await ch.deleteExchange({ exchange: queue }).catch(() => undefined);
  } finally {
    await conn.close();
  }
}

/** Celery worker CPU over one run: % of one core, and ms per task. */
interface Cpu {
  pct: number;
  msPerTask: number;
}

interface Run {
  perS: number;
  sendPerS: number | null;
  cpu: Cpu | null;
}

function cpuMedian(runs: readonly Run[], key: keyof Cpu): number | null {
  return median(runs.flatMap((x) => (x.cpu === null ? [] : [x.cpu[key]])));
}

/** user+system CPU ms of a process (Linux /proc), null when unreadable. */
function procCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const ticks = Number(fields[11]) + Number(fields[12]);
    // USER_HZ is 100 on every Linux this runs on.
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

/** All n sent at once, then joinNative; checks the values. */
async function nodeBurst(app: Celery, n: number): Promise<{ perS: number; sendPerS: number }> {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: n }, (_, i) => app.sendTask('add', [i, i])));
  const tSent = performance.now();
  const values = await new ResultSet(results, app.backend).joinNative({ timeout: 300_000 });
  const tDone = performance.now();
  if (values.some((v, i) => v !== 2 * i)) throw new Error('wrong results from the Celery worker');
  return { perS: rate(n, tDone - t0), sendPerS: rate(n, tSent - t0) };
}

/** At most `window` tasks in flight: each slot sends a task and waits for its result. */
async function nodeWindowed(app: Celery, n: number, window: number): Promise<number> {
  const t0 = performance.now();
  await pool(n, window, async (i) => {
    const v = await (await app.sendTask('add', [i, i])).get({ timeout: 300_000 });
    if (v !== 2 * i) throw new Error('wrong result from the Celery worker');
  });
  return rate(n, performance.now() - t0);
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
  return childJson<SendManyOut>(
    python,
    ['celery_client.py', 'send-many', String(n), '--queue', queue, '--timeout', '300'],
    { cwd: peers, env },
  );
}

/**
 * Runs a child process (stderr inherited) and parses the last line of its stdout as JSON;
 * null when it could not start or printed no JSON.
 *
 * @example
 * ```ts
 * const out = await childJson<{ n: number }>('/usr/bin/python3', ['script.py'], { env: process.env });
 * ```
 */
export function childJson<T>(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<T | null> {
  return new Promise((done) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', () => done(null));
    child.on('close', () => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        done(JSON.parse(line) as T);
      } catch {
        done(null);
      }
    });
  });
}
