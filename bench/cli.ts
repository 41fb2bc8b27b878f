/**
 * The bench's command line (`npm run bench -- [flags]`, from a checkout; not part of the
 * published package): the backend against bare amqplib on the same broker, in the same run,
 * at the same concurrency, over `--rounds` alternating rounds whose medians are reported (see
 * bench/run-bench.ts for the plan and bench/raw-amqplib.ts for the fairness rules). With
 * `--json` the last stdout line is one JSON object; `--out FILE` also writes it to a file
 * (bench/results/latest.json feeds scripts/bench-chart.mjs). `--cluster` runs the cluster bench
 * instead (bench/cluster-bench.ts: the 3-node cluster against the single broker, and failover).
 *
 * @module
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { FlowProbe } from './flow-probe.js';
import type { ProbeSample } from './flow-probe.js';
import { redact } from '../src/errors.js';
import { describeClusterReport, runClusterBench } from './cluster-bench.js';
import type { ClusterBenchReport } from './cluster-bench.js';
import { runRpcBench } from './rpc-bench.js';
import { runRpcLatency } from './rpc-latency.js';
import type { RpcLatencyReport } from './rpc-latency.js';
import type { RpcBenchReport } from './rpc-bench.js';
import { isAmqp, runBench } from './run-bench.js';
import { WORKER_TARGETS, runWorkerBench } from './worker-bench.js';
import type { WorkerBenchReport, WorkerDriver, WorkerTarget } from './worker-bench.js';
import type { BenchReport, RoundRates } from './run-bench.js';
import { Output, formatCount, progress } from '../src/cli/io.js';
import type { CliIo } from '../src/cli/io.js';
import { configureProgram, runProgram } from '../src/cli/main.js';
import {
  addResultOptions,
  backendOptions,
  brokerUrl,
  openBackend,
  parseCount,
  secondsToMs,
} from '../src/cli/options.js';
import type { ResultOptions } from '../src/cli/options.js';

interface BenchOptions extends ResultOptions {
  n: number;
  concurrency: number;
  rounds: number;
  samples: number;
  getmanyN?: number;
  getmanyBroker?: string;
  timeout: number;
  /** Pause before each round phase, ms (from seconds). */
  settle?: number;
  out?: string;
  verbose?: boolean;
  rpc?: boolean;
  rpcN: number;
  python?: boolean;
  rpcRoundtrips: number;
  rpcReps: number;
  rpcWorkers: number;
  cluster?: boolean;
  losses: number;
  worker?: boolean;
  workerN: number;
  workerRounds: number;
  workerTargets: WorkerTarget[];
  workerDrivers: WorkerDriver[];
  workerConcurrency: number;
  workerProbe?: boolean;
  rpcLatency?: boolean;
  latencyN: number;
  latencyRounds: number;
  latencyWarmup: number;
  latencyNodeWarmup: number;
  latencyConfirm: boolean;
  latencyLoopDelay?: boolean;
}

/** Default x-expires of the bench's result queues: 10 minutes, not Celery's day. */
const BENCH_EXPIRES_MS = 600_000;

/** Default of `--settle` on an AMQP broker, ms (see BenchConfig.settleMs). */
const DEFAULT_SETTLE_MS = 3000;
/**
 * The rpc:// figures (`--rpc`, `--python`), absent when not asked for. Round trips are
 * medians over `rpc_roundtrip_reps` alternating runs against one Celery 5 worker (see
 * bench/rpc-bench.ts for why the windowed figure is the one compared).
 */
export interface RpcBenchFields {
  /** Results stored and collected by RPCBackend (one reply queue). */
  rpc_n?: number;
  rpc_store_per_s?: number;
  rpc_collect_per_s?: number;
  /** Round trips per client run. */
  rpc_roundtrip_n?: number;
  rpc_roundtrip_reps?: number;
  /** Celery worker processes on the task queue. */
  rpc_workers?: number;
  /** Node client, a bounded window of tasks in flight. */
  rpc_roundtrip_per_s?: number;
  /** Node client, all tasks sent at once then joinNative. */
  rpc_roundtrip_burst_per_s?: number;
  rpc_send_per_s?: number;
  /** Python Celery client (send-many: send all, then join_native), null if it failed. */
  python_rpc_roundtrip_per_s?: number | null;
  python_rpc_send_per_s?: number | null;
  /** Celery worker CPU (% of one core) during each client's runs. */
  rpc_worker_cpu_pct?: { node: number | null; nodeBurst: number | null; python: number | null };
  /** Celery worker CPU ms per task during each client's runs (same for both: worker-bound). */
  rpc_worker_cpu_ms_per_task?: { node: number | null; nodeBurst: number | null; python: number | null };
}

/** The figures and the context needed to read them later. */
export type BenchRecord = BenchReport & RpcBenchFields & { broker: string; node: string; date: string };

/** The `--cluster` figures and their context. */
export type ClusterBenchRecord = ClusterBenchReport & {
  /** The machine's 1/5/15-minute load averages before and after the run: other work shows. */
  load_average: { before: number[]; after: number[] };
  single_broker: string;
  cluster: string;
  node: string;
  date: string;
};

/** The report keys of an rpc bench report. */
function rpcFields(r: RpcBenchReport): RpcBenchFields {
  const out: RpcBenchFields = {
    rpc_n: r.storeCollect.n,
    rpc_store_per_s: r.storeCollect.storePerS,
    rpc_collect_per_s: r.storeCollect.collectPerS,
  };
  const rt = r.roundTrips;
  if (rt === null) return out;
  return {
    ...out,
    rpc_roundtrip_n: rt.n,
    rpc_roundtrip_reps: rt.reps,
    rpc_workers: rt.workers,
    rpc_roundtrip_per_s: rt.nodePerS,
    rpc_roundtrip_burst_per_s: rt.nodeBurstPerS,
    rpc_send_per_s: rt.nodeSendPerS,
    python_rpc_roundtrip_per_s: rt.pythonPerS,
    python_rpc_send_per_s: rt.pythonSendPerS,
    rpc_worker_cpu_pct: rt.workerCpuPct,
    rpc_worker_cpu_ms_per_task: rt.workerCpuMsPerTask,
  };
}

/** One round in a few characters: `r1 30.1k/40.2k | 35.0k/45.3k` (bare side n/a off AMQP). */
function describeRound(x: RoundRates, i: number): string {
  const k = (v: number | null): string => (v === null ? 'n/a' : `${(v / 1000).toFixed(1)}k`);
  return `r${i + 1} ${k(x.store_per_s)}/${k(x.collect_per_s)} | ${k(x.raw_store_per_s)}/${k(x.raw_collect_per_s)}`;
}

/**
 * The readable summary of a report.
 *
 * @example
 * ```ts
 * describeReport(record); // multi-line table
 * ```
 */
export function describeReport(r: BenchRecord): string {
  const ratio = (x: number | null): string => (x === null ? 'n/a' : `${x.toFixed(2)}x`);
  const perS = (x: number | null): string => (x === null ? 'n/a' : `${formatCount(x)}/s`);
  const lines = [
    `bench: N=${r.n}, concurrency ${r.concurrency}, median of ${r.rounds} round(s), broker ${r.broker}`,
    `                 backend      bare amqplib   ratio`,
    `  store     ${perS(r.store_per_s).padStart(12)}  ${perS(r.raw_store_per_s).padStart(14)}   ${ratio(r.store_ratio)}`,
    `  collect   ${perS(r.collect_per_s).padStart(12)}  ${perS(r.raw_collect_per_s).padStart(14)}   ${ratio(r.collect_ratio)}`,
    `  per round, store/collect backend | bare: ${r.per_round.map(describeRound).join('; ')}`,
    `  collect teardown (after the last result): backend ${r.collect_teardown_ms} ms, bare ${r.raw_collect_teardown_ms ?? 'n/a'} ms`,
    `  waitFor p50 ${r.waitfor_p50_ms.toFixed(2)} ms, p99 ${r.waitfor_p99_ms.toFixed(2)} ms (${r.samples} samples)`,
    `  peak RSS ${r.rss_mb} MB`,
  ];
  if (r.getmany_n !== undefined) {
    lines.push(
      `  getMany over ${formatCount(r.getmany_n)} ids: ${perS(r.getmany_per_s ?? null)}, peak RSS ${r.getmany_rss_mb} MB` +
        (r.getmany_store_rss_mb === undefined
          ? ''
          : ` (in its own process; the process that stored them peaked at ${r.getmany_store_rss_mb} MB)`),
    );
  }
  if (r.rpc_store_per_s !== undefined) {
    lines.push(
      `  rpc:// store/collect of ${formatCount(r.rpc_n ?? 0)}: store ${perS(r.rpc_store_per_s)}, collect ${perS(r.rpc_collect_per_s ?? null)}`,
    );
  }
  if (r.rpc_roundtrip_per_s !== undefined) {
    const cpu = r.rpc_worker_cpu_pct;
    const ms = r.rpc_worker_cpu_ms_per_task;
    lines.push(
      `  rpc:// round trips vs ${r.rpc_workers ?? 1} Celery worker process(es) (N=${r.rpc_roundtrip_n}, median of ${r.rpc_roundtrip_reps}):`,
      `    node ${perS(r.rpc_roundtrip_per_s)} (windowed), ${perS(r.rpc_roundtrip_burst_per_s ?? null)} (burst, sends ${perS(r.rpc_send_per_s ?? null)})`,
      `    python ${perS(r.python_rpc_roundtrip_per_s ?? null)} (sends ${perS(r.python_rpc_send_per_s ?? null)})`,
      `    worker CPU: node ${cpu?.node ?? 'n/a'}%, burst ${cpu?.nodeBurst ?? 'n/a'}%, python ${cpu?.python ?? 'n/a'}%`,
      `    worker CPU per task: node ${ms?.node ?? 'n/a'} ms, burst ${ms?.nodeBurst ?? 'n/a'} ms, python ${ms?.python ?? 'n/a'} ms`,
    );
  }
  lines.push(`  ${r.queues_deleted} queues deleted`);
  return lines.join('\n');
}

/** The `--rpc-latency` report and the context needed to read it later. */
export type RpcLatencyRecord = RpcLatencyReport & {
  mode: 'rpc-latency';
  broker: string;
  node_version: string;
  date: string;
};

/**
 * The readable summary of an `--rpc-latency` report.
 *
 * @example
 * ```ts
 * describeLatency(record); // multi-line table
 * ```
 */
export function describeLatency(r: RpcLatencyRecord): string {
  const s = (
    x: { p50: number; p99: number; max: number; cpuMsPerRoundTrip?: number | null } | null,
  ): string =>
    x === null
      ? 'n/a'
      : `p50 ${x.p50.toFixed(2)} / p99 ${x.p99.toFixed(2)} / max ${x.max.toFixed(2)} ms` +
        (x.cpuMsPerRoundTrip === undefined || x.cpuMsPerRoundTrip === null
          ? ''
          : `, CPU ${x.cpuMsPerRoundTrip} ms/rt`);
  const played = r.perRound.filter((x) => x.python !== null).length;
  return [
    `rpc:// sequential round trips, ${r.n} per client per round after ${r.warmup} warm-up, ${r.rounds} alternating rounds,`,
    `one Celery 5 ${r.worker.pool} worker (-c ${r.worker.concurrency}, prefetch multiplier ${r.worker.prefetchMultiplier}), broker ${r.broker}` +
      (r.nodeConfirm ? '' : ', Node without publisher confirms'),
    `  median   node   ${s(r.node)}`,
    `           python ${s(r.python)}`,
    `  pooled   node   ${s(r.pooled.node)}`,
    `           python ${s(r.pooled.python)}`,
    ...r.perRound.map(
      (x, i) => `  round ${i + 1} (${x.first} first): node ${s(x.node)} | python ${s(x.python)}`,
    ),
    `  node p99 <= python p99 in ${r.nodeP99Wins} of ${played} rounds; p50 in ${r.nodeP50Wins} of ${played}`,
  ].join('\n');
}

/**
 * Builds the bench's program.
 *
 * @example
 * ```ts
 * await benchCommand(io).parseAsync(['--n', '4000', '--json'], { from: 'user' });
 * ```
 */
export function benchCommand(io: CliIo): Command {
  const cmd = configureProgram(new Command('bench'), io)
    .description('measure store/collect throughput and waitFor latency against bare amqplib')
    .option('--n <count>', 'results per side', parseCount, 4000)
    .option('--concurrency <count>', 'stores in flight (backend) = channels (bare amqplib)', parseCount, 64)
    .option(
      '--rounds <count>',
      'store/collect rounds per side, alternating; medians and the median per-round ratio are reported',
      parseCount,
      3,
    )
    .option('--samples <count>', 'sequential waitFor samples', parseCount, 1000)
    .option('--getmany-n <count>', 'also measure peak RSS of getMany over this many ids', parseCount)
    .option('--getmany-broker <url>', 'broker of the getMany phase (default: --broker)')
    .addOption(
      new Option('--timeout <seconds>', 'deadline of each collect phase')
        .argParser(secondsToMs)
        .default(300_000, '300'),
    )
    .addOption(
      new Option(
        '--settle <seconds>',
        'pause before each store and collect phase of the rounds, the same on both sides, so that the broker has finished the last phase (default: 3 on amqp://, 0 on memory://)',
      ).argParser(secondsToMs),
    )
    .option('--out <file>', 'also write the JSON report to this file')
    .option('--verbose', 'log each phase on stderr (the default when stderr is a terminal)')
    .option('--rpc', 'also measure rpc:// (RPCBackend) store/collect on one reply queue')
    .option('--rpc-n <count>', 'results of the rpc:// store/collect phase', parseCount, 20_000)
    .option(
      '--python',
      'also measure rpc:// round trips, Node vs the Python Celery client, against one Celery 5 worker (/usr/bin/python3)',
    )
    .option('--rpc-roundtrips <count>', 'round trips per client run (--python)', parseCount, 2000)
    .option(
      '--rpc-reps <count>',
      'alternating runs per client; medians are reported (--python)',
      parseCount,
      3,
    )
    .option(
      '--rpc-workers <count>',
      'Celery worker processes (8 threads each) on the task queue (--python)',
      parseCount,
      1,
    )
    .option(
      '--cluster',
      'instead: rpc:// round trips on the 3-node cluster (scripts/cluster/cluster.sh) vs the single broker, --n per round and queue type, --concurrency in flight, --rounds alternating; then the failover time over --losses node losses',
    )
    .option(
      '--losses <count>',
      'node losses (stop_app) of the --cluster failover phase; 0 skips it',
      parseCount,
      6,
    )
    .option(
      '--rpc-latency',
      'only measure rpc:// sequential round-trip latency, Node vs the Python Celery client, against one Celery 5 prefork worker (-c 2, prefetch multiplier 64)',
    )
    .option(
      '--latency-n <count>',
      'measured round trips per client per round (--rpc-latency)',
      parseCount,
      200,
    )
    .option('--latency-rounds <count>', 'alternating rounds (--rpc-latency)', parseCount, 6)
    .option(
      '--latency-warmup <count>',
      'unmeasured round trips before each client run (--rpc-latency)',
      parseCount,
      20,
    )
    .option(
      '--latency-node-warmup <count>',
      "unmeasured round trips of the Node app before the first round, for V8's optimizing compiler (--rpc-latency)",
      parseCount,
      2000,
    )
    .option(
      '--no-latency-confirm',
      "send Node's tasks without publisher confirms, as Python's client does (--rpc-latency)",
    )
    .option(
      '--latency-loop-delay',
      "also sample Node's event-loop delay (a 1 ms timer the Python client does not have) (--rpc-latency)",
    );
  addWorkerOptions(cmd);
  addResultOptions(cmd, { retries: false }).action(async (opts: BenchOptions) => {
    const out = new Output(io, opts.json === true);
    const url = brokerUrl(opts, io);
    const log = (text: string): void => {
      if (io.isTTY.stderr || opts.verbose === true) io.stderr.write(`${text}\n`);
    };
    if (opts.cluster === true) {
      const loadBefore = loadavg();
      const report = await runClusterBench({
        singleUrl: url,
        n: opts.n,
        concurrency: opts.concurrency,
        rounds: opts.rounds,
        losses: opts.losses,
        log,
      });
      const record: ClusterBenchRecord = {
        ...report,
        load_average: { before: loadBefore, after: loadavg() },
        single_broker: redact(url),
        cluster: 'rabbit-c1..c3@localhost, 127.0.0.1:5681-5683 (scripts/cluster/cluster.sh)',
        node: process.version,
        date: new Date().toISOString(),
      };
      await writeRecord(opts.out, record);
      out.result(record, () => describeClusterReport(record));
      return;
    }
    if (opts.worker === true) {
      const record = await workerRecord(opts, url, log);
      await writeRecord(opts.out, record);
      out.result(record, () => describeWorkerReport(record));
      return;
    }
    // A crashed run cannot delete its queues: a short x-expires lets the broker drop them
    // (thousands of leftover durable queues once made a broker restart stall).
    const benchOpts = { ...opts, expires: opts.expires === undefined ? BENCH_EXPIRES_MS : opts.expires };
    if (opts.rpcLatency === true) {
      const latency = await runRpcLatency({
        url,
        n: opts.latencyN,
        rounds: opts.latencyRounds,
        warmup: opts.latencyWarmup,
        nodeWarmup: opts.latencyNodeWarmup,
        confirm: opts.latencyConfirm,
        loopDelay: opts.latencyLoopDelay === true,
        log,
      });
      const rec: RpcLatencyRecord = {
        mode: 'rpc-latency',
        ...latency,
        broker: redact(url),
        node_version: process.version,
        date: new Date().toISOString(),
      };
      await writeRecord(opts.out, rec);
      out.result(rec, () => describeLatency(rec));
      return;
    }
    const getmanyUrl = opts.getmanyBroker ?? url;
    const report = await runBench({
      url,
      n: opts.n,
      concurrency: opts.concurrency,
      rounds: opts.rounds,
      samples: opts.samples,
      getmanyN: opts.getmanyN ?? 0,
      getmanyUrl,
      // The embedded broker lives in this process: a child could not see its queues.
      getmanyChild: isAmqp(getmanyUrl)
        ? async (ids) =>
            (await import('./getmany-child.js')).runGetManyChild({
              options: { ...backendOptions(benchOpts, getmanyUrl), connection: getmanyUrl },
              ids,
              timeoutMs: opts.timeout,
            })
        : undefined,
      timeoutMs: opts.timeout,
      // Two runs without a pause gave per-round collect ratios of 0.69-1.54 (the broker was
      // still creating or deleting the previous phase's durable queues); with 3 s, 0.96-1.46.
      settleMs: opts.settle ?? (isAmqp(url) ? DEFAULT_SETTLE_MS : 0),
      exchange: opts.exchange ?? 'celeryresults',
      persistent: opts.transient !== true,
      expires: benchOpts.expires,
      // Same number of channels as the bare side: the ratio compares code, not parallelism.
      open: (brokerForPhase) =>
        openBackend({ ...benchOpts, broker: brokerForPhase }, io, {
          storeChannels: opts.concurrency,
        }),
      phase: (label, total) => progress(io, label, total),
      log,
    });
    const rpc =
      opts.rpc === true || opts.python === true
        ? await runRpcBench({
            url,
            results: opts.rpcN,
            roundTrips: opts.python === true ? opts.rpcRoundtrips : 0,
            reps: opts.rpcReps,
            workerProcesses: opts.rpcWorkers,
            log,
          })
        : undefined;
    const record: BenchRecord = {
      ...report,
      ...(rpc === undefined ? {} : rpcFields(rpc)),
      broker: redact(url),
      node: process.version,
      date: new Date().toISOString(),
    };
    await writeRecord(opts.out, record);
    out.result(record, () => describeReport(record));
  });
  return cmd;
}

/** Writes a report to `file` (with its folders), when one is given. */
async function writeRecord(file: string | undefined, record: object): Promise<void> {
  if (file === undefined) return;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
}

/** The worker bench's record: its report and the context needed to read it later. */
export type WorkerBenchRecord = WorkerBenchReport & {
  broker: string;
  node: string;
  date: string;
  /** RabbitMQ's connection states seen during the Python client's send phases (--worker-probe). */
  probe?: ProbeSample[];
};

function parseList<T extends string>(allowed: readonly T[]): (value: string) => T[] {
  return (value) => {
    const items = value.split(',').map((s) => s.trim());
    for (const item of items) {
      if (!(allowed as readonly string[]).includes(item)) {
        throw new InvalidArgumentError(`expected some of ${allowed.join(', ')}, got '${item}'`);
      }
    }
    return items as T[];
  };
}

function addWorkerOptions(cmd: Command): void {
  cmd
    .option(
      '--worker',
      'measure Celery workers instead (bench/worker-bench.ts): this Node worker, a Celery 5.2 prefork worker, celery-node',
    )
    .option('--worker-n <count>', 'tasks per run (--worker)', parseCount, 2000)
    .option(
      '--worker-rounds <count>',
      'rounds, each running every worker with every client (--worker)',
      parseCount,
      12,
    )
    .option(
      '--worker-targets <list>',
      `workers under test (--worker): ${WORKER_TARGETS.join(',')}`,
      parseList(WORKER_TARGETS),
      [...WORKER_TARGETS],
    )
    .option(
      '--worker-drivers <list>',
      'clients (--worker): python,node',
      parseList(['python', 'node'] as const),
      ['python', 'node'],
    )
    .option('--worker-concurrency <count>', "the Node worker's -c (--worker)", parseCount, 8)
    .option(
      '--worker-probe',
      "sample RabbitMQ's connection states (flow control) through rabbitmqctl during the Python client's send phases (--worker)",
    );
}

async function workerRecord(
  opts: BenchOptions,
  url: string,
  log: (text: string) => void,
): Promise<WorkerBenchRecord> {
  const probe = opts.workerProbe === true ? new FlowProbe() : undefined;
  const report = await runWorkerBench({
    url,
    n: opts.workerN,
    rounds: opts.workerRounds,
    targets: opts.workerTargets,
    drivers: opts.workerDrivers,
    nodeConcurrency: opts.workerConcurrency,
    log,
    ...(probe === undefined ? {} : { onSendPhase: (target, phase) => probe.phase(target, phase) }),
  });
  return {
    ...report,
    ...(probe === undefined ? {} : { probe: await probe.done() }),
    broker: redact(url),
    node: process.version,
    date: new Date().toISOString(),
  };
}

/**
 * The worker bench's summary: medians per worker and client, and the ratios the issue asks
 * for (CPU per 1,000 tasks; tasks/s against the prefork worker's).
 *
 * @example
 * ```ts
 * describeWorkerReport(record); // multi-line table
 * ```
 */
export function describeWorkerReport(r: WorkerBenchRecord): string {
  const f = (x: number | null, d = 0): string => (x === null ? 'n/a' : x.toFixed(d));
  const lines = [
    `worker bench: N=${r.n}, ${r.rounds} round(s), Node worker -c ${r.node_concurrency}, broker ${r.broker}`,
    `  worker        client   send s   tasks/s   CPU s/1000   broker CPU s/1000   slow sends`,
  ];
  for (const s of r.summary) {
    lines.push(
      `  ${s.target.padEnd(12)}  ${s.driver.padEnd(6)}  ${f(s.send_s, 2).padStart(7)}  ${f(s.tasks_per_s).padStart(8)}` +
        `  ${f(s.cpu_s_per_1000, 3).padStart(11)}  ${f(s.broker_cpu_s_per_1000, 3).padStart(18)}` +
        `  ${String(s.slow_sends).padStart(5)}/${s.runs}`,
    );
  }
  const prefork = r.summary.find((s) => s.target === 'prefork' && s.driver === 'node')?.tasks_per_s ?? null;
  for (const s of r.summary) {
    if (s.driver !== 'node' || s.target === 'prefork' || prefork === null || s.tasks_per_s === null) continue;
    lines.push(`  ${s.target} / prefork tasks/s (Node client): ${(s.tasks_per_s / prefork).toFixed(2)}x`);
  }
  for (const [t, why] of Object.entries(r.skipped)) lines.push(`  ${t} not run: ${why}`);
  if (r.probe !== undefined) {
    const flow = r.probe.filter((p) => p.states.some((s) => s !== 'running'));
    lines.push(
      `  probe: ${r.probe.length} samples of connection states, ${flow.length} with a connection not running`,
    );
  }
  return lines.join('\n');
}

/**
 * Runs the bench on `argv` (the arguments after the script) and returns the exit code, as
 * `celery-amqp`'s commands do: 0 success, 1 failure, 2 usage error.
 *
 * @example
 * ```ts
 * process.exitCode = await runBenchCli(['--n', '4000', '--json']);
 * ```
 */
export function runBenchCli(argv: string[], io?: CliIo): Promise<number> {
  return runProgram(benchCommand, argv, io);
}

// Run as a script (`npm run bench` runs the compiled file), not when imported by a test.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runBenchCli(process.argv.slice(2));
}
