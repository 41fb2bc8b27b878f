/**
 * The worker's settings by their Celery names and units (seconds), and how
 * {@link WorkerOptions} (camelCase, milliseconds for JS-named intervals) override them.
 *
 * @module
 */
import { availableParallelism, hostname as osHostname } from 'node:os';
import { ArgumentError } from '../../errors.js';
import { resolveDecodeLimits } from '../../kombu/decode-limits.js';
import type { DecodeLimits } from '../../kombu/decode-limits.js';
import type { Logger } from '../../logger.js';
import { consoleLogger } from '../../logger.js';
import { DEFAULT_PIDBOX_SETTINGS } from '../pidbox.js';
import type { PidboxSettings } from '../pidbox.js';
import type { TaskDefinition } from './task-registry.js';
import type { TaskHandler } from './context.js';
import { LOG_LEVELS } from './task-log.js';
import type { LogLevel } from './task-log.js';

/**
 * Worker settings with Celery's names and units (what a `celery-amqp worker` module's
 * `settings` export and `CELERY_<NAME>` variables give).
 *
 * @example
 * ```ts
 * const s: Partial<WorkerSettings> = { worker_concurrency: 8, task_acks_late: true, task_time_limit: 60 };
 * ```
 */
export interface WorkerSettings extends PidboxSettings {
  /** Tasks run at once. @default the number of CPUs, as Celery */
  worker_concurrency: number;
  /** Prefetch = concurrency x this (0: no limit). @default 4 */
  worker_prefetch_multiplier: number;
  /** Ack after the result is stored (true) or when the task starts (false). @default true (Celery: false) */
  task_acks_late: boolean;
  /** Requeue acks-late tasks a cold shutdown abandons (else WorkerLostError). @default true (Celery: false) */
  task_reject_on_worker_lost: boolean;
  /** Store STARTED before running. @default false */
  task_track_started: boolean;
  /** Hard time limit, seconds (null: none). @default null */
  task_time_limit: number | null;
  /** Soft time limit, seconds (null: none). @default null */
  task_soft_time_limit: number | null;
  /** Send task events. @default false */
  worker_send_task_events: boolean;
  /** Answer remote-control commands. @default true */
  worker_enable_remote_control: boolean;
  /** Ignore tasks' rate limits. @default false */
  worker_disable_rate_limits: boolean;
  /** Event exchange. @default 'celeryev' */
  event_exchange: string;
  /** Event serializer. @default 'json' */
  event_serializer: string;
  /**
   * Detect quorum queues among the app's queues (`task_default_queue_type`,
   * `task_create_missing_queue_type`) and then use a per-consumer prefetch, as RabbitMQ
   * refuses a global one there (Celery 5.5). The prefetch is then static: a held eta task
   * cannot widen the window. With false the prefetch stays global, which RabbitMQ refuses
   * on a quorum queue (540 NOT_IMPLEMENTED). @default true
   */
  worker_detect_quorum_queues: boolean;
}

/** Every worker setting's default. */
export const DEFAULT_WORKER_SETTINGS: Readonly<WorkerSettings> = Object.freeze({
  ...DEFAULT_PIDBOX_SETTINGS,
  worker_concurrency: 0,
  worker_prefetch_multiplier: 4,
  task_acks_late: true,
  task_reject_on_worker_lost: true,
  task_track_started: false,
  task_time_limit: null,
  task_soft_time_limit: null,
  worker_send_task_events: false,
  worker_enable_remote_control: true,
  worker_disable_rate_limits: false,
  event_exchange: 'celeryev',
  event_serializer: 'json',
  worker_detect_quorum_queues: true,
});

/**
 * Options of {@link Worker}. The camelCase options win over `settings`.
 *
 * @example
 * ```ts
 * new Worker(app, { queues: ['math'], concurrency: 8, sendTaskEvents: true, tasks: { add } });
 * ```
 */
export interface WorkerOptions {
  /** One queue to consume (kept for compatibility; see `queues`). @default the app's task_default_queue */
  queue?: string | undefined;
  /** Queues to consume. @default [queue] */
  queues?: readonly string[] | undefined;
  /** Handlers (or handlers with options) by task name. @default {} */
  tasks?: Record<string, TaskHandler | TaskDefinition> | undefined;
  /**
   * Tasks run at once. A task whose handler returned frees its slot while its result waits
   * for the broker's confirm (its message stays unacked until then).
   * @default settings.worker_concurrency, else the number of CPUs
   */
  concurrency?: number | undefined;
  /** Unacked messages = concurrency x this (0: no limit). @default 4 */
  prefetchMultiplier?: number | undefined;
  /** Ack after storing the result (true) or when the task starts (false, Celery's default). @default true */
  acksLate?: boolean | undefined;
  /** With acksLate, a cold shutdown requeues running tasks (true) or stores WorkerLostError (false). @default true */
  rejectOnWorkerLost?: boolean | undefined;
  /** Store STARTED before running (Celery's track_started). @default false */
  trackStarted?: boolean | undefined;
  /** Hard time limit in seconds for tasks whose message and options give none. @default null */
  timeLimit?: number | null | undefined;
  /** Soft time limit in seconds, likewise. @default null */
  softTimeLimit?: number | null | undefined;
  /**
   * Node name: in events, `inspect` replies, STARTED, and the mailbox queue's name.
   * @default `node<pid>@<hostname>` (`node<pid>-<n>@<hostname>` for the n-th worker of a process)
   */
  hostname?: string | undefined;
  /** Send task events (`-E`). @default settings.worker_send_task_events (false) */
  sendTaskEvents?: boolean | undefined;
  /** Send worker-online/heartbeat/offline (Celery sends them unless `--without-heartbeat`). @default true */
  heartbeat?: boolean | undefined;
  /** Heartbeat period in ms. @default 2000 */
  heartbeatInterval?: number | undefined;
  /** Answer remote control (`celery inspect` / `control`). @default settings.worker_enable_remote_control (true) */
  remoteControl?: boolean | undefined;
  /** Where log lines go. @default consoleLogger */
  logger?: Logger | undefined;
  /** Lowest level logged; `info` logs a received and a succeeded line per task. @default 'info' */
  loglevel?: LogLevel | undefined;
  /** Settings by Celery name (see {@link WorkerSettings}). @default {} */
  settings?: Partial<WorkerSettings> | undefined;
  /** Clock that eta and expires are compared with, in ms since the epoch (tests). @default Date.now */
  now?: (() => number) | undefined;
  /**
   * Limits on decoding one task message (sizes in bytes, nesting depth, YAML alias / pickle
   * reference expansion, collections, pickle memo), merged over `DEFAULT_DECODE_LIMITS`
   * (64 MiB as received and decompressed, depth 1,000, 1,000,000 collections by aliases,
   * 1,000,000 collections, 1,000,000 memo entries). A message crossing one is rejected
   * without requeue (dead-lettered when its queue has a DLX) with an InvalidTaskError whose
   * code is the limit's (`BODY_TOO_LARGE`, `TOO_DEEP`, `TOO_MANY_ALIASES`, `MEMO_TOO_LARGE`)
   * and whose message names the task id and the limit. No Celery setting exists for these.
   * @default DEFAULT_DECODE_LIMITS
   */
  decodeLimits?: Partial<DecodeLimits> | undefined;
}

/** WorkerOptions with every default applied. */
export interface ResolvedWorkerOptions {
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly prefetchMultiplier: number;
  readonly acksLate: boolean;
  readonly rejectOnWorkerLost: boolean;
  readonly trackStarted: boolean;
  readonly timeLimit: number | null;
  readonly softTimeLimit: number | null;
  readonly hostname: string;
  readonly sendTaskEvents: boolean;
  readonly heartbeat: boolean;
  readonly heartbeatInterval: number;
  readonly remoteControl: boolean;
  readonly disableRateLimits: boolean;
  readonly logger: Logger;
  readonly loglevel: LogLevel;
  readonly settings: Readonly<WorkerSettings>;
  readonly now: () => number;
  readonly decodeLimits: Readonly<DecodeLimits>;
}

const KNOWN = new Set(Object.keys(DEFAULT_WORKER_SETTINGS));

let workersMade = 0;

/**
 * `node<pid>@<host>`, then `node<pid>-2@<host>`, ... for more workers in one process: two
 * nodes of one name would share one mailbox queue and answer each other's commands.
 */
function defaultHostname(): string {
  workersMade++;
  return `node${process.pid}${workersMade === 1 ? '' : `-${workersMade}`}@${osHostname()}`;
}

function count(value: unknown, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ArgumentError(`${what} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function limit(value: unknown, what: string): number | null {
  if (value === null || value === undefined || value === 0) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ArgumentError(`${what} must be a number of seconds or null`);
  }
  return value;
}

/**
 * Applies defaults and checks the options.
 *
 * @throws ArgumentError naming the bad option or setting.
 */
export function resolveWorkerOptions(options: WorkerOptions, defaultQueue: string): ResolvedWorkerOptions {
  for (const key of Object.keys(options.settings ?? {})) {
    if (!KNOWN.has(key)) throw new ArgumentError(`unknown worker setting ${JSON.stringify(key)}`);
  }
  const s: WorkerSettings = { ...DEFAULT_WORKER_SETTINGS, ...(options.settings ?? {}) };
  const queues = options.queues ?? [options.queue ?? defaultQueue];
  if (queues.length === 0 || queues.some((q) => typeof q !== 'string' || q === '')) {
    throw new ArgumentError('queues must be non-empty queue names');
  }
  const concurrency = count(
    options.concurrency ?? (s.worker_concurrency > 0 ? s.worker_concurrency : availableParallelism()),
    'concurrency',
    1,
  );
  const loglevel = options.loglevel ?? 'info';
  if (!LOG_LEVELS.includes(loglevel))
    throw new ArgumentError(`loglevel must be one of ${LOG_LEVELS.join(', ')}`);
  const heartbeatInterval = options.heartbeatInterval ?? 2000;
  if (!Number.isFinite(heartbeatInterval) || heartbeatInterval <= 0) {
    throw new ArgumentError('heartbeatInterval must be a positive number of ms');
  }
  return {
    queues: [...new Set(queues)],
    concurrency,
    prefetchMultiplier: count(
      options.prefetchMultiplier ?? s.worker_prefetch_multiplier,
      'prefetchMultiplier',
      0,
    ),
    acksLate: options.acksLate ?? s.task_acks_late,
    rejectOnWorkerLost: options.rejectOnWorkerLost ?? s.task_reject_on_worker_lost,
    trackStarted: options.trackStarted ?? s.task_track_started,
    timeLimit: limit(options.timeLimit === undefined ? s.task_time_limit : options.timeLimit, 'timeLimit'),
    softTimeLimit: limit(
      options.softTimeLimit === undefined ? s.task_soft_time_limit : options.softTimeLimit,
      'softTimeLimit',
    ),
    hostname: options.hostname ?? defaultHostname(),
    sendTaskEvents: options.sendTaskEvents ?? s.worker_send_task_events,
    heartbeat: options.heartbeat ?? true,
    heartbeatInterval,
    remoteControl: options.remoteControl ?? s.worker_enable_remote_control,
    disableRateLimits: s.worker_disable_rate_limits,
    logger: options.logger ?? consoleLogger,
    loglevel,
    settings: Object.freeze({ ...s, worker_concurrency: concurrency }),
    now: options.now ?? Date.now,
    decodeLimits: resolveDecodeLimits(options.decodeLimits),
  };
}
