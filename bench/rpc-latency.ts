/**
 * The rpc:// tail-latency benchmark (`--rpc-latency`): sequential task round trips (send a
 * task, wait for its result, then the next) from this library's Celery app and from Python's
 * own Celery 5 client, against one real Celery 5 prefork worker (`-c 2
 * --prefetch-multiplier 64`) on a fresh queue. The clients alternate over `rounds` rounds
 * (which one goes first alternates too); each round is `n` round trips after a warm-up, and
 * p50/p99/max are reported per round and as medians over the rounds, with how many rounds
 * Node's p99 was at or below Python's.
 *
 * The Node side also records, per round, where its time went: the share spent before
 * `sendTask` resolved, V8's garbage collections (PerformanceObserver 'gc') and the event
 * loop's delay (with `loopDelay`: its 1 ms timer wakes the process a thousand times a second,
 * which Python's client is spared, so it is off in the measured comparison), so that a slow
 * round trip can be told apart from a slow worker.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { Celery } from '../src/celery/app.js';
import { childJson, deleteTaskQueue } from './rpc-bench.js';
import { median, percentile, round } from './stats.js';

/**
 * Options of {@link runRpcLatency}.
 *
 * @example
 * ```ts
 * await runRpcLatency({ n: 200, rounds: 6 });
 * ```
 */
export interface RpcLatencyOptions {
  /** Broker URL. @default 'amqp://guest:guest@127.0.0.1:5672//' */
  url?: string | undefined;
  /** Measured round trips per client per round. @default 200 */
  n?: number | undefined;
  /** Unmeasured round trips before each client's measured ones. @default 20 */
  warmup?: number | undefined;
  /** Alternating rounds. @default 6 */
  rounds?: number | undefined;
  /**
   * Unmeasured round trips the Node app makes once, before the first round: V8 compiles the
   * send and receive paths with its optimizing tier only after many calls (Node's CPU per
   * round trip kept falling over the first ~2,000), and a service that sends tasks runs long
   * past that. Python's client has no JIT to warm. @default 2000
   */
  nodeWarmup?: number | undefined;
  /** Python interpreter with Celery 5. @default '/usr/bin/python3' */
  python?: string | undefined;
  /** Prefork processes of the worker (`-c`). @default 2 */
  workerConcurrency?: number | undefined;
  /** `--prefetch-multiplier` of the worker. @default 64 */
  workerPrefetch?: number | undefined;
  /**
   * task_publish_confirm of the Node app: off shows what the confirm costs (Python's client
   * sends without one). @default true
   */
  confirm?: boolean | undefined;
  /** Also record the event loop's delay in Node's rounds (a 1 ms timer: see the module doc). @default false */
  loopDelay?: boolean | undefined;
  /** Progress lines. @default none */
  log?: ((line: string) => void) | undefined;
}

/** p50/p99/max of one client's round of round trips, ms. */
export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

/** A client's round: its latencies and the client process's CPU ms (user + system) per round trip. */
export type ClientRound = LatencySummary & { cpuMsPerRoundTrip: number | null };

/** Where a Node round's time went. */
export interface NodeRoundDiagnostics {
  /** p50/p99 of the time until `sendTask` resolved (the rest is the wait for the result), ms. */
  sendP50: number;
  sendP99: number;
  /**
   * Round trips whose result was already in when `sendTask` resolved (the wait after it took
   * under 0.2 ms): the reply came before the publisher confirm.
   */
  replyFirst: number;
  /** Garbage collections during the round, and their total pause, ms. */
  gcCount: number;
  gcMs: number;
  /** Round trips slower than the round's p95 that overlapped a collection. */
  slowWithGc: number;
  /** Round trips slower than the round's p95. */
  slow: number;
  /** Event loop delay during the round (perf_hooks, 1 ms resolution): p99 and max, ms; null unless `loopDelay`. */
  loopDelayP99: number | null;
  loopDelayMax: number | null;
}

/** One round: both clients' summaries. */
export interface LatencyRound {
  node: ClientRound & { diagnostics: NodeRoundDiagnostics };
  python: ClientRound | null;
  /** Which client ran first in this round. */
  first: 'node' | 'python';
}

/**
 * What {@link runRpcLatency} measured (times in ms).
 *
 * @example
 * ```ts
 * const r = await runRpcLatency(); r.node.p99 <= (r.python?.p99 ?? Infinity);
 * ```
 */
export interface RpcLatencyReport {
  n: number;
  warmup: number;
  /** Round trips the Node app made before the first round. */
  nodeWarmup: number;
  rounds: number;
  worker: { pool: 'prefork'; concurrency: number; prefetchMultiplier: number };
  /** task_publish_confirm of the Node app. */
  nodeConfirm: boolean;
  /** Whether Node's rounds recorded the event loop's delay (see the module doc). */
  loopDelay: boolean;
  /** Medians over the rounds of each round's p50, p99 and max. */
  node: LatencySummary;
  python: LatencySummary | null;
  /** Rounds where Node's p99 was <= Python's, of the rounds where Python ran. */
  nodeP99Wins: number;
  /** Rounds where Node's p50 was <= Python's. */
  nodeP50Wins: number;
  /**
   * p50/p99/max over every measured round trip of every round (n x rounds per client):
   * the p99 of one round of 200 is its 3rd-slowest round trip, which one scheduling hiccup
   * on a shared machine moves; pooled over 6 rounds it is the 12th-slowest of 1,200.
   */
  pooled: { node: LatencySummary; python: LatencySummary | null };
  perRound: LatencyRound[];
}

const ms2 = (x: number): number => round(x, 2);

function summarize(samples: readonly number[]): LatencySummary {
  return {
    p50: ms2(percentile(samples, 50)),
    p99: ms2(percentile(samples, 99)),
    max: ms2(Math.max(...samples)),
  };
}

/**
 * Runs the tail-latency benchmark. Wire it into `bench` as `runRpcLatency(options)`.
 *
 * @example
 * ```ts
 * const report = await runRpcLatency({ rounds: 6, log: console.error });
 * ```
 */
export async function runRpcLatency(options: RpcLatencyOptions = {}): Promise<RpcLatencyReport> {
  const url = options.url ?? 'amqp://guest:guest@127.0.0.1:5672//';
  const log = options.log ?? ((): void => undefined);
  const python = options.python ?? '/usr/bin/python3';
  const n = Math.max(1, options.n ?? 200);
  const warmup = Math.max(0, options.warmup ?? 20);
  const rounds = Math.max(1, options.rounds ?? 6);
  const nodeWarmup = Math.max(0, options.nodeWarmup ?? 2000);
  const concurrency = Math.max(1, options.workerConcurrency ?? 2);
  const prefetch = Math.max(1, options.workerPrefetch ?? 64);
  const peers = resolve('test/interop/peers');
  const script = resolve('bench/python/celery5_rpc_latency.py');
  const queue = `rpc-latency-${randomUUID().slice(0, 8)}`;
  const env = {
    ...process.env,
    CELERY_QUEUE: queue,
    CELERY_BROKER_URL: url,
    CELERY_PREFETCH: String(prefetch),
    PYTHONUNBUFFERED: '1',
  };
  const worker = spawn(
    python,
    ['-m', 'celery', '-A', 'celery_app', 'worker', '-Q', queue, '-P', 'prefork', '-c', String(concurrency)]
      .concat(['--prefetch-multiplier', String(prefetch), '-n', `${queue}@%h`, '--without-gossip'])
      .concat(['--without-mingle', '--without-heartbeat', '-l', 'warning']),
    { cwd: peers, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((r) => worker.on('close', () => r()));
  worker.stdout.resume();
  worker.stderr.resume();
  const app = new Celery({
    broker: url,
    settings: { task_default_queue: queue, task_publish_confirm: options.confirm ?? true },
  });
  try {
    // The worker is ready when it answers a task; then Node's JIT warms up once.
    await (await app.sendTask('add', [0, 0])).get({ timeout: 60_000 });
    if (nodeWarmup > 0) await nodeRound(app, nodeWarmup, 0, false);
    const perRound: LatencyRound[] = [];
    const allNode: number[] = [];
    const allPython: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const first = r % 2 === 0 ? 'node' : 'python';
      let node: LatencyRound['node'] | undefined;
      let py: ClientRound | null = null;
      const runNode = async (): Promise<void> => {
        node = await nodeRound(app, n, warmup, options.loopDelay ?? false, allNode);
      };
      const runPython = async (): Promise<void> => {
        const out = await pythonRound(python, script, env, n, warmup, queue);
        if (out !== null) allPython.push(...out.latencies);
        py = out === null ? null : { ...summarize(out.latencies), cpuMsPerRoundTrip: out.cpuMsPerRoundTrip };
      };
      for (const run of first === 'node' ? [runNode, runPython] : [runPython, runNode]) await run();
      if (node === undefined) throw new Error('the Node round did not run');
      perRound.push({ node, python: py, first });
      log(`rpc latency round ${r + 1}/${rounds}: ${JSON.stringify(perRound.at(-1))}`);
    }
    const med = (xs: number[]): number => ms2(median(xs) ?? Number.NaN);
    const pick = (f: (x: LatencyRound) => LatencySummary | null): LatencySummary | null => {
      const xs = perRound.flatMap((x) => {
        const s = f(x);
        return s === null ? [] : [s];
      });
      if (xs.length === 0) return null;
      return {
        p50: med(xs.map((x) => x.p50)),
        p99: med(xs.map((x) => x.p99)),
        max: med(xs.map((x) => x.max)),
      };
    };
    const both = perRound.flatMap((x) => (x.python === null ? [] : [{ node: x.node, python: x.python }]));
    return {
      n,
      warmup,
      nodeWarmup,
      rounds,
      worker: { pool: 'prefork', concurrency, prefetchMultiplier: prefetch },
      nodeConfirm: options.confirm ?? true,
      loopDelay: options.loopDelay ?? false,
      node: pick((x) => x.node) ?? { p50: 0, p99: 0, max: 0 },
      python: pick((x) => x.python),
      nodeP99Wins: both.filter((x) => x.node.p99 <= x.python.p99).length,
      nodeP50Wins: both.filter((x) => x.node.p50 <= x.python.p50).length,
      pooled: { node: summarize(allNode), python: allPython.length === 0 ? null : summarize(allPython) },
      perRound,
    };
  } finally {
    await app.close();
    worker.kill('SIGTERM');
    const kill = setTimeout(() => worker.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(kill);
    await deleteTaskQueue(url, queue);
  }
}

/** `warmup` then `n` sequential round trips; the measured ones summarized with diagnostics. */
async function nodeRound(
  app: Celery,
  n: number,
  warmup: number,
  loopDelay: boolean,
  pooled: number[] = [],
): Promise<ClientRound & { diagnostics: NodeRoundDiagnostics }> {
  const one = async (i: number): Promise<{ total: number; send: number; t0: number }> => {
    const t0 = performance.now();
    const r = await app.sendTask('add', [i, i]);
    const tSent = performance.now();
    const v = await r.get({ timeout: 30_000 });
    const t1 = performance.now();
    if (v !== 2 * i) throw new Error('wrong result from the Celery worker');
    return { total: t1 - t0, send: tSent - t0, t0 };
  };
  for (let i = 0; i < warmup; i++) await one(i);
  const gcs: Array<{ start: number; end: number }> = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const loop = loopDelay ? monitorEventLoopDelay({ resolution: 1 }) : undefined;
  loop?.enable();
  const samples: Array<{ total: number; send: number; t0: number }> = [];
  const cpu0 = process.cpuUsage();
  let cpu: NodeJS.CpuUsage;
  try {
    for (let i = 0; i < n; i++) samples.push(await one(i));
  } finally {
    cpu = process.cpuUsage(cpu0);
    loop?.disable();
    // Entries are delivered asynchronously: let the last ones arrive.
    await new Promise((r) => setImmediate(r));
    observer.disconnect();
  }
  const totals = samples.map((s) => s.total);
  pooled.push(...totals);
  const p95 = percentile(totals, 95);
  const slow = samples.filter((s) => s.total > p95);
  const overlaps = (s: { t0: number; total: number }): boolean =>
    gcs.some((g) => g.end >= s.t0 && g.start <= s.t0 + s.total);
  const sends = samples.map((s) => s.send);
  return {
    ...summarize(totals),
    cpuMsPerRoundTrip: round((cpu.user + cpu.system) / 1000 / n, 3),
    diagnostics: {
      sendP50: ms2(percentile(sends, 50)),
      sendP99: ms2(percentile(sends, 99)),
      replyFirst: samples.filter((s) => s.total - s.send < 0.2).length,
      gcCount: gcs.length,
      gcMs: ms2(gcs.reduce((a, g) => a + g.end - g.start, 0)),
      slowWithGc: slow.filter(overlaps).length,
      slow: slow.length,
      loopDelayP99: loop === undefined ? null : ms2(loop.percentile(99) / 1e6),
      loopDelayMax: loop === undefined ? null : ms2(loop.max / 1e6),
    },
  };
}

/** One Python client process: its measured latencies and CPU, or null when it failed. */
async function pythonRound(
  python: string,
  script: string,
  env: NodeJS.ProcessEnv,
  n: number,
  warmup: number,
  queue: string,
): Promise<{ latencies: number[]; cpuMsPerRoundTrip: number | null } | null> {
  const out = await childJson<{ latencies_ms?: number[]; cpu_ms_per_round_trip?: number }>(
    python,
    [script, String(n), '--queue', queue, '--warmup', String(warmup)],
    { env },
  );
  if (out === null || !Array.isArray(out.latencies_ms)) return null;
  const cpu = out.cpu_ms_per_round_trip;
  return { latencies: out.latencies_ms, cpuMsPerRoundTrip: typeof cpu === 'number' ? round(cpu, 3) : null };
}
