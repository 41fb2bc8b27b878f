/**
 * Options shared by the result commands (`store`, `get`, `wait`, `watch`, `demo`) and the
 * bench, and their translation into {@link AMQPBackendOptions}. The CLI speaks Celery's units
 * (seconds); the library takes milliseconds, so every duration is converted here, once.
 *
 * @module
 */
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import type { AMQPBackend } from '../celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../celery/backend-options.js';
import { AbortError } from '../errors.js';
import { DEFAULT_DECODE_LIMITS, resolveDecodeLimits } from '../kombu/decode-limits.js';
import type { DecodeLimits } from '../kombu/decode-limits.js';
import { isRecoverable, retryOverTime } from '../kombu/retry.js';
import { DEFAULT_BROKER_URL, resolveBrokerUrl } from '../transport/url.js';
import { describeError } from './io.js';
import type { CliIo } from './io.js';

/**
 * Connection-level failures a command retries by default, as Celery retries a result
 * publish (`retry_policy` max_retries).
 */
export const DEFAULT_RETRIES = 20;

/** Sleeps between retries, ms: 0, 1, 1, 1, ... s, Celery's result publish policy. */
const RETRY_INTERVALS = { intervalStart: 0, intervalStep: 1000, intervalMax: 1000 } as const;

/** Serializers the CLI offers (pickle is deliberately absent: it is never decoded). */
export const SERIALIZERS = ['json', 'msgpack', 'yaml'] as const;

/** Compressions the CLI offers. */
export const COMPRESSIONS = ['zlib', 'brotli'] as const;

/** The parsed common flags, as commander hands them to an action. */
export interface ResultOptions extends LimitOptions {
  broker?: string;
  transient?: boolean;
  /** Milliseconds, or null for "no x-expires" (`--expires none`). */
  expires?: number | null;
  serializer?: string;
  compression?: string;
  exchange?: string;
  json?: boolean;
  /** Connection-level retries (`--retries`). @default {@link DEFAULT_RETRIES} */
  retries?: number;
}

/** The decode-limit flags, as commander names them (`--max-depth` → `maxDepth`). */
export type LimitOptions = Partial<DecodeLimits>;

/** Each decode-limit flag: its limit, whether it counts bytes, and its help. */
const LIMIT_FLAGS: ReadonlyArray<{ limit: keyof DecodeLimits; bytes: boolean; help: string }> = [
  { limit: 'maxBodyBytes', bytes: true, help: 'largest message body as received (compressed)' },
  { limit: 'maxDecodedBytes', bytes: true, help: 'largest body once decompressed, and largest output' },
  { limit: 'maxDepth', bytes: false, help: 'deepest nesting of lists/maps' },
  {
    limit: 'maxAliasExpansion',
    bytes: false,
    help: 'most lists/maps YAML aliases or pickle references may add once expanded',
  },
  { limit: 'maxCollections', bytes: false, help: 'most lists/maps one body may build' },
  { limit: 'maxPickleMemo', bytes: false, help: "most entries in a pickle's memo" },
];

const BYTE_UNITS: Record<string, number> = { '': 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/**
 * Parses a decode limit: a count (underscores allowed), for sizes with an optional `KiB`,
 * `MiB` or `GiB`, or `none` for no limit.
 *
 * @example
 * ```ts
 * parseLimit('64MiB', true); // 67108864
 * parseLimit('none', false); // Infinity
 * ```
 */
export function parseLimit(value: string, bytes: boolean): number {
  const text = value.trim().toLowerCase().replace(/_/g, '');
  if (text === 'none') return Infinity;
  const m = /^(\d+)\s*(kib|mib|gib)?$/.exec(text);
  const unit = m?.[2] ?? '';
  const n = m === null ? NaN : Number(m[1]) * (BYTE_UNITS[unit] ?? NaN);
  if (!Number.isSafeInteger(n) || (!bytes && unit !== '')) {
    throw new InvalidArgumentError(
      `expected a whole number${bytes ? ' (bytes, or with KiB/MiB/GiB)' : ''} or 'none', got '${value}'`,
    );
  }
  return n;
}

function flagName(limit: string): string {
  return `--${limit.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function defaultText(limit: keyof DecodeLimits, bytes: boolean): string {
  const n = DEFAULT_DECODE_LIMITS[limit];
  return bytes && n % 1024 ** 2 === 0 ? `${n / 1024 ** 2}MiB` : n.toLocaleString('en-US');
}

/**
 * Adds the decode-limit flags (`--max-body-bytes`, `--max-decoded-bytes`, `--max-depth`,
 * `--max-alias-expansion`, `--max-collections`, and with `pickle` `--max-pickle-memo`):
 * what decoding one message (and, for the result commands, printing it) may cost. Celery
 * has no settings for these; the defaults are `DEFAULT_DECODE_LIMITS`.
 *
 * @example
 * ```ts
 * addLimitOptions(new Command('get'));
 * ```
 */
export function addLimitOptions(cmd: Command, options: { pickle?: boolean } = {}): Command {
  for (const { limit, bytes, help } of LIMIT_FLAGS) {
    if (limit === 'maxPickleMemo' && options.pickle !== true) continue;
    cmd.option(
      `${flagName(limit)} <${bytes ? 'bytes' : 'count'}>`,
      `${help} (default: ${defaultText(limit, bytes)}; 'none': no limit)`,
      (v: string) => parseLimit(v, bytes),
    );
  }
  return cmd;
}

/**
 * The limits the output of a result command is held to: the decode limits the flags give,
 * over the defaults.
 *
 * @example
 * ```ts
 * new Output(io, json, outputLimits(opts));
 * ```
 */
export function outputLimits(opts: LimitOptions): Readonly<DecodeLimits> {
  return resolveDecodeLimits(decodeLimitsFrom(opts));
}

/**
 * The decode limits the flags set (only those given).
 *
 * @example
 * ```ts
 * decodeLimitsFrom({ maxDepth: 50, json: true }); // { maxDepth: 50 }
 * ```
 */
export function decodeLimitsFrom(opts: LimitOptions): Partial<DecodeLimits> {
  const out: Partial<DecodeLimits> = {};
  for (const { limit } of LIMIT_FLAGS) {
    const v = opts[limit];
    if (v !== undefined) out[limit] = v;
  }
  return out;
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
 * Parses a count that may be zero (`--retries`).
 *
 * @example
 * ```ts
 * parseRetries('0'); // 0
 * ```
 */
export function parseRetries(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgumentError(`expected an integer >= 0, got '${value}'`);
  }
  return n;
}

/**
 * Adds `--broker`, `--transient`, `--expires`, `--serializer`, `--compression`, `--exchange`,
 * `--json`, the decode-limit flags ({@link addLimitOptions}) and (for the commands that run
 * through {@link withBackend}) `--retries`.
 *
 * @param options - `brokerHelp` replaces the `--broker` help; `retries: false` leaves
 *   `--retries` out. @default { retries: true }
 * @example
 * ```ts
 * addResultOptions(new Command('get'));
 * ```
 */
export function addResultOptions(
  cmd: Command,
  options: { brokerHelp?: string; retries?: boolean } = {},
): Command {
  cmd
    .option(
      '--broker <url>',
      options.brokerHelp ?? `broker URL (default: $CELERY_BROKER_URL, else ${DEFAULT_BROKER_URL})`,
    )
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
  addLimitOptions(cmd);
  if (options.retries === false) return cmd;
  return cmd.option(
    '--retries <count>',
    `retries after a connection-level failure, each announced on stderr (default: ${DEFAULT_RETRIES})`,
    parseRetries,
  );
}

/**
 * The broker URL, by Celery's rule: `--broker`, else `CELERY_BROKER_URL`, else
 * `amqp://guest:guest@localhost:5672//`.
 *
 * @example
 * ```ts
 * brokerUrl({}, io); // 'amqp://guest:guest@localhost:5672//' unless CELERY_BROKER_URL is set
 * ```
 */
export function brokerUrl(opts: ResultOptions, io: CliIo): string {
  return resolveBrokerUrl(opts.broker, io.env);
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
  const limits = decodeLimitsFrom(opts);
  if (Object.keys(limits).length > 0) options.decodeLimits = limits;
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
  extra: Partial<AMQPBackendOptions> = {},
): Promise<AMQPBackend> {
  const options: AMQPBackendOptions = { ...backendOptions(opts, brokerUrl(opts, io)), ...extra };
  if (io.createBackend !== undefined) return io.createBackend(options);
  const { AMQPBackend: Backend } = await import('../celery/amqp-backend.js');
  return new Backend(options);
}

/**
 * Runs `fn` with a backend and always closes it, without letting a failing close hide the
 * real error. A connection-level failure (broker down, connection lost; not a refused login)
 * is retried up to `--retries` times with a fresh backend, each retry announced on stderr as
 * `celery-amqp: retrying (3/20): <error>`; the backend itself does not retry, so that nothing
 * is retried silently.
 *
 * @example
 * ```ts
 * await withBackend(opts, io, (b) => b.getTaskMeta(id));
 * ```
 */
export function withBackend<T>(
  opts: ResultOptions,
  io: CliIo,
  fn: (backend: AMQPBackend) => Promise<T>,
): Promise<T> {
  const retries = opts.retries ?? DEFAULT_RETRIES;
  return retryOverTime(() => withOneBackend(opts, io, fn), {
    policy: { ...RETRY_INTERVALS, maxRetries: retries },
    isRecoverable: (err) => isRecoverable(err) && !(err instanceof AbortError),
    onRetry: (err, attempt) => {
      io.stderr.write(`celery-amqp: retrying (${attempt}/${retries}): ${describeError(err)}\n`);
    },
    signal: io.signal,
  });
}

async function withOneBackend<T>(
  opts: ResultOptions,
  io: CliIo,
  fn: (backend: AMQPBackend) => Promise<T>,
): Promise<T> {
  const backend = await openBackend(opts, io, { retryPolicy: { maxRetries: 0 } });
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
