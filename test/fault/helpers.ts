/**
 * Shared helpers of the fault and recovery suites: polling waits, closing one RabbitMQ
 * connection by its `connection_name`, stopping/starting the broker app, and the
 * per-test cleanups and backend-on-its-own-Connection setup the suites share.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import { Connection } from '../../src/kombu/connection.js';
import type { ConnectionOptions } from '../../src/kombu/connection.js';
import type { RetryPolicy } from '../../src/kombu/retry.js';

const run = promisify(execFile);

/** The RabbitMQ URL of the fault suites. */
export const AMQP_URL = process.env['CONFORMANCE_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672//';

/** Reconnect policy of the RabbitMQ fault suites: short waits, so that a cut heals well within a test's timeout. */
export const FAST: RetryPolicy = { intervalStart: 100, intervalStep: 100, intervalMax: 500 };

/** What {@link backendOn} needs of a {@link cleanupStack}: somewhere to register a cleanup. */
export interface Cleanups {
  push(cleanup: () => Promise<unknown>): void;
}

/**
 * Cleanups a test registers, for `afterEach(() => cleanups.run())`: `run` calls them newest
 * first (a backend closes before the proxy under it) and ignores their failures, so that
 * one failed close cannot leave the rest of a test's sockets open for the next test.
 */
export function cleanupStack(): Cleanups & { run(): Promise<void> } {
  const stack: Array<() => Promise<unknown>> = [];
  return {
    push: (cleanup) => void stack.push(cleanup),
    run: async () => {
      // Popped one at a time: a cleanup that registers another still has it run.
      for (let c = stack.pop(); c !== undefined; c = stack.pop()) await c().catch(() => undefined);
    },
  };
}

/**
 * An AMQPBackend on a Connection of its own (so a test can cut, close or watch just that one),
 * both closed by `cleanups` after the test, the backend first.
 */
export function backendOn(
  url: string,
  exchange: string,
  connOptions: ConnectionOptions,
  backendOptions: AMQPBackendOptions,
  cleanups: Cleanups,
): AMQPBackend {
  const connection = new Connection(url, connOptions);
  const b = new AMQPBackend({ connection, exchange, ...backendOptions });
  cleanups.push(async () => {
    await b.close();
    await connection.close();
  });
  return b;
}

/** A name unique to this run, for queues, exchanges and connection names. */
export function uid(prefix: string): string {
  return `fault-${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Resolves once `pred` holds, polling; rejects with `what` after `ms` (a bound, not an assertion on speed). */
export async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs rabbitmqctl quietly and returns its output. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { encoding: 'utf8', timeout: 300_000 });
  return stdout;
}

/** Pids of the broker connections whose client properties name `connectionName`. */
export async function connectionPids(connectionName: string): Promise<string[]> {
  const out = await rabbitmqctl('list_connections', 'pid', 'client_properties');
  return out
    .split('\n')
    .filter((l) => l.includes(connectionName))
    .map((l) => l.split('\t')[0] ?? '')
    .filter((p) => p !== '');
}

/**
 * Closes (server side, 320 CONNECTION_FORCED) every broker connection named
 * `connectionName`, and only those: other suites running meanwhile are not touched.
 *
 * @returns How many connections were closed.
 */
export async function closeConnection(connectionName: string, reason = 'fault test'): Promise<number> {
  const pids = await connectionPids(connectionName);
  for (const pid of pids) await rabbitmqctl('close_connection', pid, reason);
  return pids.length;
}

/** Waits until RabbitMQ lists a connection named `connectionName` (the client reconnected). */
export async function waitForConnection(connectionName: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if ((await connectionPids(connectionName)).length > 0) return;
    if (Date.now() > end) throw new Error(`no broker connection named ${connectionName}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Why restarting the broker app is unsafe right now, or undefined when it is safe. RabbitMQ
 * 3.x recovers every durable queue at boot, each holding file handles: with more durable
 * queues than its file-handle limit (927 under the common `ulimit -n 1024`) the boot stalls
 * for good and the broker stays down for every suite. Seen here with 1,818 leftover queues.
 */
export async function restartHazard(): Promise<string | undefined> {
  const limit = Number(
    (
      await rabbitmqctl('eval', 'proplists:get_value(total_limit, file_handle_cache:info([total_limit])).')
    ).trim(),
  );
  const durable = (await rabbitmqctl('list_queues', 'durable'))
    .split('\n')
    .filter((l) => l.trim() === 'true').length;
  if (!Number.isFinite(limit)) return 'cannot read the broker file-handle limit';
  return durable * 2 > limit
    ? `${durable} durable queues vs a file-handle limit of ${limit}: a restart could stall the broker's boot`
    : undefined;
}

/** Stops the RabbitMQ application (the node stays up; port 5672 stops listening). */
export async function stopApp(): Promise<void> {
  await rabbitmqctl('stop_app');
}

/** Starts the RabbitMQ application and waits until it accepts work. */
export async function startApp(): Promise<void> {
  await rabbitmqctl('start_app');
  await rabbitmqctl('await_startup');
}
