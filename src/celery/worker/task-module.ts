/**
 * A tasks module for `celery-amqp worker -A <module>`: its handlers (named exports, or a
 * default-exported object) and its `settings`, merged with `CELERY_<NAME>` environment
 * variables (the environment wins), split into what the broker connection, the app, the
 * result backend and the worker each take.
 *
 * @module
 */
import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ArgumentError } from '../../errors.js';
import type { TaskHandler } from './context.js';
import type { TaskDefinition } from './task-registry.js';
import { DEFAULT_WORKER_SETTINGS } from './worker-settings.js';
import type { WorkerSettings } from './worker-settings.js';

/** How a setting's environment value is read. */
type Kind = 'string' | 'int' | 'number' | 'bool' | 'list' | 'string?' | 'int?' | 'number?' | 'mode';

/** Settings the Node side uses, by Celery name, and how to read each from the environment. */
const APP_SETTINGS: Readonly<Record<string, Kind>> = {
  task_default_queue: 'string',
  task_default_exchange: 'string',
  task_default_exchange_type: 'string',
  task_default_routing_key: 'string',
  task_serializer: 'string',
  task_compression: 'string?',
  task_default_priority: 'int?',
  task_default_delivery_mode: 'mode',
  task_publish_confirm: 'bool',
  task_send_sent_event: 'bool',
  task_protocol: 'int',
  task_default_queue_type: 'string',
  task_create_missing_queue_type: 'string',
  task_create_missing_queue_exchange_type: 'string?',
  broker_native_delayed_delivery_queue_type: 'string',
};
const RESULT_SETTINGS: Readonly<Record<string, Kind>> = {
  result_exchange: 'string',
  result_exchange_type: 'string',
  result_persistent: 'bool',
  result_expires: 'number?',
  result_serializer: 'string',
  accept_content: 'list',
  result_cache_max: 'int',
  result_compression: 'string?',
  result_extended: 'bool',
};
const WORKER_KINDS: Readonly<Record<keyof WorkerSettings, Kind>> = {
  control_exchange: 'string',
  control_queue_ttl: 'number?',
  control_queue_expires: 'number?',
  control_queue_exclusive: 'bool',
  control_queue_durable: 'bool',
  worker_concurrency: 'int',
  worker_prefetch_multiplier: 'int',
  task_acks_late: 'bool',
  task_reject_on_worker_lost: 'bool',
  task_track_started: 'bool',
  task_time_limit: 'number?',
  task_soft_time_limit: 'number?',
  worker_send_task_events: 'bool',
  worker_enable_remote_control: 'bool',
  worker_disable_rate_limits: 'bool',
  event_exchange: 'string',
  event_serializer: 'string',
  worker_detect_quorum_queues: 'bool',
};
const CONNECTION_SETTINGS: Readonly<Record<string, Kind>> = {
  broker_url: 'string',
  result_backend: 'string',
};

/**
 * Settings split by who takes them.
 *
 * @example
 * ```ts
 * const s = resolveModuleSettings({ worker_concurrency: 8 }, process.env);
 * new Worker(new Celery({ broker: s.brokerUrl, settings: s.app }), { settings: s.worker });
 * ```
 */
export interface ModuleSettings {
  /** `broker_url`, when given. */
  brokerUrl: string | undefined;
  /** `result_backend`, when given. */
  resultBackend: string | undefined;
  /** The app's and the result backend's settings (task_* and result_*). */
  app: Record<string, unknown>;
  /** The worker's settings. */
  worker: Partial<WorkerSettings>;
  /** Names given that the Node side does not use (a Python-only setting, or a typo). */
  unused: string[];
}

function parseEnv(name: string, raw: string, kind: Kind): unknown {
  const text = raw.trim();
  const none = text === '' || /^(none|null)$/i.test(text);
  const bad = (): never => {
    throw new ArgumentError(
      `CELERY_${name.toUpperCase()}: cannot read ${JSON.stringify(raw)} as ${kind.replace('?', '')}`,
    );
  };
  switch (kind) {
    case 'string':
      return raw;
    case 'string?':
      return none ? null : raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(text)) return true;
      if (/^(0|false|no|off)$/i.test(text)) return false;
      return bad();
    case 'list':
      return text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    case 'mode':
      return /^\d+$/.test(text) ? Number(text) : text;
    default: {
      if (none && kind.endsWith('?')) return null;
      const n = Number(text);
      if (text === '' || !Number.isFinite(n) || (kind.startsWith('int') && !Number.isInteger(n)))
        return bad();
      return n;
    }
  }
}

/**
 * Merges a module's `settings` with the `CELERY_<NAME>` variables of `env` (upper-case
 * Celery 4+ names, e.g. `CELERY_TASK_ACKS_LATE=false`; the environment wins) and splits them.
 *
 * @throws ArgumentError for an environment value of the wrong type.
 * @example
 * ```ts
 * resolveModuleSettings({}, { CELERY_WORKER_CONCURRENCY: '8' }).worker; // { worker_concurrency: 8 }
 * ```
 */
export function resolveModuleSettings(
  moduleSettings: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>>,
): ModuleSettings {
  const all: Record<string, unknown> = { ...moduleSettings };
  const kinds: Record<string, Kind> = {
    ...APP_SETTINGS,
    ...RESULT_SETTINGS,
    ...WORKER_KINDS,
    ...CONNECTION_SETTINGS,
  };
  for (const [name, kind] of Object.entries(kinds)) {
    const raw = env[`CELERY_${name.toUpperCase()}`];
    if (raw !== undefined) all[name] = parseEnv(name, raw, kind);
  }
  const out: ModuleSettings = {
    brokerUrl: undefined,
    resultBackend: undefined,
    app: {},
    worker: {},
    unused: [],
  };
  const worker: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(all)) {
    if (value === undefined) continue;
    if (name === 'broker_url' && typeof value === 'string') out.brokerUrl = value;
    else if (name === 'result_backend' && typeof value === 'string') out.resultBackend = value;
    else if (Object.hasOwn(APP_SETTINGS, name) || Object.hasOwn(RESULT_SETTINGS, name)) out.app[name] = value;
    else if (Object.hasOwn(DEFAULT_WORKER_SETTINGS, name)) worker[name] = value;
    else out.unused.push(name);
  }
  out.worker = worker;
  return out;
}

/**
 * What a tasks module gives.
 *
 * @example
 * ```ts
 * const { tasks, settings } = await loadTaskModule('./tasks.js');
 * ```
 */
export interface TaskModule {
  /** Handlers (or definitions) by task name. */
  tasks: Record<string, TaskHandler | TaskDefinition>;
  /** The module's `settings` export, or {}. */
  settings: Record<string, unknown>;
  /** The module's name (its file name without the extension): the prefix of named exports. */
  name: string;
}

function isTask(value: unknown): value is TaskHandler | TaskDefinition {
  if (typeof value === 'function') return true;
  return (
    value !== null && typeof value === 'object' && 'handler' in value && typeof value.handler === 'function'
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Imports a tasks module (a path, resolved from `cwd`, or a package name). Named exports
 * that are handlers (functions, or objects with a `handler`) register as
 * `<module>.<export>` (`tasks.js` exporting `add` gives `tasks.add`, as Celery names a
 * task `add` of `tasks.py`); the keys of a default-exported object are used as they are;
 * a definition's `name` wins over both. `settings` is read as the settings object.
 *
 * @throws ArgumentError when the module cannot be imported or has no task.
 */
export async function loadTaskModule(specifier: string, cwd = process.cwd()): Promise<TaskModule> {
  const isPath = /^(\.{1,2}[\\/]|[\\/])|\.[cm]?js$/.test(specifier);
  const url = isPath ? pathToFileURL(resolve(cwd, specifier)).href : specifier;
  let imported: unknown;
  try {
    imported = await import(url);
  } catch (err) {
    throw new ArgumentError(`Unable to load tasks module ${JSON.stringify(specifier)}: ${String(err)}`, {
      cause: err,
    });
  }
  const mod = isRecord(imported) ? imported : {};
  const name = basename(specifier, extname(specifier));
  const tasks: Record<string, TaskHandler | TaskDefinition> = {};
  const named = new Set<unknown>();
  for (const [key, value] of Object.entries(mod)) {
    if (key === 'default' || key === 'settings' || !isTask(value)) continue;
    named.add(value);
    tasks[typeof value === 'function' ? `${name}.${key}` : (value.name ?? `${name}.${key}`)] = value;
  }
  const dflt = mod['default'];
  if (isRecord(dflt)) {
    for (const [key, value] of Object.entries(dflt)) {
      // A CommonJS module shows its exports both as named exports and as the default object.
      if (key === 'settings' || !isTask(value) || named.has(value)) continue;
      tasks[typeof value === 'function' ? key : (value.name ?? key)] = value;
    }
  }
  if (Object.keys(tasks).length === 0) {
    throw new ArgumentError(`tasks module ${JSON.stringify(specifier)} exports no task handler`);
  }
  const settings = mod['settings'] ?? (isRecord(dflt) ? dflt['settings'] : undefined);
  return { tasks, settings: isRecord(settings) ? settings : {}, name };
}
