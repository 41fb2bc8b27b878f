/**
 * Result backend settings: Celery 4.x lower-case names and the 3.1 upper-case names, in
 * Celery's units, resolved to one camelCase object in milliseconds (docs/wire.md §1).
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import { compressionMimeFor } from '../kombu/compression.js';
import { prepareAcceptContent, serializerByName } from '../kombu/serialization.js';

/** Settings as Celery spells them; each has a 4.x name and a 3.1 name. */
export interface CelerySettings {
  /** Result exchange name. @default 'celeryresults' */
  result_exchange: string;
  /** Result exchange type. @default 'direct' */
  result_exchange_type: string;
  /** Durable exchange and queues, delivery_mode 2. @default true */
  result_persistent: boolean;
  /**
   * Seconds before an unused result queue expires (`x-expires`); null for never. 0 is
   * refused: Celery sends it as `x-expires: 0`, which RabbitMQ answers with 406. @default 86400
   */
  result_expires: number | null;
  /** Serializer name for result bodies. @default 'json' */
  result_serializer: string;
  /** Serializer names or MIME types accepted when decoding. @default ['json'] */
  accept_content: readonly string[];
  /**
   * READY results kept in memory, so a result read once (and consumed) is still there for
   * the next read in this process: -1 off (Celery 4.x's default), 0 unlimited, n most recently
   * used. @default 10000 ({@link DEFAULT_RESULT_CACHE_MAX})
   */
  result_cache_max: number;
  /**
   * Compression method name or MIME type for result bodies, or null. Celery 4+'s AMQP and
   * RPC backends never compress results (4.0-5.2 used this setting, by mistake, as the
   * default compression of task messages: celery#4838); here it compresses results, which
   * every kombu reader decompresses by the `compression` header. @default null
   */
  result_compression: string | null;
  /** 3.1 name of {@link CelerySettings.result_exchange}. */
  CELERY_RESULT_EXCHANGE: string;
  /** 3.1 name of {@link CelerySettings.result_exchange_type}. */
  CELERY_RESULT_EXCHANGE_TYPE: string;
  /** 3.1 name of {@link CelerySettings.result_persistent}. */
  CELERY_RESULT_PERSISTENT: boolean;
  /** 3.1 name of {@link CelerySettings.result_expires}. */
  CELERY_TASK_RESULT_EXPIRES: number | null;
  /** 3.1 name of {@link CelerySettings.result_serializer}. */
  CELERY_RESULT_SERIALIZER: string;
  /** 3.1 name of {@link CelerySettings.accept_content}. */
  CELERY_ACCEPT_CONTENT: readonly string[];
  /** 3.1 name of {@link CelerySettings.result_cache_max}. */
  CELERY_MAX_CACHED_RESULTS: number;
  /**
   * Store the request with each result (Celery 4.3+'s `result_extended`): the task's name,
   * args, kwargs, worker, retries and queue, and its stamps (5.3). @default false
   */
  result_extended: boolean;
  /** Old name of {@link CelerySettings.result_extended}. */
  CELERY_RESULT_EXTENDED: boolean;
  /** Old name of {@link CelerySettings.result_compression} (Celery 4's `CELERY_RESULT_` namespace). */
  CELERY_RESULT_COMPRESSION: string | null;
  /**
   * Celery 3.1's one compression setting, the old name of `task_compression` (the app's
   * task messages). In 3.1 the result backends published through the app's task producer,
   * so results were compressed with it too: here it is the result compression when
   * `result_compression` is not given. @default null
   */
  CELERY_MESSAGE_COMPRESSION: string | null;
}

/** Resolved settings: camelCase, times in milliseconds, validated. */
export interface ResolvedSettings {
  /** Result exchange name. */
  readonly exchange: string;
  /** Result exchange type. */
  readonly exchangeType: string;
  /** Durable entities and persistent delivery. */
  readonly persistent: boolean;
  /** Queue `x-expires` in ms, or null for none. */
  readonly expiresMs: number | null;
  /** Serializer name for published results. */
  readonly serializer: string;
  /** Accepted serializer names / MIME types, as given. */
  readonly accept: readonly string[];
  /** Result cache size: -1 off, 0 unlimited, n most recent. */
  readonly cacheMax: number;
  /** Compression MIME type for published results, or null. */
  readonly compression: string | null;
  /** Store the request's fields with each result (result_extended). */
  readonly extended: boolean;
}

type Key = keyof ResolvedSettings;

/** 4.x name and 3.1 name for each resolved setting. */
const NAMES: Readonly<Record<Key, readonly [keyof CelerySettings, keyof CelerySettings]>> = {
  exchange: ['result_exchange', 'CELERY_RESULT_EXCHANGE'],
  exchangeType: ['result_exchange_type', 'CELERY_RESULT_EXCHANGE_TYPE'],
  persistent: ['result_persistent', 'CELERY_RESULT_PERSISTENT'],
  expiresMs: ['result_expires', 'CELERY_TASK_RESULT_EXPIRES'],
  serializer: ['result_serializer', 'CELERY_RESULT_SERIALIZER'],
  accept: ['accept_content', 'CELERY_ACCEPT_CONTENT'],
  cacheMax: ['result_cache_max', 'CELERY_MAX_CACHED_RESULTS'],
  compression: ['result_compression', 'CELERY_RESULT_COMPRESSION'],
  extended: ['result_extended', 'CELERY_RESULT_EXTENDED'],
};

/** Known without a resolved field of their own: the fallback of result compression. */
const FALLBACKS = ['CELERY_MESSAGE_COMPRESSION'] as const;

const KNOWN = new Set<string>([...Object.values(NAMES).flat(), ...FALLBACKS]);

/**
 * The default result cache size (`result_cache_max`): 10,000 READY metas, least recently used
 * first out. Celery 4.x defaults to -1 (no cache), which makes a result consumed by one read
 * (waitFor, get) invisible to the next one; a bounded cache keeps ready results final for
 * every later read in the process at a bounded memory cost. `-1` restores Celery's behaviour.
 */
export const DEFAULT_RESULT_CACHE_MAX = 10_000;

/**
 * Celery 4.x defaults (docs/wire.md §1), except the result cache ({@link DEFAULT_RESULT_CACHE_MAX}).
 */
export const DEFAULT_SETTINGS: ResolvedSettings = Object.freeze({
  exchange: 'celeryresults',
  exchangeType: 'direct',
  persistent: true,
  expiresMs: 86_400_000,
  serializer: 'json',
  accept: Object.freeze(['json']),
  cacheMax: DEFAULT_RESULT_CACHE_MAX,
  compression: null,
  extended: false,
});

/**
 * A queue expiry in seconds (Celery's `result_expires` and the backends' `expires`) as the
 * `x-expires` milliseconds, truncated like Celery's `int(expires * 1000)`. null means none.
 *
 * 0 is refused here, up front: Celery (3.1 to 5.x) passes it through kombu, which drops only
 * None, so it declares `x-expires: 0`, and RabbitMQ closes the channel with 406
 * PRECONDITION_FAILED ("invalid arg 'x-expires' ... {value_zero,0}") on the first result.
 *
 * @param what - The option's name, for the error.
 * @throws ArgumentError for 0 (naming the setting, Celery's behaviour and the fix), and for
 *   anything else than null or 0.001-2147483.647 seconds.
 * @example
 * ```ts
 * expiresToMs(3600, 'expires'); // 3_600_000
 * expiresToMs(null, 'expires'); // null
 * ```
 */
export function expiresToMs(seconds: unknown, what: string): number | null {
  if (seconds === null) return null;
  if (seconds === 0) {
    throw new ArgumentError(
      `${what}: 0 is refused. Celery sends it as the queue argument x-expires 0, which RabbitMQ ` +
        `refuses (406 PRECONDITION_FAILED, invalid arg 'x-expires' {value_zero,0}) when the first ` +
        `result queue is declared; use null for result queues that never expire`,
    );
  }
  if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0) {
    const ms = Math.trunc(seconds * 1000);
    // x-expires is a signed 32-bit int on the wire and RabbitMQ refuses 0.
    if (ms < 1 || ms > 0x7fffffff) {
      throw new ArgumentError(`${what} must be between 0.001 and 2147483.647 seconds, got ${seconds}`);
    }
    return ms;
  }
  throw new ArgumentError(`${what} must be a number of seconds or null, got ${String(seconds)}`);
}

const EXCHANGE_TYPES = new Set(['direct', 'topic', 'fanout', 'headers']);

/**
 * Resolves settings given with Celery 4.x or 3.1 names into {@link ResolvedSettings},
 * filling in 4.x defaults. `undefined` values count as unset.
 *
 * `result_expires` is in seconds, as in Celery, and becomes `expiresMs` (truncated, like
 * Celery's `int(expires * 1000)`); null means no `x-expires`; 0 is refused (see
 * {@link expiresToMs}).
 *
 * @throws {@link ArgumentError} for an unknown key (a typo), the same setting given under
 * both names with different values, or an invalid value (unknown serializer, pickle as
 * result serializer, unknown compression, a negative or 0 expiry, ...).
 * @example
 * ```ts
 * resolveSettings({ CELERY_TASK_RESULT_EXPIRES: 3600, result_serializer: 'msgpack' });
 * // { exchange: 'celeryresults', ..., expiresMs: 3_600_000, serializer: 'msgpack', ... }
 * ```
 */
export function resolveSettings(input: Partial<CelerySettings> = {}): ResolvedSettings {
  if (input === null || typeof input !== 'object') throw new ArgumentError('settings must be an object');
  for (const key of Object.keys(input)) {
    if (!KNOWN.has(key)) {
      throw new ArgumentError(`unknown setting ${JSON.stringify(key)}; known: ${[...KNOWN].join(', ')}`);
    }
  }
  const raw = input as Readonly<Record<string, unknown>>;
  const pick = (key: Key): unknown => {
    const [modern, legacy] = NAMES[key];
    const a = raw[modern];
    const b = raw[legacy];
    if (a !== undefined && b !== undefined && !sameValue(a, b)) {
      throw new ArgumentError(`conflicting settings ${modern} and ${legacy}: give only one`);
    }
    return a !== undefined ? a : b;
  };
  const name = (key: Key): string => NAMES[key].join('/');

  const exchange = pick('exchange') ?? DEFAULT_SETTINGS.exchange;
  if (typeof exchange !== 'string' || exchange.length === 0) {
    throw new ArgumentError(`${name('exchange')} must be a non-empty string`);
  }
  const exchangeType = pick('exchangeType') ?? DEFAULT_SETTINGS.exchangeType;
  if (typeof exchangeType !== 'string' || !EXCHANGE_TYPES.has(exchangeType)) {
    throw new ArgumentError(`${name('exchangeType')} must be one of ${[...EXCHANGE_TYPES].join(', ')}`);
  }
  const persistent = pick('persistent') ?? DEFAULT_SETTINGS.persistent;
  if (typeof persistent !== 'boolean') throw new ArgumentError(`${name('persistent')} must be a boolean`);

  const expires = pick('expiresMs');
  const expiresMs =
    expires === undefined ? DEFAULT_SETTINGS.expiresMs : expiresToMs(expires, name('expiresMs'));

  const serializer = pick('serializer') ?? DEFAULT_SETTINGS.serializer;
  if (typeof serializer !== 'string') throw new ArgumentError(`${name('serializer')} must be a string`);
  if (serializer === 'pickle') {
    throw new ArgumentError(`${name('serializer')}: pickle is not supported; use json, msgpack or yaml`);
  }
  if (serializerByName(serializer) === undefined) {
    throw new ArgumentError(`${name('serializer')}: unknown serializer ${JSON.stringify(serializer)}`);
  }

  const acceptRaw = pick('accept') ?? DEFAULT_SETTINGS.accept;
  const acceptList = typeof acceptRaw === 'string' ? acceptRaw.split(',').map((s) => s.trim()) : acceptRaw;
  if (!Array.isArray(acceptList) || acceptList.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new ArgumentError(`${name('accept')} must be a list of serializer names or MIME types`);
  }
  try {
    prepareAcceptContent(acceptList as string[]);
  } catch (err) {
    throw new ArgumentError(`${name('accept')}: ${(err as Error).message}`, { cause: err });
  }
  const accept = Object.freeze([...new Set(acceptList as string[])]);

  const cacheMax = pick('cacheMax') ?? DEFAULT_SETTINGS.cacheMax;
  if (typeof cacheMax !== 'number' || !Number.isSafeInteger(cacheMax) || cacheMax < -1) {
    throw new ArgumentError(`${name('cacheMax')} must be an integer >= -1`);
  }

  const given = pick('compression');
  const compression =
    given !== undefined
      ? compressionMime(given, name('compression'))
      : compressionMime(raw['CELERY_MESSAGE_COMPRESSION'], 'CELERY_MESSAGE_COMPRESSION');

  const extended = pick('extended') ?? DEFAULT_SETTINGS.extended;
  if (typeof extended !== 'boolean') throw new ArgumentError(`${name('extended')} must be a boolean`);

  return Object.freeze({
    exchange,
    exchangeType,
    persistent,
    expiresMs,
    serializer,
    accept,
    cacheMax,
    compression,
    extended,
  });
}

/**
 * A compression setting as its MIME type, or null when unset.
 *
 * @param what - The setting's name(s), for the error.
 * @throws ArgumentError naming the setting for an unknown compression.
 * @example
 * ```ts
 * compressionMime('zlib', 'task_compression'); // 'application/x-gzip'
 * ```
 */
export function compressionMime(value: unknown, what: string): string | null {
  if (value === undefined || value === null) return null;
  const mime = typeof value === 'string' ? compressionMimeFor(value) : undefined;
  if (mime === undefined) throw new ArgumentError(`${what}: unknown compression ${JSON.stringify(value)}`);
  return mime;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
  return Object.is(a, b);
}
