/**
 * Shared helpers of the fault and recovery suites: polling waits, closing one RabbitMQ
 * connection by its `connection_name`, and stopping/starting the broker app.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The RabbitMQ URL of the fault suites. */
export const AMQP_URL = process.env['CONFORMANCE_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672//';

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
