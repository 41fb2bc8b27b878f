/**
 * The cluster suite's fixture: the three RabbitMQ nodes scripts/cluster/cluster.sh runs
 * (rabbit-c1..c3@localhost, AMQP on 127.0.0.1:5681-5683), their URLs and failover lists,
 * losing and bringing back a node, and task queues placed on a chosen node.
 *
 * A test that needs the cluster calls {@link ensureCluster} first: it starts the cluster
 * when it is not running (the suite's globalSetup has usually started it already) and
 * rejects, failing the test, when it cannot. The suite never skips for want of a cluster.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, beforeEach } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { Connection } from '../../src/kombu/connection.js';
import { cleanupStack } from '../fixture.js';
import type { Cleanups } from '../fixture.js';

const run = promisify(execFile);

/** The cluster script. */
export const CLUSTER_SCRIPT = fileURLToPath(new URL('../../scripts/cluster/cluster.sh', import.meta.url));

/** A node of the test cluster. */
export type NodeId = 1 | 2 | 3;

/** The nodes, in order. */
export const NODES: readonly NodeId[] = [1, 2, 3];

/** How a node is lost: its rabbit app stopped (connections closed by the broker), or its VM killed. */
export type LossMode = 'stop-app' | 'kill';

/** Task queue types the suites run with. */
export type QueueType = 'classic' | 'quorum';

/** Node `n`'s AMQP URL. */
export function nodeUrl(n: NodeId): string {
  return `amqp://guest:guest@127.0.0.1:${5680 + n}//`;
}

/** The failover list starting at node `first`, then the others in order (the one a client connects to first). */
export function clusterUrls(first: NodeId): string[] {
  return [0, 1, 2].map((i) => nodeUrl((((first - 1 + i) % 3) + 1) as NodeId));
}

/** The node a connection is on now (from its URL), or undefined. */
export function nodeOf(url: string | undefined): NodeId | undefined {
  const m = /:568([123])\//.exec(url ?? '');
  return m === null ? undefined : (Number(m[1]) as NodeId);
}

/** Runs the cluster script; rejects with its output when it fails. */
export async function clusterScript(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(CLUSTER_SCRIPT, args, { encoding: 'utf8', timeout: 300_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message?: string };
    throw new Error(
      `scripts/cluster/cluster.sh ${args.join(' ')} failed: ${e.message ?? String(err)}\n${e.stderr ?? ''}`,
      { cause: err },
    );
  }
}

/**
 * Starts the cluster unless it runs already (idempotent; waits for a start under way).
 *
 * @throws when the cluster cannot be started: the test fails, it is never skipped.
 */
export async function ensureCluster(): Promise<void> {
  await clusterScript('start');
}

/**
 * The hooks every cluster file uses: the cluster started before its tests, and after each
 * test its cleanups run and whatever it left stopped is brought back.
 *
 * @returns Where the file's tests register their cleanups.
 */
export function clusterHooks(): Cleanups & { run(): Promise<void> } {
  const cleanups = cleanupStack();
  // A failed start fails every test of the file (a failing beforeAll would mark them skipped).
  let notStarted: unknown;
  beforeAll(async () => {
    notStarted = await ensureCluster().then(
      () => undefined,
      (err: unknown) => err ?? new Error('the cluster did not start'),
    );
  });
  beforeEach(() => {
    if (notStarted !== undefined) throw notStarted;
  });
  afterEach(async () => {
    await cleanups.run();
    await ensureCluster();
  });
  return cleanups;
}

/** Loses node `n`: `stop_app`, or SIGKILL of its own beam process. */
export async function loseNode(n: NodeId, mode: LossMode): Promise<void> {
  await clusterScript(mode, String(n));
}

/** Brings node `n` back after {@link loseNode} (start_app, or a boot of its VM that rejoins). */
export async function restoreNode(n: NodeId, mode: LossMode): Promise<void> {
  await clusterScript(mode === 'kill' ? 'boot' : 'start-app', String(n));
}

/**
 * Declares a Celery task queue (durable, on its direct exchange) through node `n` alone, so
 * that a classic queue lives there (RabbitMQ puts a classic queue on the declaring node); a
 * quorum queue gets its leader there and members on every node.
 */
export async function declareTaskQueueOn(n: NodeId, name: string, type: QueueType): Promise<void> {
  const app = new Celery({
    broker: nodeUrl(n),
    settings: { task_default_queue: name, task_default_queue_type: type },
  });
  try {
    await app.taskQueue(name).bind(app.connection).declare();
  } finally {
    await app.close();
  }
}

/** Deletes queues (and exchanges of the same names) through whichever node answers. */
export async function deleteOnCluster(
  queues: readonly string[],
  exchanges: readonly string[] = [],
): Promise<void> {
  const conn = new Connection(clusterUrls(3), { heartbeat: 0 });
  try {
    const ch = await conn.channel({ timeout: 30_000 });
    for (const q of queues) await ch.deleteQueue({ queue: q }).catch(() => undefined);
    for (const e of exchanges) await ch.deleteExchange({ exchange: e }).catch(() => undefined);
  } finally {
    await conn.close();
  }
}

/** Percentile `p` (0-100) of `values` by nearest rank; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Reconnect backoff of the cluster suites (after a whole pass over the nodes failed). */
export const FAST_RETRY = { intervalStart: 100, intervalStep: 100, intervalMax: 500 } as const;

/** Options of {@link appOn}. */
export interface AppOnOptions {
  /** The task queue (the app's default queue). */
  queue: string;
  /** Result backend URL. @default 'rpc://' */
  backend?: 'rpc://' | 'amqp://';
  /** Task queue type (the app's task_default_queue_type). @default 'classic' */
  type?: QueueType;
  /** Result settings (result_persistent, ...). @default {} */
  settings?: Record<string, unknown>;
}

/**
 * A Celery app on a connection of its own whose failover list starts at node `first` (so
 * it connects there), closed (app, then connection) by `cleanups` after the test.
 */
export function appOn(
  first: NodeId,
  options: AppOnOptions,
  cleanups: { push(cleanup: () => unknown): void },
): Celery {
  const connection = new Connection(clusterUrls(first), { heartbeat: 0, retryPolicy: FAST_RETRY });
  // task_default_queue_type: a quorum queue in the app also makes its Worker use a
  // per-consumer prefetch (RabbitMQ refuses a global one there).
  const app = new Celery({
    broker: connection,
    backend: options.backend ?? 'rpc://',
    settings: {
      task_default_queue: options.queue,
      task_default_queue_type: options.type ?? 'classic',
      ...(options.settings ?? {}),
    },
  });
  cleanups.push(async () => {
    await app.close();
    await connection.close();
  });
  return app;
}

/** Consumer counts of `queues` as the cluster lists them (asked through node `via`). */
export async function consumerCounts(queues: readonly string[], via: NodeId = 3): Promise<number[]> {
  const out = await clusterScript('ctl', String(via), 'list_queues', 'name', 'consumers');
  const counts = new Map<string, number>();
  for (const line of out.split('\n')) {
    const [name, consumers] = line.trim().split(/\s+/);
    if (name !== undefined && consumers !== undefined) counts.set(name, Number(consumers));
  }
  return queues.map((q) => counts.get(q) ?? 0);
}
