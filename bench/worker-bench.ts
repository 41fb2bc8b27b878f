/**
 * The worker bench (`npm run bench -- --worker`): task throughput end to end and worker CPU
 * per task of several Celery workers, each in its own process on its own queue, driven in
 * alternating rounds by a Python Celery 5.2 client and by a Node client (this library's
 * Celery app), with N `bench.add` tasks sent and then every result collected.
 *
 * Workers under test:
 * - `node-events`: this library's Worker through its CLI (`celery-amqp worker -E`, heartbeats
 *   and remote control on, log level INFO);
 * - `node-quiet`: the same with task events, heartbeats and remote control off;
 * - `prefork`: Celery 5.2's prefork worker, `celery worker -c 2 -l INFO` (rpc:// results,
 *   its defaults otherwise: no task events, mingle, gossip and heartbeats on);
 * - `celery-node`: celery-node's worker, when the package is installed (`npm i --no-save
 *   celery-node`) and Redis answers (its results go to Redis: the Python client only sends,
 *   and completion is read from Redis);
 * - `amqplib`: the floor, a bare amqplib program doing only the Worker's wire work (the
 *   result's confirmed publish to `reply_to`, the ack after its confirm; bench/amqplib-worker-child.ts).
 *
 * Per run: the send phase (the client's send loop), tasks/s end to end (first send to last
 * result), and the worker's CPU per 1,000 tasks (utime+stime from /proc of the worker
 * process and its children, from just before the first send to 0.5 s after the last
 * result, so deferred acks and buffered events are counted). Every round runs each pair in
 * a rotated order so that no worker always goes first.
 *
 * @module
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Celery } from '../src/celery/app.js';
import { ResultSet } from '../src/celery/result.js';
import { Connection } from '../src/kombu/connection.js';
import { median } from './stats.js';

/** A worker under test. */
export type WorkerTarget = 'node-events' | 'node-quiet' | 'prefork' | 'celery-node' | 'amqplib';
/** A client driving it. */
export type WorkerDriver = 'python' | 'node';

/** Every worker, in the order of the first round. */
export const WORKER_TARGETS: readonly WorkerTarget[] = [
  'node-events',
  'node-quiet',
  'prefork',
  'celery-node',
  'amqplib',
];

/**
 * Options of {@link runWorkerBench}.
 *
 * @example
 * ```ts
 * await runWorkerBench({ n: 2000, rounds: 12 });
 * ```
 */
export interface WorkerBenchOptions {
  /** Broker URL. @default 'amqp://guest:guest@127.0.0.1:5672//' */
  url?: string | undefined;
  /** Tasks per run. @default 2000 */
  n?: number | undefined;
  /** Rounds (each runs every target with every driver). @default 12 */
  rounds?: number | undefined;
  /** Workers under test. @default WORKER_TARGETS */
  targets?: readonly WorkerTarget[] | undefined;
  /** Clients. @default ['python', 'node'] */
  drivers?: readonly WorkerDriver[] | undefined;
  /** The Node worker's concurrency (`-c`). @default 8 */
  nodeConcurrency?: number | undefined;
  /** Redis of celery-node's results. @default 'redis://127.0.0.1:6379/0' */
  redisUrl?: string | undefined;
  /** Python interpreter with Celery 5.2. @default '/usr/bin/python3' */
  python?: string | undefined;
  /** Progress lines. @default none */
  log?: ((line: string) => void) | undefined;
  /** Called at each Python send phase's start and end (the stall probe samples the broker). */
  onSendPhase?: ((target: WorkerTarget, phase: 'start' | 'end') => void) | undefined;
}

/** One run: one driver against one worker. Times in seconds. */
export interface WorkerRun {
  round: number;
  target: WorkerTarget;
  driver: WorkerDriver;
  /** The client's send loop. */
  send_s: number;
  /** First send to last result. */
  total_s: number;
  tasks_per_s: number;
  /** Worker CPU seconds per 1,000 tasks (null off Linux). */
  cpu_s_per_1000: number | null;
  /** RabbitMQ's CPU seconds per 1,000 tasks over the same window (its beam.smp; null when not found). */
  broker_cpu_s_per_1000: number | null;
  /**
   * The Python client's send loop, split (from its /proc schedstat): running, waiting for a
   * CPU, and blocked (sleeping: a socket write the broker does not take). Python runs only.
   */
  client_send?: { cpu_s: number; runq_s: number; sleep_s: number };
}

/** Medians of one (target, driver) pair. */
export interface WorkerPairSummary {
  target: WorkerTarget;
  driver: WorkerDriver;
  runs: number;
  send_s: number | null;
  tasks_per_s: number | null;
  cpu_s_per_1000: number | null;
  broker_cpu_s_per_1000: number | null;
  /** Python client: medians of its send loop's time waiting for a CPU, and blocked. */
  client_send_runq_s: number | null;
  client_send_sleep_s: number | null;
  /** Send phases over twice the pair's median (the stall the issue saw). */
  slow_sends: number;
}

/**
 * What {@link runWorkerBench} measured.
 *
 * @example
 * ```ts
 * const { summary } = await runWorkerBench(); summary[0]?.tasks_per_s;
 * ```
 */
export interface WorkerBenchReport {
  n: number;
  rounds: number;
  node_concurrency: number;
  /** Targets that could not run, with why. */
  skipped: Partial<Record<WorkerTarget, string>>;
  summary: WorkerPairSummary[];
  per_round: WorkerRun[];
}

/** A worker process on its own queue. */
interface Running {
  target: WorkerTarget;
  queue: string;
  child: ChildProcess;
  exited: Promise<void>;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** bench/python/ in the checkout (the compiled bench runs from .bench/build/bench/). */
const PY_DIR = resolve(HERE, '../../../bench/python');
/** CPU left to settle after the last result before the worker's CPU is read, ms. */
const CPU_TAIL_MS = 500;

/**
 * Runs the worker bench.
 *
 * @example
 * ```ts
 * const report = await runWorkerBench({ rounds: 12, log: console.error });
 * ```
 */
export async function runWorkerBench(options: WorkerBenchOptions = {}): Promise<WorkerBenchReport> {
  const url = options.url ?? 'amqp://guest:guest@127.0.0.1:5672//';
  const n = options.n ?? 2000;
  const rounds = Math.max(1, options.rounds ?? 12);
  const log = options.log ?? ((): void => undefined);
  const python = options.python ?? '/usr/bin/python3';
  const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379/0';
  const concurrency = options.nodeConcurrency ?? 8;
  const drivers = options.drivers ?? ['python', 'node'];
  const skipped: WorkerBenchReport['skipped'] = {};
  const targets: WorkerTarget[] = [];
  for (const t of options.targets ?? WORKER_TARGETS) {
    const why = await unavailable(t, redisUrl);
    if (why === null) targets.push(t);
    else skipped[t] = why;
  }
  const tag = randomUUID().slice(0, 8);
  const app = new Celery({ broker: url, backend: 'rpc://' });
  const env = { ...process.env, CELERY_BROKER_URL: url, PYTHONUNBUFFERED: '1' };
  const workers: Running[] = [];
  const runs: WorkerRun[] = [];
  try {
    for (const target of targets) {
      const queue = `worker-bench-${tag}-${target}`;
      workers.push(start(target, queue, { url, env, python, redisUrl, concurrency }));
      // Ready when it answers a task; the Node client warms up on the way.
      await collect(app, target, redisUrl, [await send(app, queue, `${tag}-warm-${target}`, 0)], 1, 120_000);
      log(`worker bench: ${target} ready on ${queue}`);
    }
    const pairs = targets.flatMap((target) => drivers.map((driver) => ({ target, driver })));
    for (let round = 1; round <= rounds; round++) {
      const shift = (round - 1) % Math.max(1, pairs.length);
      for (const { target, driver } of [...pairs.slice(shift), ...pairs.slice(0, shift)]) {
        const w = workers.find((x) => x.target === target);
        if (w === undefined) continue;
        const prefix = `${tag}-r${round}-${driver}-${target}`;
        const run =
          driver === 'python'
            ? await pythonRun(w, { python, env, n, prefix, app, redisUrl, round, options })
            : await nodeRun(w, { n, prefix, app, redisUrl, round });
        runs.push(run);
        log(
          `round ${round} ${target} <- ${driver}: send ${run.send_s.toFixed(2)} s, ` +
            `${Math.round(run.tasks_per_s)}/s, CPU ${run.cpu_s_per_1000 ?? 'n/a'} s/1000, broker ${run.broker_cpu_s_per_1000 ?? 'n/a'} s/1000` +
            (run.client_send === undefined ? '' : `, client send ${JSON.stringify(run.client_send)}`),
        );
      }
    }
  } finally {
    await app.close();
    await stopAll(workers, url);
  }
  return {
    n,
    rounds,
    node_concurrency: concurrency,
    skipped,
    summary: summarize(runs, targets, drivers),
    per_round: runs,
  };
}

/** Why a target cannot run here, or null. */
async function unavailable(target: WorkerTarget, redisUrl: string): Promise<string | null> {
  if (target !== 'celery-node') return null;
  if (!existsSync(resolve(HERE, '../../../node_modules/celery-node/package.json'))) {
    return 'celery-node is not installed (npm i --no-save celery-node)';
  }
  try {
    await redisExists(redisUrl, ['celery-node-bench-probe']);
    return null;
  } catch (err) {
    return `Redis at ${redisUrl} does not answer: ${String(err)}`;
  }
}

interface StartContext {
  url: string;
  env: NodeJS.ProcessEnv;
  python: string;
  redisUrl: string;
  concurrency: number;
}

function start(target: WorkerTarget, queue: string, c: StartContext): Running {
  let child: ChildProcess;
  const node = process.execPath;
  if (target === 'prefork') {
    child = spawn(
      c.python,
      [
        '-m',
        'celery',
        '-A',
        'worker_bench_app',
        'worker',
        '-Q',
        queue,
        '-c',
        '2',
        '-l',
        'INFO',
        '-n',
        `${queue}@%h`,
      ],
      { cwd: PY_DIR, env: c.env, stdio: 'ignore' },
    );
  } else if (target === 'celery-node') {
    child = spawn(node, [resolve(HERE, 'celery-node-child.js'), c.url, c.redisUrl, queue], {
      env: c.env,
      stdio: 'ignore',
    });
  } else if (target === 'amqplib') {
    // The Worker's prefetch at this concurrency (multiplier 4).
    const prefetch = String(c.concurrency * 4);
    child = spawn(node, [resolve(HERE, 'amqplib-worker-child.js'), c.url, queue, prefetch], {
      env: c.env,
      stdio: 'ignore',
    });
  } else {
    const quiet = target === 'node-quiet';
    const args = ['worker', '-A', resolve(HERE, 'worker-tasks.js'), '-Q', queue, '-c', String(c.concurrency)];
    args.push('-l', 'INFO', '-b', c.url, '-n', `${queue}@%h`);
    if (quiet) args.push('--without-heartbeat');
    else args.push('-E');
    const env = quiet ? { ...c.env, CELERY_WORKER_ENABLE_REMOTE_CONTROL: 'false' } : c.env;
    child = spawn(
      node,
      [
        ...(process.env['WORKER_BENCH_NODE_ARGS']?.split(' ') ?? []),
        resolve(HERE, 'worker-child.js'),
        ...args,
      ],
      {
        env,
        stdio: 'ignore',
      },
    );
  }
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  return { target, queue, child, exited };
}

async function stopAll(workers: readonly Running[], url: string): Promise<void> {
  for (const w of workers) w.child.kill('SIGTERM');
  const kill = setTimeout(() => {
    for (const w of workers) w.child.kill('SIGKILL');
  }, 15_000);
  await Promise.all(workers.map((w) => w.exited));
  clearTimeout(kill);
  const conn = new Connection(url);
  try {
    const ch = await conn.channel();
    for (const w of workers) {
      await ch.deleteQueue({ queue: w.queue }).catch(() => undefined);
      await ch.deleteExchange({ exchange: w.queue }).catch(() => undefined);
    }
  } finally {
    await conn.close();
  }
}

function send(app: Celery, queue: string, prefix: string, i: number): ReturnType<Celery['sendTask']> {
  return app.sendTask('bench.add', [i, i], {}, { queue, taskId: `${prefix}-${i}` });
}

type Sent = Awaited<ReturnType<Celery['sendTask']>>;

/** Waits for the results: over rpc:// (checked), or in Redis for celery-node. */
async function collect(
  app: Celery,
  target: WorkerTarget,
  redisUrl: string,
  sent: readonly Sent[],
  n: number,
  timeoutMs: number,
): Promise<void> {
  if (target === 'celery-node') {
    await waitRedis(
      redisUrl,
      sent.map((r) => `celery-task-meta-${r.id}`),
      timeoutMs,
    );
    return;
  }
  const values = await new ResultSet([...sent], app.backend).joinNative({ timeout: timeoutMs });
  if (values.length !== n || values.some((v, i) => v !== 2 * Number(sent[i]?.id.split('-').at(-1)))) {
    throw new Error(`${target}: wrong results`);
  }
}

interface NodeRunContext {
  n: number;
  prefix: string;
  app: Celery;
  redisUrl: string;
  round: number;
}

/** The Node client: all N sent at once (confirmed), then every result. */
async function nodeRun(w: Running, c: NodeRunContext): Promise<WorkerRun> {
  const cpu0 = cpuNow(w);
  const t0 = performance.now();
  const sent = await Promise.all(Array.from({ length: c.n }, (_, i) => send(c.app, w.queue, c.prefix, i)));
  const tSent = performance.now();
  await collect(c.app, w.target, c.redisUrl, sent, c.n, 300_000);
  const tDone = performance.now();
  await sleep(CPU_TAIL_MS);
  return finish(w, c, 'node', (tSent - t0) / 1000, (tDone - t0) / 1000, cpu0);
}

interface PythonRunContext extends NodeRunContext {
  python: string;
  env: NodeJS.ProcessEnv;
  options: WorkerBenchOptions;
}

/** The Python client (bench/python/worker_bench_client.py): its send loop, then join_native. */
async function pythonRun(w: Running, c: PythonRunContext): Promise<WorkerRun> {
  const redis = w.target === 'celery-node';
  const child = spawn(
    c.python,
    ['worker_bench_client.py', '--queue', w.queue, '--n', String(c.n), '--prefix', c.prefix].concat([
      '--collect',
      redis ? 'none' : 'rpc',
    ]),
    { cwd: PY_DIR, env: c.env, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = lineReader(child);
  if ((await lines.next()) !== 'ready') throw new Error('python client: no ready line');
  const cpu0 = cpuNow(w);
  const t0 = performance.now();
  c.options.onSendPhase?.(w.target, 'start');
  child.stdin?.write('go\n');
  const out = JSON.parse(await lines.next()) as {
    send_s: number;
    total_s: number;
    ok: number;
    send_cpu_s: number;
    send_runq_s: number;
    send_sleep_s: number;
  };
  c.options.onSendPhase?.(w.target, 'end');
  let total = out.total_s;
  if (redis) {
    await waitRedis(
      c.redisUrl,
      Array.from({ length: c.n }, (_, i) => `celery-task-meta-${c.prefix}-${i}`),
      300_000,
    );
    total = (performance.now() - t0) / 1000;
  } else if (out.ok !== c.n) {
    throw new Error(`python client: ${out.ok} of ${c.n} results right`);
  }
  await sleep(CPU_TAIL_MS);
  child.stdin?.end();
  return {
    ...finish(w, c, 'python', out.send_s, total, cpu0),
    client_send: {
      cpu_s: round3(out.send_cpu_s),
      runq_s: round3(out.send_runq_s),
      sleep_s: round3(out.send_sleep_s),
    },
  };
}

function finish(
  w: Running,
  c: NodeRunContext,
  driver: WorkerDriver,
  sendS: number,
  totalS: number,
  cpu0: CpuNow,
): WorkerRun {
  const cpu1 = cpuNow(w);
  const per1000 = (a: number | null, b: number | null): number | null =>
    a === null || b === null ? null : round3((b - a) / c.n);
  return {
    round: c.round,
    target: w.target,
    driver,
    send_s: round3(sendS),
    total_s: round3(totalS),
    tasks_per_s: Math.round(c.n / totalS),
    cpu_s_per_1000: per1000(cpu0.worker, cpu1.worker),
    broker_cpu_s_per_1000: per1000(cpu0.broker, cpu1.broker),
  };
}

function summarize(
  runs: readonly WorkerRun[],
  targets: readonly WorkerTarget[],
  drivers: readonly WorkerDriver[],
): WorkerPairSummary[] {
  const out: WorkerPairSummary[] = [];
  for (const target of targets) {
    for (const driver of drivers) {
      const xs = runs.filter((r) => r.target === target && r.driver === driver);
      const send = median(xs.map((r) => r.send_s));
      out.push({
        target,
        driver,
        runs: xs.length,
        send_s: send,
        tasks_per_s: median(xs.map((r) => r.tasks_per_s)),
        cpu_s_per_1000: median(xs.flatMap((r) => (r.cpu_s_per_1000 === null ? [] : [r.cpu_s_per_1000]))),
        broker_cpu_s_per_1000: median(
          xs.flatMap((r) => (r.broker_cpu_s_per_1000 === null ? [] : [r.broker_cpu_s_per_1000])),
        ),
        client_send_runq_s: median(
          xs.flatMap((r) => (r.client_send === undefined ? [] : [r.client_send.runq_s])),
        ),
        client_send_sleep_s: median(
          xs.flatMap((r) => (r.client_send === undefined ? [] : [r.client_send.sleep_s])),
        ),
        slow_sends: send === null ? 0 : xs.filter((r) => r.send_s > 2 * send).length,
      });
    }
  }
  return out;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Lines of a child's stdout, one per call. */
function lineReader(child: ChildProcess): { next(): Promise<string> } {
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buf = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w === undefined) lines.push(line);
      else w(line);
    }
  });
  child.once('close', (code) => {
    for (const w of waiting.splice(0)) w(`exit ${code}`);
  });
  return {
    next: () => {
      const line = lines.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((r) => waiting.push(r));
    },
  };
}

/** CPU ms so far of the worker (with its children) and of the broker. */
interface CpuNow {
  worker: number | null;
  broker: number | null;
}

function cpuNow(w: Running): CpuNow {
  return { worker: treeCpuMs(w.child.pid), broker: treeCpuMs(brokerPid()) };
}

let brokerPidCache: number | null | undefined;

/** The pid of the process listening on 5672 (RabbitMQ's beam.smp), from `ss`; undefined when unknown. */
function brokerPid(): number | undefined {
  if (brokerPidCache === undefined) {
    try {
      const out = execFileSync('ss', ['-Hltnp', 'sport = :5672'], { encoding: 'utf8' });
      const m = /pid=(\d+)/.exec(out);
      brokerPidCache = m === null ? null : Number(m[1]);
    } catch {
      brokerPidCache = null;
    }
  }
  return brokerPidCache ?? undefined;
}

/**
 * user+system CPU ms of a process and all its descendants alive now (Linux /proc; the
 * prefork pool's processes are the worker's children), or null when unreadable.
 */
export function treeCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    // USER_HZ is 100 on every Linux this runs on.
    let ms = (Number(fields[11]) + Number(fields[12])) * 10;
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    for (const kid of kids === '' ? [] : kids.split(' ')) ms += treeCpuMs(Number(kid)) ?? 0;
    return Number.isFinite(ms) ? ms : null;
  } catch {
    return null;
  }
}

/** Waits until every key exists in Redis (polled every 20 ms). */
async function waitRedis(redisUrl: string, keys: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await redisExists(redisUrl, keys)) === keys.length) return;
    if (Date.now() > deadline) throw new Error(`celery-node: results missing after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Redis `EXISTS key...` over RESP (no client library needed for one command). */
function redisExists(redisUrl: string, keys: readonly string[]): Promise<number> {
  const u = new URL(redisUrl);
  const db = u.pathname.replace('/', '') || '0';
  const cmd = (parts: readonly string[]): string =>
    `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
  return new Promise((done, fail) => {
    const sock = connect(Number(u.port || 6379), u.hostname);
    let buf = '';
    sock.setEncoding('utf8');
    sock.once('error', fail);
    sock.on('connect', () => sock.write(cmd(['SELECT', db]) + cmd(['EXISTS', ...keys])));
    sock.on('data', (d: string) => {
      buf += d;
      const m = /^\+OK\r\n:(\d+)\r\n/.exec(buf);
      if (m !== null) {
        sock.end();
        done(Number(m[1]));
      } else if (buf.startsWith('-') || buf.includes('\r\n-')) {
        sock.destroy();
        fail(new Error(`redis: ${buf.trim()}`));
      }
    });
  });
}
