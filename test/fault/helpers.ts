/**
 * Fault-specific helpers of the fault and recovery suites: closing one RabbitMQ connection by
 * its `connection_name`, stopping/starting the broker app, and a backend on a Connection of
 * its own. The broker URL, names, polling and cleanups come from test/fixture.ts.
 */
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import { Connection } from '../../src/kombu/connection.js';
import type { ConnectionOptions } from '../../src/kombu/connection.js';
import type { RetryPolicy } from '../../src/kombu/retry.js';
import type { Cleanups } from '../fixture.js';
import { waitUntil } from '../fixture.js';
import { rabbitmqctl } from '../rabbitmq-admin.js';

/** Reconnect policy of the RabbitMQ fault suites: short waits, so that a cut heals well within a test's timeout. */
export const FAST: RetryPolicy = { intervalStart: 100, intervalStep: 100, intervalMax: 500 };

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

/** rabbitmqctl, quiet, with room for a broker app restart. */
const ctl = (...args: string[]): Promise<string> => rabbitmqctl(['-q', ...args], 300_000);

/** Pids of the broker connections whose client properties name `connectionName`. */
export async function connectionPids(connectionName: string): Promise<string[]> {
  const out = await ctl('list_connections', 'pid', 'client_properties');
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
  for (const pid of pids) await ctl('close_connection', pid, reason);
  return pids.length;
}

/** Waits until RabbitMQ lists a connection named `connectionName` (the client reconnected). */
export async function waitForConnection(connectionName: string, ms = 30_000): Promise<void> {
  await waitUntil(async () => (await connectionPids(connectionName)).length > 0, {
    timeout: ms,
    interval: 100,
    what: `a broker connection named ${connectionName}`,
  });
}

/**
 * Why restarting the broker app is unsafe right now, or undefined when it is safe. RabbitMQ
 * 3.x recovers every durable queue at boot, each holding file handles: with more durable
 * queues than its file-handle limit (927 under the common `ulimit -n 1024`) the boot stalls
 * for good and the broker stays down for every suite. Seen here with 1,818 leftover queues.
 */
export async function restartHazard(): Promise<string | undefined> {
  const limit = Number(
    (await ctl('eval', 'proplists:get_value(total_limit, file_handle_cache:info([total_limit])).')).trim(),
  );
  const durable = (await ctl('list_queues', 'durable')).split('\n').filter((l) => l.trim() === 'true').length;
  if (!Number.isFinite(limit)) return 'cannot read the broker file-handle limit';
  return durable * 2 > limit
    ? `${durable} durable queues vs a file-handle limit of ${limit}: a restart could stall the broker's boot`
    : undefined;
}

/** Stops the RabbitMQ application (the node stays up; port 5672 stops listening). */
export async function stopApp(): Promise<void> {
  await ctl('stop_app');
}

/** Starts the RabbitMQ application and waits until it accepts work. */
export async function startApp(): Promise<void> {
  await ctl('start_app');
  await ctl('await_startup');
}
