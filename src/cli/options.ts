/**
 * Options shared by the result commands (`store`, `get`, `wait`, `watch`, `demo`, `bench`)
 * and their translation into {@link AMQPBackendOptions}. The CLI speaks Celery's units
 * (seconds); the library takes milliseconds, so every duration is converted here, once.
 *
 * @module
 */
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import type { AMQPBackend } from '../celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../celery/backend-options.js';
import type { CliIo } from './io.js';

/** The broker the result commands use when neither `--broker` nor `CELERY_BROKER_URL` is set. */
export const DEFAULT_BROKER = 'amqp://guest:guest@127.0.0.1:5672//';

/** Serializers the CLI offers (pickle is deliberately absent: it is never decoded). */
export const SERIALIZERS = ['json', 'msgpack', 'yaml'] as const;

/** Compressions the CLI offers. */
export const COMPRESSIONS = ['zlib', 'brotli'] as const;

/** The parsed common flags, as commander hands them to an action. */
export interface ResultOptions {
  broker?: string;
  transient?: boolean;
  /** Milliseconds, or null for "no x-expires" (`--expires none`). */
  expires?: number | null;
  serializer?: string;
  compression?: string;
  exchange?: string;
  json?: boolean;
}

/**
 * Parses a duration given in seconds (decimals allowed) into whole milliseconds.
 * Throws commander's InvalidArgumentError, which the CLI reports as a usage error (exit 2).
 *
 * @example
 * ```ts
 * secondsToMs('1.5'); // 1500
 * ```
 */
export function secondsToMs(value: string): number {
  const trimmed = value.trim();
  const seconds = Number(trimmed);
  if (trimmed === '' || !Number.isFinite(seconds) || seconds < 0) {
    throw new InvalidArgumentError(`expected a number of seconds >= 0, got '${value}'`);
  }
  return Math.round(seconds * 1000);
}

/**
 * Parses `--expires`: seconds, or `none` for queues without x-expires.
 *
 * @example
 * ```ts
 * parseExpires('none'); // null
 * parseExpires('60');   // 60000
 * ```
 */
export function parseExpires(value: string): number | null {
  if (value.trim().toLowerCase() === 'none') return null;
  const ms = secondsToMs(value);
  if (ms === 0) throw new InvalidArgumentError(`x-expires must be > 0 seconds (or 'none'), got '${value}'`);
  return ms;
}

/**
 * Parses a positive integer count (`--n`, `--concurrency`).
 *
 * @example
 * ```ts
 * parseCount('10000'); // 10000
 * ```
 */
export function parseCount(value: string): number {
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  }
  return n;
}

/**
 * Adds `--broker`, `--transient`, `--expires`, `--serializer`, `--compression`, `--exchange`
 * and `--json` to a command.
 *
 * @example
 * ```ts
 * addResultOptions(new Command('get'));
 * ```
 */
export function addResultOptions(
  cmd: Command,
  brokerHelp = `broker URL (default: $CELERY_BROKER_URL or ${DEFAULT_BROKER})`,
): Command {
  return cmd
    .option('--broker <url>', brokerHelp)
    .option('--transient', 'non-persistent results: transient exchange/queues, delivery_mode 1')
    .option(
      '--expires <seconds>',
      "result queue x-expires in seconds, or 'none' (default: 86400)",
      parseExpires,
    )
    .addOption(new Option('--serializer <name>', 'result serializer').choices(SERIALIZERS))
    .addOption(new Option('--compression <name>', 'result body compression').choices(COMPRESSIONS))
    .option('--exchange <name>', 'result exchange (default: celeryresults)')
    .option('--json', 'print each result as one JSON line (the default when stdout is not a terminal)');
}

/**
 * The broker URL: `--broker`, else `CELERY_BROKER_URL`, else `fallback`.
 *
 * @example
 * ```ts
 * brokerUrl({}, io); // 'amqp://guest:guest@127.0.0.1:5672//' unless CELERY_BROKER_URL is set
 * ```
 */
export function brokerUrl(opts: ResultOptions, io: CliIo, fallback = DEFAULT_BROKER): string {
  const fromEnv = io.env['CELERY_BROKER_URL'];
  return opts.broker ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : fallback);
}

/**
 * The backend options the flags describe (durations already in milliseconds).
 *
 * @example
 * ```ts
 * backendOptions({ transient: true, expires: 60_000 }, 'memory://');
 * // { connection: 'memory://', persistent: false, expires: 60, accept: [...] }
 * ```
 */
export function backendOptions(opts: ResultOptions, url: string): AMQPBackendOptions {
  const options: AMQPBackendOptions = {
    connection: url,
    // A reader should decode whatever safe format a writer chose; pickle stays refused.
    accept: [...SERIALIZERS],
  };
  if (opts.transient === true) options.persistent = false;
  // The flag is parsed to ms; the backends take Celery's seconds.
  if (opts.expires !== undefined) options.expires = opts.expires === null ? null : opts.expires / 1000;
  if (opts.serializer !== undefined) options.serializer = opts.serializer;
  if (opts.compression !== undefined) options.compression = opts.compression;
  if (opts.exchange !== undefined) options.exchange = opts.exchange;
  return options;
}

/**
 * Creates the backend. Loaded lazily so that `--help`, `--version` and usage errors never
 * pay for (or fail on) the broker stack.
 *
 * @example
 * ```ts
 * const backend = await openBackend(opts, io);
 * try { ... } finally { await backend.close(); }
 * ```
 */
export async function openBackend(
  opts: ResultOptions,
  io: CliIo,
  fallback = DEFAULT_BROKER,
  extra: Partial<AMQPBackendOptions> = {},
): Promise<AMQPBackend> {
  const options: AMQPBackendOptions = { ...backendOptions(opts, brokerUrl(opts, io, fallback)), ...extra };
  if (io.createBackend !== undefined) return io.createBackend(options);
  const { AMQPBackend: Backend } = await import('../celery/amqp-backend.js');
  return new Backend(options);
}

/**
 * Runs `fn` with a backend and always closes it, without letting a failing close hide the
 * real error.
 *
 * @example
 * ```ts
 * await withBackend(opts, io, (b) => b.getTaskMeta(id));
 * ```
 */
export async function withBackend<T>(
  opts: ResultOptions,
  io: CliIo,
  fn: (backend: AMQPBackend) => Promise<T>,
  fallback = DEFAULT_BROKER,
): Promise<T> {
  const backend = await openBackend(opts, io, fallback);
  let failed = false;
  try {
    return await fn(backend);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await backend.close().catch((err: unknown) => {
      if (!failed) throw err;
    });
  }
}
