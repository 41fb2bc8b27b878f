/**
 * The cluster bench (`npm run bench -- --cluster`): rpc:// round trips per second on the
 * three-node RabbitMQ cluster of scripts/cluster/cluster.sh against the single broker, with
 * the same code and flags, then the failover time across repeated node losses.
 *
 * Round trips: a Node client (Celery app, rpc:// results) keeps `concurrency` tasks in flight
 * to a Node Worker in the same process, through a classic and a quorum task queue. On the
 * cluster the client connects to node 1, the worker to node 2 and the task queue is declared
 * through node 3 (a classic queue lives there, a quorum queue gets its leader there), so every
 * task and every reply crosses nodes: the spread a real deployment gets. The same code also
 * runs with everything on node 1 of the cluster (`cluster_one_node`), to tell the cost of
 * crossing nodes from the cost of a clustered node, and on the single broker. Each round runs
 * N round trips on each of the three and each queue type, rotating which goes first; the
 * medians and the medians of the per-round ratios to the single broker are reported.
 *
 * Failover: on a quorum task queue (a classic queue lives on one node, whose loss is an
 * outage, not a failover: docs/reliability.md), the client streams round trips while the
 * node the client is on (even losses) or the worker is on (odd losses) is stopped with
 * `stop_app`, left down for a while, and started again. A wait that fails with
 * QueueLostError (the client's reply queue went with its node), a send that fails, or a wait
 * that reaches its deadline sends the task again with the same id, so every task completes;
 * those re-sends and the tasks the worker ran more than once are counted. The failover time
 * of one loss is the longest gap between consecutive replies that ends after `stop_app` began
 * and starts before `start_app` began.
 *
 * Each broker gets a fresh vhost (created with rabbitmqctl, deleted with everything in it at
 * the end), so the quorum queues' `celery_delayed_*` ladder never lands in the single broker's
 * `/`. The single broker must be the local RabbitMQ (`rabbitmqctl` reaches it).
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { Celery } from '../src/celery/app.js';
import { Worker } from '../src/celery/worker.js';
import { QueueLostError, TimeoutError } from '../src/errors.js';
import { Connection } from '../src/kombu/connection.js';
import { median, percentile, pool, rate, round } from './stats.js';

const run = promisify(execFile);

/** Task queue types measured. */
export type QueueType = 'classic' | 'quorum';

/** A node of the cluster (AMQP port 5680 + n). */
type NodeId = 1 | 2 | 3;

/** Where a connection of the bench goes: the client's, the worker's, or the declaring one. */
type Role = 'client' | 'worker' | 'declare';

/**
 * Options of {@link runClusterBench}.
 *
 * @example
 * ```ts
 * await runClusterBench({ singleUrl: 'amqp://guest:guest@127.0.0.1:5672//', n: 2000, concurrency: 64, rounds: 3, losses: 6 });
 * ```
 */
export interface ClusterBenchOptions {
  /** The single broker's URL (its vhost is replaced by the bench's own). */
  singleUrl: string;
  /** Round trips per broker, queue type and round. */
  n: number;
  /** Tasks in flight (and the worker's concurrency). */
  concurrency: number;
  /** Alternating rounds. */
  rounds: number;
  /** Node losses in the failover phase; 0 skips it. */
  losses: number;
  /** Each wait's deadline, ms. @default 10000 */
  timeoutMs?: number | undefined;
  /** How long a lost node stays down, ms. @default 2000 */
  downMs?: number | undefined;
  /** Steady streaming before each loss, ms. @default 2000 */
  steadyMs?: number | undefined;
  /** Progress lines. @default none */
  log?: ((line: string) => void) | undefined;
}

/** One queue type's round-trip rates. */
export interface RateFigures {
  /** Median round trips per second on the cluster (client, worker and queue on three nodes). */
  cluster_per_s: number | null;
  /** The same with client, worker and queue on node 1 of the cluster. */
  cluster_one_node_per_s: number | null;
  /** Median round trips per second on the single broker. */
  single_per_s: number | null;
  /** Medians of the per-round ratios to the single broker. */
  ratio: number | null;
  one_node_ratio: number | null;
  /** Every round's rates, in order. */
  per_round: Array<Record<TargetName, number>>;
}

/** One node loss. */
export interface LossRecord {
  /** Whose node was chosen. */
  role: 'client' | 'worker';
  node: NodeId;
  /** True when the other side was on that node too. */
  both: boolean;
  /** Longest reply gap across the loss, ms. */
  failover_ms: number;
  /** How long `stop_app` took to return, ms. */
  stop_app_ms: number;
  /** Nodes of the client and the worker after the loss. */
  client_after: NodeId | null;
  worker_after: NodeId | null;
}

/** The failover phase's figures. */
export interface FailoverFigures {
  queue_type: QueueType;
  losses: LossRecord[];
  failover_p50_ms: number;
  failover_p99_ms: number;
  failover_max_ms: number;
  /**
   * Tasks sent (distinct ids); of those, completed with the right result, never completed
   * (every attempt failed) and answered with a wrong value.
   */
  tasks: number;
  completed: number;
  lost: number;
  wrong_values: number;
  /** Task runs beyond the first, over all tasks (at-least-once; includes runs of re-sent tasks). */
  duplicates: number;
  /** Of those, runs beyond the first of tasks the client sent once: redeliveries by the broker. */
  duplicates_sent_once: number;
  /**
   * Attempts that failed, each followed by a re-send of the task with the same id: waits that
   * reached their deadline (a reply lost without notice), waits that failed with
   * QueueLostError (the reply queue went with its node), sends that failed.
   */
  resent: { timeouts: number; queue_lost: number; send_failures: number };
  /**
   * Counts by message: the worker's 'error' events, the errors of failed sends, and of
   * waits that failed otherwise (the task was sent again).
   */
  errors: { worker: Record<string, number>; send: Record<string, number>; other: Record<string, number> };
  /** Round trips per second over the whole phase, losses included. */
  per_s: number;
}

/** What {@link runClusterBench} measured. */
export interface ClusterBenchReport {
  n: number;
  concurrency: number;
  rounds: number;
  /** True when the bench started the cluster (and stopped it after). */
  cluster_started: boolean;
  round_trips: Record<QueueType, RateFigures>;
  failover: FailoverFigures | null;
}

/** A broker the bench runs on, with its own vhost. */
interface Target {
  name: TargetName;
  /** rabbitmqctl on this broker. */
  ctl(args: readonly string[]): Promise<string>;
  /** The URL or failover list of a role, in `vhost`. */
  urls(role: Role, vhost: string): string | string[];
}

/** The brokers the round trips run on (see the module doc). */
type TargetName = 'cluster' | 'cluster_one_node' | 'single';

/** A client app and a Node Worker on one task queue. */
interface Pair {
  client: Celery;
  server: Celery;
  worker: Worker;
  /** Runs per task id. */
  runs: Map<string, number>;
  errors: Record<string, number>;
  close(): Promise<void>;
}

const SCRIPT = resolve('scripts/cluster/cluster.sh');
const QUEUE_TYPES: readonly QueueType[] = ['classic', 'quorum'];

/** Runs the cluster script; rejects with its stderr. */
async function clusterScript(...args: string[]): Promise<string> {
  try {
    return (await run(SCRIPT, args, { encoding: 'utf8', timeout: 300_000 })).stdout;
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    throw new Error(`${SCRIPT} ${args.join(' ')}: ${String(err)}\n${String(stderr ?? '')}`, { cause: err });
  }
}

/** `base` with its vhost replaced. */
function inVhost(base: string, vhost: string): string {
  const url = new URL(base);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.toString();
}

/** The cluster node of a URL (by port), or null. */
function nodeOf(url: string | undefined): NodeId | null {
  const port = url === undefined ? Number.NaN : Number(new URL(url).port);
  const n = port - 5680;
  return n === 1 || n === 2 || n === 3 ? n : null;
}

/** The cluster, with each role's failover list starting at its node (1, 2, 3), or all at node 1. */
function clusterTarget(spread: boolean): Target {
  const node = (n: number, vhost: string): string =>
    inVhost(`amqp://guest:guest@127.0.0.1:${5680 + n}/`, vhost);
  const first: Record<Role, number> = spread
    ? { client: 1, worker: 2, declare: 3 }
    : { client: 1, worker: 1, declare: 1 };
  return {
    name: spread ? 'cluster' : 'cluster_one_node',
    ctl: (args) => clusterScript('ctl', '1', ...args),
    urls: (role, vhost) =>
      role === 'declare'
        ? node(first.declare, vhost)
        : [0, 1, 2].map((i) => node(((first[role] - 1 + i) % 3) + 1, vhost)),
  };
}

function singleTarget(url: string): Target {
  return {
    name: 'single',
    // The local node (rabbit@localhost): the broker on 5672.
    ctl: async (args) =>
      (await run('rabbitmqctl', ['-q', ...args], { encoding: 'utf8', timeout: 120_000 })).stdout,
    urls: (_role, vhost) => inVhost(url, vhost),
  };
}

/** Creates a vhost of the bench's own on `target` (guest may do everything in it). */
async function createVhost(target: Target): Promise<string> {
  const vhost = `bench-cluster-${randomUUID().slice(0, 8)}`;
  await target.ctl(['add_vhost', vhost]);
  await target.ctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
  return vhost;
}

/** Declares the task queue through the declaring URL, then starts a worker and a client. */
async function openPair(target: Target, vhost: string, type: QueueType, concurrency: number): Promise<Pair> {
  const queue = `bench-clu-${type}-${randomUUID().slice(0, 8)}`;
  const settings = { task_default_queue: queue, task_default_queue_type: type };
  const declarer = new Celery({ broker: new Connection(target.urls('declare', vhost)), settings });
  try {
    await declarer.taskQueue(queue).bind(declarer.connection).declare();
  } finally {
    await declarer.close();
    await declarer.connection.close();
  }
  const server = new Celery({ broker: new Connection(target.urls('worker', vhost)), settings });
  const client = new Celery({
    broker: new Connection(target.urls('client', vhost)),
    backend: 'rpc://',
    settings,
  });
  const runs = new Map<string, number>();
  const errors: Record<string, number> = {};
  const worker = new Worker(server, {
    queue,
    // As many tasks at once as the client keeps in flight, none waiting unacked beyond them;
    // otherwise a default worker (heartbeats, remote control), without a line per task.
    concurrency,
    prefetchMultiplier: 1,
    loglevel: 'warning',
    tasks: {
      echo: ([i], _kwargs, ctx) => {
        runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
        return i;
      },
    },
  });
  worker.on('error', (err) => {
    errors[err.message] = (errors[err.message] ?? 0) + 1;
  });
  await worker.start();
  await client.connection.connect();
  return {
    client,
    server,
    worker,
    runs,
    errors,
    close: async () => {
      await worker.close();
      for (const app of [client, server]) {
        await app.close();
        await app.connection.close();
      }
    },
  };
}

/** `n` round trips with `window` in flight; any failure fails the run. */
async function windowed(pair: Pair, n: number, window: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  await pool(n, window, async (i) => {
    const value = await (await pair.client.sendTask('echo', [i])).get({ timeout: timeoutMs });
    if (value !== i) throw new Error(`round trip ${i}: got ${String(value)}`);
  });
  return rate(n, performance.now() - t0);
}

/**
 * The failover time of one loss: the longest gap between consecutive replies (`arrivals`,
 * ms, ascending) whose end is after `lostAt` and whose start is before `restoredAt`.
 *
 * @example
 * ```ts
 * longestGapAcross([0, 10, 400, 410], 5, 1000); // 390
 * ```
 */
export function longestGapAcross(arrivals: readonly number[], lostAt: number, restoredAt: number): number {
  let longest = 0;
  let previous: number | undefined;
  for (const t of arrivals) {
    if (previous !== undefined && t > lostAt && previous < restoredAt)
      longest = Math.max(longest, t - previous);
    previous = t;
  }
  return longest;
}

/** Counts of a failover stream, with each reply's arrival (ms, ascending) and every task id. */
type StreamCounts = Pick<FailoverFigures, 'tasks' | 'completed' | 'lost' | 'wrong_values' | 'resent'> & {
  errors: Omit<FailoverFigures['errors'], 'worker'>;
  /** Ids of the tasks sent more than once. */
  resentIds: Set<string>;
  arrivals: number[];
  ids: string[];
};

/**
 * Keeps `window` round trips in flight until `stopped()`: a failed send or wait sends the
 * task again with the same id (the echo task is idempotent), up to 10 times.
 */
async function stream(
  pair: Pair,
  window: number,
  timeoutMs: number,
  stopped: () => boolean,
): Promise<StreamCounts> {
  const c: StreamCounts = {
    tasks: 0,
    completed: 0,
    lost: 0,
    wrong_values: 0,
    resent: { timeouts: 0, queue_lost: 0, send_failures: 0 },
    errors: { send: {}, other: {} },
    resentIds: new Set(),
    arrivals: [],
    ids: [],
  };
  const once = async (i: number, id: string): Promise<boolean> => {
    let result;
    try {
      result = await pair.client.sendTask('echo', [i], {}, { taskId: id });
    } catch (err) {
      c.resent.send_failures++;
      c.errors.send[String(err)] = (c.errors.send[String(err)] ?? 0) + 1;
      return false;
    }
    try {
      const value = await result.get({ timeout: timeoutMs });
      c.arrivals.push(performance.now());
      if (value === i) c.completed++;
      else c.wrong_values++;
      return true;
    } catch (err) {
      if (err instanceof QueueLostError) c.resent.queue_lost++;
      else if (err instanceof TimeoutError) c.resent.timeouts++;
      else c.errors.other[String(err)] = (c.errors.other[String(err)] ?? 0) + 1;
      return false;
    }
  };
  const lane = async (): Promise<void> => {
    while (!stopped()) {
      const i = c.tasks++;
      const id = randomUUID();
      c.ids.push(id);
      let done = false;
      for (let attempt = 0; attempt < 10 && !done; attempt++) {
        if (attempt > 0) c.resentIds.add(id);
        done = await once(i, id);
      }
      if (!done) c.lost++;
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The failover phase on the cluster's quorum queue: `losses` stop_app/start_app cycles. */
async function failoverPhase(
  pair: Pair,
  options: ClusterBenchOptions,
  log: (line: string) => void,
): Promise<FailoverFigures> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const losses: LossRecord[] = [];
  let stop = false;
  const t0 = performance.now();
  const streaming = stream(pair, options.concurrency, timeoutMs, () => stop);
  // Handled here so that a failure while the losses go on is not an unhandled rejection;
  // awaited below.
  streaming.catch(() => undefined);
  let failed: unknown;
  const windows: Array<{ lostAt: number; restoredAt: number }> = [];
  try {
    for (let k = 0; k < options.losses; k++) {
      await sleep(options.steadyMs ?? 2000);
      const role = k % 2 === 0 ? 'client' : 'worker';
      const clientNode = nodeOf(pair.client.connection.connectedTo);
      const workerNode = nodeOf(pair.server.connection.connectedTo);
      const node = role === 'client' ? clientNode : workerNode;
      if (node === null) throw new Error(`the ${role} is not connected to a cluster node`);
      const lostAt = performance.now();
      await clusterScript('stop-app', String(node));
      const stopAppMs = performance.now() - lostAt;
      await sleep(options.downMs ?? 2000);
      const restoredAt = performance.now();
      await clusterScript('start-app', String(node));
      windows.push({ lostAt, restoredAt });
      losses.push({
        role,
        node,
        both: clientNode === workerNode,
        // Set below, once every reply is in.
        failover_ms: 0,
        stop_app_ms: Math.round(stopAppMs),
        client_after: nodeOf(pair.client.connection.connectedTo),
        worker_after: nodeOf(pair.server.connection.connectedTo),
      });
      log(`cluster failover: loss ${k + 1}/${options.losses}, the ${role}'s node ${node}`);
    }
    await sleep(options.steadyMs ?? 2000);
  } catch (err) {
    failed = err;
  }
  stop = true;
  const c = await streaming;
  if (failed !== undefined) throw failed;
  const elapsed = performance.now() - t0;
  losses.forEach((loss, k) => {
    const w = windows[k];
    if (w !== undefined) loss.failover_ms = Math.round(longestGapAcross(c.arrivals, w.lostAt, w.restoredAt));
    log(`cluster failover: loss ${k + 1}: ${JSON.stringify(loss)}`);
  });
  const gaps = losses.map((l) => l.failover_ms);
  let runsTotal = 0;
  for (const id of c.ids) runsTotal += pair.runs.get(id) ?? 0;
  const ran = c.ids.filter((id) => pair.runs.has(id)).length;
  let onceExtra = 0;
  for (const id of c.ids) if (!c.resentIds.has(id)) onceExtra += Math.max(0, (pair.runs.get(id) ?? 0) - 1);
  const { arrivals, ids, errors, resentIds, ...counts } = c;
  void arrivals;
  void ids;
  void resentIds;
  return {
    queue_type: 'quorum',
    losses,
    failover_p50_ms: percentile(gaps, 50),
    failover_p99_ms: percentile(gaps, 99),
    failover_max_ms: Math.max(...gaps),
    ...counts,
    duplicates: runsTotal - ran,
    duplicates_sent_once: onceExtra,
    errors: { worker: pair.errors, ...errors },
    per_s: rate(c.completed, elapsed),
  };
}

/**
 * Runs the cluster bench: starts the cluster unless it runs (and then stops it at the end),
 * measures round trips on both brokers in alternating rounds, then the failover phase.
 *
 * @throws when the cluster cannot be started, a round trip fails outside the failover phase,
 * or a broker refuses the bench's vhost.
 */
export async function runClusterBench(options: ClusterBenchOptions): Promise<ClusterBenchReport> {
  const log = options.log ?? ((): void => undefined);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const wasUp = await clusterScript('status').then(
    () => true,
    () => false,
  );
  if (!wasUp) {
    log('cluster: starting rabbit-c1..c3 (scripts/cluster/cluster.sh start)');
    await clusterScript('start');
  }
  const targets = [clusterTarget(true), clusterTarget(false), singleTarget(options.singleUrl)];
  const vhosts = new Map<Target, string>();
  const pairs = new Map<string, Pair>();
  try {
    for (const t of targets) vhosts.set(t, await createVhost(t));
    for (const t of targets) {
      for (const type of QUEUE_TYPES) {
        const pair = await openPair(t, vhosts.get(t) ?? '', type, options.concurrency);
        pairs.set(`${t.name}/${type}`, pair);
        // Warm-up: connections, reply queue, the worker's first tasks.
        await windowed(pair, Math.min(200, options.n), options.concurrency, timeoutMs);
      }
    }
    const perRound: Record<QueueType, Array<Record<TargetName, number>>> = { classic: [], quorum: [] };
    for (let r = 0; r < options.rounds; r++) {
      const order = [...targets.slice(r % targets.length), ...targets.slice(0, r % targets.length)];
      const rates: Record<string, number> = {};
      for (const t of order) {
        for (const type of QUEUE_TYPES) {
          const pair = pairs.get(`${t.name}/${type}`);
          if (pair !== undefined)
            rates[`${t.name}/${type}`] = await windowed(pair, options.n, options.concurrency, timeoutMs);
        }
      }
      for (const type of QUEUE_TYPES) {
        perRound[type].push({
          cluster: rates[`cluster/${type}`] ?? 0,
          cluster_one_node: rates[`cluster_one_node/${type}`] ?? 0,
          single: rates[`single/${type}`] ?? 0,
        });
      }
      log(`cluster round ${r + 1}/${options.rounds}: ${JSON.stringify(rates)}`);
    }
    const figures = (type: QueueType): RateFigures => {
      const rounds = perRound[type];
      const ratio = (name: TargetName): number | null => {
        const m = median(rounds.map((x) => x[name] / x.single));
        return m === null ? null : round(m, 3);
      };
      return {
        cluster_per_s: median(rounds.map((x) => x.cluster)),
        cluster_one_node_per_s: median(rounds.map((x) => x.cluster_one_node)),
        single_per_s: median(rounds.map((x) => x.single)),
        ratio: ratio('cluster'),
        one_node_ratio: ratio('cluster_one_node'),
        per_round: rounds,
      };
    };
    const quorum = pairs.get('cluster/quorum');
    // Only the failover's pair stays: an idle consumer on a classic queue whose node is lost
    // would only add errors to the output.
    for (const [key, pair] of pairs) {
      if (pair === quorum) continue;
      pairs.delete(key);
      await pair.close();
    }
    const failover =
      options.losses > 0 && quorum !== undefined ? await failoverPhase(quorum, options, log) : null;
    return {
      n: options.n,
      concurrency: options.concurrency,
      rounds: options.rounds,
      cluster_started: !wasUp,
      round_trips: { classic: figures('classic'), quorum: figures('quorum') },
      failover,
    };
  } finally {
    for (const pair of pairs.values())
      await pair.close().catch((err: unknown) => log(`close: ${String(err)}`));
    // Every node back (a failed loss cycle may have left one stopped) before its vhost goes.
    if (wasUp) await clusterScript('start');
    for (const [t, vhost] of vhosts) await t.ctl(['delete_vhost', vhost]);
    if (!wasUp) {
      log('cluster: stopping rabbit-c1..c3');
      await clusterScript('stop');
    }
  }
}

/**
 * The readable summary of a cluster report.
 *
 * @example
 * ```ts
 * describeClusterReport(report); // a few lines
 * ```
 */
export function describeClusterReport(r: ClusterBenchReport): string {
  const perS = (x: number | null): string => (x === null ? 'n/a' : `${Math.round(x)}/s`);
  const lines = [
    `cluster bench: N=${r.n} per round, ${r.concurrency} in flight, median of ${r.rounds} rotating round(s)`,
    `  rpc:// round trips   cluster, 3 nodes   cluster, node 1   single broker`,
  ];
  const ratio = (x: number | null): string => (x === null ? 'n/a' : `${x.toFixed(2)}x`);
  for (const type of QUEUE_TYPES) {
    const x = r.round_trips[type];
    const spread = `${perS(x.cluster_per_s)} ${ratio(x.ratio)}`;
    const oneNode = `${perS(x.cluster_one_node_per_s)} ${ratio(x.one_node_ratio)}`;
    lines.push(
      `  ${type.padEnd(18)} ${spread.padStart(18)} ${oneNode.padStart(17)} ${perS(x.single_per_s).padStart(15)}`,
    );
  }
  const f = r.failover;
  if (f !== null) {
    lines.push(
      `  failover (${f.queue_type} queue, ${f.losses.length} stop_app losses): p50 ${f.failover_p50_ms} ms, p99 ${f.failover_p99_ms} ms, max ${f.failover_max_ms} ms`,
      `    ${f.tasks} tasks: ${f.completed} completed, ${f.lost} lost, ${f.duplicates} duplicate runs (${f.duplicates_sent_once} of tasks sent once); ` +
        `re-sent after ${f.resent.queue_lost} QueueLostError, ${f.resent.send_failures} failed sends, ${f.resent.timeouts} deadlines`,
    );
  }
  return lines.join('\n');
}
