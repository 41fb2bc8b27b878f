/**
 * rabbitmqctl for the RabbitMQ suites: listing what the broker holds (to compare
 * declarations made by Node and by Python peers) and private virtual hosts for tests whose
 * entity names are global (the `celery_delayed_*` ladder).
 *
 * Only the test's own vhost is ever created or deleted; the shared broker is never touched
 * otherwise.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Cleanups } from './fixture.js';
import { BROKER_URL, uid } from './fixture.js';

const execFileP = promisify(execFile);

/** Runs rabbitmqctl and returns its stdout; `timeout` in ms. */
export async function rabbitmqctl(args: readonly string[], timeout = 60_000): Promise<string> {
  const { stdout } = await execFileP('rabbitmqctl', [...args], { timeout });
  return stdout;
}

/**
 * One `rabbitmqctl list_<what>` table of a vhost: rows of tab-separated columns as RabbitMQ
 * prints them, sorted, without headers.
 *
 * @example
 * ```ts
 * await listTable('queues', vhost, ['name', 'durable', 'auto_delete', 'arguments']);
 * ```
 */
export async function listTable(
  what: 'queues' | 'exchanges' | 'bindings' | 'consumers' | 'channels',
  vhost: string,
  columns: readonly string[],
): Promise<string[][]> {
  const vhostArgs = what === 'channels' ? [] : ['-p', vhost];
  const out = await rabbitmqctl([`list_${what}`, ...vhostArgs, '-q', '--no-table-headers', ...columns]);
  return out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('\t'))
    .sort((a, b) => a.join('\t').localeCompare(b.join('\t')));
}

/** How RabbitMQ lists a queue's declaration (`rabbitmqctl list_queues` columns, as text). */
export interface QueueFlags {
  durable: string;
  autoDelete: string;
  /** The `arguments` column, e.g. `[{"x-expires",60000}]`. */
  args: string;
}

/** The declaration flags of every queue of `vhost`, by queue name. */
export async function queueFlags(vhost = '/'): Promise<Map<string, QueueFlags>> {
  const rows = await listTable('queues', vhost, ['name', 'durable', 'auto_delete', 'arguments']);
  const flags = new Map<string, QueueFlags>();
  for (const [name, durable, autoDelete, args] of rows) {
    if (name !== undefined && durable !== undefined && autoDelete !== undefined)
      flags.set(name, { durable, autoDelete, args: args ?? '' });
  }
  return flags;
}

/** The broker URL of the test suites with another vhost. */
export function vhostUrl(vhost: string, base = BROKER_URL): string {
  const url = new URL(base);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.toString();
}

/**
 * Creates a vhost of the test's own (guest has every permission on it) and deletes it with
 * everything in it on cleanup.
 *
 * @returns The vhost name and its URL.
 */
export async function privateVhost(
  cleanups: Cleanups,
  prefix: string,
): Promise<{ vhost: string; url: string }> {
  const vhost = uid(prefix);
  await rabbitmqctl(['add_vhost', vhost]);
  cleanups.push(() => rabbitmqctl(['delete_vhost', vhost]).then(() => undefined));
  await rabbitmqctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
  return { vhost, url: vhostUrl(vhost) };
}
