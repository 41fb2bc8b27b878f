/**
 * The remote-control commands a worker answers (Celery 5.2's `celery.worker.control`), with
 * Celery's argument names and reply shapes: `{'ok': ...}` / `{'error': ...}` for controls,
 * plain data for inspections. What the Node worker cannot do (autoscale, pool restarts,
 * memory dumps) answers with the error Celery gives when the feature is off.
 *
 * @module
 */
import type { Queue } from '../../kombu/queue.js';
import { hostname as osHostname, release as osRelease, type as osType } from 'node:os';
import { isoOrNull } from './request.js';
import type { Request } from './request.js';
import { parseRate } from './rate-limit.js';
import type { WorkerState } from './state.js';
import type { RegisteredTask } from './task-registry.js';
import { softwareInfo } from './heartbeat.js';

/** A command's reply; `NO_REPLY` for a command that never answers (shutdown). */
export type PanelReply = unknown;

/** Marks a command that sends no reply (Celery's `shutdown` raises SystemExit before replying). */
export const NO_REPLY: unique symbol = Symbol('no reply');

/** Default attributes shown by `inspect registered` (Celery's DEFAULT_TASK_INFO_ITEMS). */
const DEFAULT_TASK_INFO_ITEMS = ['exchange', 'routing_key', 'rate_limit'];

/** What the commands act on: the worker, through the few operations they need. */
export interface PanelTarget {
  readonly state: WorkerState;
  readonly tasks: ReadonlyMap<string, RegisteredTask>;
  /** Running tasks. */
  active(): Request[];
  /** Tasks waiting for a slot. */
  reserved(): Request[];
  /** Tasks held for their eta. */
  scheduled(): Request[];
  /** Revokes ids; with terminate, aborts the running ones. @returns the ids terminated. */
  revoke(ids: string[], terminate: boolean): string[];
  /** Re-applies the rate limits after a change. */
  rateLimitChanged(task: RegisteredTask): void;
  /** Turns task events on (true when they were off). */
  enableEvents(): boolean;
  /** Turns task events off (true when they were on). */
  disableEvents(): boolean;
  /** Sends a heartbeat now. */
  heartbeat(): void;
  /** Starts consuming a queue. */
  addConsumer(
    queue: string,
    exchange: string | null,
    exchangeType: string,
    routingKey: string | null,
  ): Promise<void>;
  /** Stops consuming a queue. */
  cancelConsumer(queue: string): Promise<void>;
  /** The queues consumed. */
  queues(): Queue[];
  /** Settings with Celery's names. */
  conf(withDefaults: boolean): Record<string, unknown>;
  /** The `stats` reply. */
  stats(): Record<string, unknown>;
  /** Grows (or shrinks, negative) the concurrency. */
  resize(delta: number): void;
  /** Starts a warm shutdown. */
  shutdown(message: string): void;
  /** Logs a line at info (Celery logs most commands). */
  info(text: string): void;
}

type Args = Record<string, unknown>;
type Command = (target: PanelTarget, args: Args) => PanelReply | Promise<PanelReply>;

const ok = (value: unknown): { ok: unknown } => ({ ok: value });
const nok = (value: string): { error: string } => ({ error: value });

function list(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function num(value: unknown, fallback: number): number {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : fallback;
}

function bool(value: unknown): boolean {
  if (typeof value === 'string') return ['1', 'true', 'yes', 'on'].includes(value.toLowerCase());
  return value === true || value === 1;
}

/** A Python ValueError reply, as Node.dispatch sends for a raised exception. */
function valueError(text: string): { error: string } {
  return nok(`ValueError('${text}')`);
}

function findRequests(target: PanelTarget, ids: string[]): Request[] {
  const out: Request[] = [];
  for (const id of ids) {
    const req = target.state.requests.get(id);
    if (req !== undefined) out.push(req);
  }
  return out;
}

function stateOf(target: PanelTarget, req: Request): string {
  if (req.timeStart !== null && !req.finished) return 'active';
  return target.reserved().includes(req) ? 'reserved' : 'ready';
}

function activeQueueInfo(q: Queue): Record<string, unknown> {
  const ex = q.exchange;
  return {
    name: q.name,
    exchange: {
      name: ex?.name ?? '',
      type: ex?.type ?? 'direct',
      arguments: ex?.arguments ?? null,
      durable: ex?.durable ?? true,
      passive: ex?.passive ?? false,
      auto_delete: ex?.autoDelete ?? false,
      delivery_mode: ex?.deliveryMode ?? null,
      no_declare: false,
    },
    routing_key: q.routingKey,
    queue_arguments: q.queueArguments ?? null,
    binding_arguments: q.bindingArguments ?? null,
    consumer_arguments: q.consumerArguments ?? null,
    durable: q.durable,
    exclusive: q.exclusive,
    auto_delete: q.autoDelete,
    no_ack: q.noAck,
    alias: null,
    bindings: [],
    no_declare: null,
    expires: q.expires === undefined ? null : q.expires / 1000,
    message_ttl: q.messageTtl === undefined ? null : q.messageTtl / 1000,
    max_length: q.maxLength ?? null,
    max_length_bytes: null,
    max_priority: null,
  };
}

function registered(target: PanelTarget, args: Args): string[] {
  const items = list(args['taskinfoitems']);
  const fields = items.length > 0 ? items : DEFAULT_TASK_INFO_ITEMS;
  return [...target.tasks.values()]
    .filter((t) => bool(args['builtins']) || !t.name.startsWith('celery.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => {
      const info: string[] = [];
      for (const f of fields) {
        const v = taskAttribute(t, f);
        if (v !== null && v !== undefined) info.push(`${f}=${String(v)}`);
      }
      return info.length > 0 ? `${t.name} [${info.join(' ')}]` : t.name;
    });
}

function taskAttribute(t: RegisteredTask, field: string): unknown {
  switch (field) {
    case 'rate_limit':
      return t.rateLimit;
    case 'max_retries':
      return t.maxRetries;
    case 'default_retry_delay':
      return t.defaultRetryDelay;
    case 'time_limit':
      return t.timeLimit;
    case 'soft_time_limit':
      return t.softTimeLimit;
    case 'acks_late':
      return t.acksLate;
    case 'ignore_result':
      return t.ignoreResult;
    default:
      return null;
  }
}

function revoke(target: PanelTarget, args: Args): PanelReply {
  const ids = [...new Set(list(args['task_id']))];
  const terminate = bool(args['terminate']);
  const terminated = target.revoke(ids, terminate);
  if (terminate) {
    if (terminated.length === 0) return ok('terminate: tasks unknown');
    return ok(`terminate: ${terminated.join(', ')}`);
  }
  target.info(`Tasks flagged as revoked: ${ids.join(', ')}`);
  return ok(`tasks ${ids.join(', ')} flagged as revoked`);
}

function rateLimit(target: PanelTarget, args: Args): PanelReply {
  const name = str(args['task_name']) ?? '';
  const limit = args['rate_limit'];
  try {
    parseRate(limit);
  } catch (err) {
    return nok(`Invalid rate limit string: ${err instanceof Error ? err.message : String(err)}`);
  }
  const task = target.tasks.get(name);
  if (task === undefined) return nok('unknown task');
  task.rateLimit = typeof limit === 'string' || typeof limit === 'number' ? limit : null;
  target.rateLimitChanged(task);
  if (task.rateLimit === null || parseRate(task.rateLimit) === 0) {
    target.info(`Rate limits disabled for tasks of type ${name}`);
    return ok('rate limit disabled successfully');
  }
  target.info(`New rate limit for tasks of type ${name}: ${String(task.rateLimit)}.`);
  return ok('new rate limit set successfully');
}

function timeLimit(target: PanelTarget, args: Args): PanelReply {
  const task = target.tasks.get(str(args['task_name']) ?? '');
  if (task === undefined) return nok('unknown task');
  const hard = args['hard'];
  const soft = args['soft'];
  task.timeLimit = hard === null || hard === undefined ? null : num(hard, 0) || null;
  task.softTimeLimit = soft === null || soft === undefined ? null : num(soft, 0) || null;
  target.info(`New time limits for tasks of type ${task.name}: soft=${String(soft)} hard=${String(hard)}`);
  return ok('time limits set successfully');
}

function report(): PanelReply {
  const sw = softwareInfo();
  return ok(
    `software -> ${sw.sw_ident}:${sw.sw_ver} node:${process.version}\n` +
      `platform -> system:${osType()} release:${osRelease()} host:${osHostname()}\n`,
  );
}

/** The commands by name (aliases included), as Celery's `Panel.data`. */
const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
  ['ping', () => ok('pong')],
  ['clock', (t) => ({ clock: t.state.clock.value })],
  [
    'hello',
    (t, a) => {
      if (a['from_node'] === t.state.hostname) return null;
      const theirs = a['revoked'];
      const ids = Array.isArray(theirs)
        ? list(theirs)
        : theirs !== null && typeof theirs === 'object'
          ? Object.keys(theirs)
          : [];
      for (const id of ids) t.state.revoked.add(id);
      t.state.revoked.purge();
      return { revoked: t.state.revoked.toHello(), clock: t.state.clock.forward() };
    },
  ],
  ['active', (t, a) => t.active().map((r) => r.info(bool(a['safe'])))],
  ['reserved', (t) => t.reserved().map((r) => r.info())],
  [
    'scheduled',
    (t) =>
      t.scheduled().map((r) => ({
        eta: isoOrNull(r.eta),
        priority: r.deliveryInfo.priority ?? 6,
        request: r.info(),
      })),
  ],
  ['revoked', (t) => t.state.revoked.ids()],
  ['registered', registered],
  ['stats', (t) => t.stats()],
  ['active_queues', (t) => t.queues().map(activeQueueInfo)],
  ['conf', (t, a) => t.conf(bool(a['with_defaults']))],
  [
    'query_task',
    (t, a) => {
      const out: Record<string, [string, Record<string, unknown>]> = {};
      for (const r of findRequests(t, list(a['ids']))) out[r.id] = [stateOf(t, r), r.info()];
      return out;
    },
  ],
  ['report', report],
  ['revoke', revoke],
  ['terminate', (t, a) => revoke(t, { task_id: a['task_id'], terminate: true })],
  ['rate_limit', rateLimit],
  ['time_limit', timeLimit],
  [
    'enable_events',
    (t) => {
      if (!t.enableEvents()) return ok('task events already enabled');
      t.info('Events of group {task} enabled by remote.');
      return ok('task events enabled');
    },
  ],
  [
    'disable_events',
    (t) => {
      if (!t.disableEvents()) return ok('task events already disabled');
      t.info('Events of group {task} disabled by remote.');
      return ok('task events disabled');
    },
  ],
  [
    'heartbeat',
    (t) => {
      t.heartbeat();
      return null;
    },
  ],
  [
    'add_consumer',
    async (t, a) => {
      const queue = str(a['queue']);
      if (queue === null) return valueError('queue name required');
      await t.addConsumer(
        queue,
        str(a['exchange']),
        str(a['exchange_type']) ?? 'direct',
        str(a['routing_key']),
      );
      return ok(`add consumer ${queue}`);
    },
  ],
  [
    'cancel_consumer',
    async (t, a) => {
      const queue = str(a['queue']) ?? '';
      await t.cancelConsumer(queue);
      return ok(`no longer consuming from ${queue}`);
    },
  ],
  [
    'pool_grow',
    (t, a) => {
      t.resize(Math.max(0, Math.trunc(num(a['n'], 1))));
      return ok('pool will grow');
    },
  ],
  [
    'pool_shrink',
    (t, a) => {
      t.resize(-Math.max(0, Math.trunc(num(a['n'], 1))));
      return ok('pool will shrink');
    },
  ],
  ['autoscale', () => valueError('Autoscale not enabled')],
  ['pool_restart', () => valueError('Pool restarts not enabled')],
  ['election', () => null],
  ['memsample', () => nok("ImportError('Requires the psutil library')")],
  ['memdump', () => nok("ImportError('Requires the psutil library')")],
  ['objgraph', () => nok("ImportError('Requires the objgraph library')")],
  [
    'shutdown',
    (t, a) => {
      t.shutdown(str(a['msg']) ?? 'Got shutdown from remote');
      return NO_REPLY;
    },
  ],
]);

/** Celery's aliases for older command names. */
const ALIASES: ReadonlyMap<string, string> = new Map([
  ['dump_conf', 'conf'],
  ['dump_schedule', 'scheduled'],
  ['dump_reserved', 'reserved'],
  ['dump_active', 'active'],
  ['dump_revoked', 'revoked'],
  ['dump_tasks', 'registered'],
]);

/**
 * Runs a command by name.
 *
 * @returns the reply, `NO_REPLY`, or for an unknown name Python's `{'error': "KeyError('name')"}`.
 * @example
 * ```ts
 * await handleCommand(target, 'ping', {}); // { ok: 'pong' }
 * ```
 */
export async function handleCommand(target: PanelTarget, method: string, args: Args): Promise<PanelReply> {
  const command = COMMANDS.get(ALIASES.get(method) ?? method);
  if (command === undefined) return nok(`KeyError('${method.replace(/[\\']/g, '\\$&')}')`);
  try {
    return await command(target, args);
  } catch (err) {
    return nok(
      `${err instanceof Error ? err.name : 'Exception'}('${String(err instanceof Error ? err.message : err)}')`,
    );
  }
}
