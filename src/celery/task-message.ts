/**
 * Celery's task message: protocol v2 (what Celery 4.x/5.x send), encoded as Celery 5.2's
 * `app.amqp.as_task_v2` does (with the 5.3/5.4 headers when asked for); protocol v1 (what
 * Celery 3.1 sends and understands), encoded as its `TaskProducer.publish_task` does; both
 * decoded for a Node worker.
 *
 * Facts checked against a message captured from Celery 5.2.6: headers carry 17 keys
 * (`group_index` included), `timelimit` is `[hard, soft]` in seconds, `eta`/`expires` are ISO
 * 8601 with an offset, and a numeric `expires` also becomes the AMQP `expiration` property
 * (per-message TTL in ms, as a string). Celery 5.3 adds `stamped_headers`/`stamps` and 5.4
 * `replaced_task_nesting` (read at v5.6.3); they are sent only when given, so a default
 * message stays byte-for-byte what 5.2 sends.
 *
 * @module
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { ArgumentError, DecodeError } from '../errors.js';
import type { FieldTable } from '../transport/types.js';
import { pythonRepr } from './exceptions.js';

/**
 * The third element of a v2 body: the canvas parts.
 *
 * @example
 * ```ts
 * const embed: TaskEmbed = { callbacks: null, errbacks: null, chain: null, chord: null };
 * ```
 */
export interface TaskEmbed {
  /** Signatures to call with the result. @default null */
  callbacks: unknown[] | null;
  /** Signatures to call on failure. @default null */
  errbacks: unknown[] | null;
  /** Remaining chain (reversed), or null. @default null */
  chain: unknown[] | null;
  /** Chord callback signature, or null. @default null */
  chord: unknown;
}

/**
 * What {@link encodeTaskMessage} needs. Durations are Celery's: seconds (`countdown`,
 * `expires`, the time limits), as `apply_async` takes them.
 *
 * @example
 * ```ts
 * const input: TaskMessageInput = { task: 'tasks.add', args: [2, 3], countdown: 10 }; // eta = now + 10 s
 * ```
 */
export interface TaskMessageInput {
  /** Task id. @default a random UUID */
  id?: string | undefined;
  /** Registered task name, e.g. `'tasks.add'`. */
  task: string;
  /** Positional arguments. @default [] */
  args?: readonly unknown[] | undefined;
  /** Keyword arguments. @default {} */
  kwargs?: Readonly<Record<string, unknown>> | undefined;
  /** Queue the reply goes to (the RPC backend's reply queue), '' for none. @default '' */
  replyTo?: string | undefined;
  /** Delay in seconds before the worker runs it (becomes `eta`). @default undefined */
  countdown?: number | undefined;
  /** Earliest run time. Ignored when `countdown` is given. @default undefined */
  eta?: Date | undefined;
  /** Expiry: seconds from now, or a Date. @default undefined */
  expires?: number | Date | undefined;
  /** Hard time limit in seconds (`timelimit[0]`). @default undefined */
  timeLimit?: number | undefined;
  /** Soft time limit in seconds (`timelimit[1]`). @default undefined */
  softTimeLimit?: number | undefined;
  /** @default 0 */
  retries?: number | undefined;
  /** @default the task id */
  rootId?: string | null | undefined;
  /** @default null */
  parentId?: string | null | undefined;
  /** @default null */
  groupId?: string | null | undefined;
  /** @default null */
  groupIndex?: number | null | undefined;
  /** Name shown in logs instead of the task name. @default null */
  shadow?: string | null | undefined;
  /** @default false */
  ignoreResult?: boolean | undefined;
  /**
   * Stamps (Celery 5.3's canvas stamping): each becomes a header name listed in
   * `stamped_headers`, its value in the `stamps` header. Sent only when given (v2 only).
   * @default undefined
   */
  stamps?: Readonly<Record<string, unknown>> | undefined;
  /** How many times the task was replaced (Celery 5.4's `replaced_task_nesting`), sent when given (v2 only). @default undefined */
  replacedTaskNesting?: number | undefined;
  /** @default Python's `repr(args)`, cut at 1024 characters */
  argsrepr?: string | undefined;
  /** @default Python's `repr(kwargs)`, cut at 1024 characters */
  kwargsrepr?: string | undefined;
  /** @default `gen<pid>@<hostname>` (Celery's anon_nodename) */
  origin?: string | undefined;
  /** Canvas parts. @default all null */
  embed?: Partial<TaskEmbed> | undefined;
  /** Extra headers merged over the protocol's (Celery's `headers=` option). @default {} */
  headers?: FieldTable | undefined;
  /** Clock for eta/expires, ms since the epoch (tests). @default Date.now() */
  now?: number | undefined;
}

/**
 * An encoded task message: the body to serialize, its headers and AMQP properties.
 *
 * @example
 * ```ts
 * const { body, headers, properties } = encodeTaskMessage({ task: 'echo', args: [1] });
 * ```
 */
export interface EncodedTaskMessage {
  /** `[args, kwargs, embed]`. */
  body: [unknown[], Record<string, unknown>, TaskEmbed];
  /** Protocol v2 headers. */
  headers: Record<string, unknown>;
  /** `correlation_id` = task id, `reply_to`, and `expiration` (ms string) when expires is set. */
  properties: { correlationId: string; replyTo: string; expiration?: string };
}

/**
 * The dict body of a protocol v1 task message: the keys Celery 3.1's `publish_task` sends,
 * plus `group` and `group_index` as Celery 4/5's `as_task_v1` adds them (a Celery 4/5 worker
 * reads a v1 body through `hybrid_to_proto2`, which takes the group from `group` only; a 3.1
 * worker keeps extra keys as request attributes).
 *
 * @example
 * ```ts
 * const { body } = encodeTaskMessageV1({ task: 'tasks.add', args: [2, 3] });
 * body.timelimit; // [null, null]
 * ```
 */
export interface TaskBodyV1 {
  /** Task name. */
  task: string;
  /** Task id. */
  id: string;
  /** Positional arguments. */
  args: unknown[];
  /** Keyword arguments. */
  kwargs: Record<string, unknown>;
  /** Retries so far. */
  retries: number;
  /** Earliest run time (ISO 8601) or null. */
  eta: string | null;
  /** Expiry (ISO 8601) or null. */
  expires: string | null;
  /** Dates are UTC (Celery's `enable_utc`); always true here. */
  utc: boolean;
  /** Signatures to call with the result, or null. */
  callbacks: unknown[] | null;
  /** Signatures to call on failure, or null. */
  errbacks: unknown[] | null;
  /** `[hard, soft]` time limits in seconds (null: none). */
  timelimit: [number | null, number | null];
  /** The group id, as Celery 3.1 names it, or null. */
  taskset: string | null;
  /** The group id, as Celery 4/5 workers read it, or null. */
  group: string | null;
  /** The task's index in its group, or null. */
  group_index: number | null;
  /** Chord callback signature, or null. */
  chord: unknown;
}

/**
 * An encoded protocol v1 task message: the dict body, the headers (only the extra ones
 * given: Celery 3.1 sends `{}`) and the properties. No `expiration` property: Celery 3.1
 * leaves expiry to the worker, which stores REVOKED for an expired task.
 *
 * @example
 * ```ts
 * const m: EncodedTaskMessageV1 = encodeTaskMessageV1({ task: 'tasks.add', args: [2, 3] });
 * ```
 */
export interface EncodedTaskMessageV1 {
  /** The v1 body. */
  body: TaskBodyV1;
  /** Message headers: `{}` unless extra ones are given. */
  headers: Record<string, unknown>;
  /** `correlation_id` = task id and `reply_to`. */
  properties: { correlationId: string; replyTo: string };
}

/**
 * A decoded task message, as a worker sees it.
 *
 * @example
 * ```ts
 * const { id, task, args, kwargs, replyTo }: TaskMessage = decodeTaskMessage(message);
 * ```
 */
export interface TaskMessage {
  /** Task id. */
  id: string;
  /** Task name. */
  task: string;
  /** Positional arguments. */
  args: unknown[];
  /** Keyword arguments. */
  kwargs: Record<string, unknown>;
  /** Canvas parts. */
  embed: TaskEmbed;
  /** The v2 headers (for v1: the body's fields). */
  headers: Record<string, unknown>;
  /** Where the result goes (rpc://), or null. */
  replyTo: string | null;
  /** The correlation_id property, or null. */
  correlationId: string | null;
  /** 2, or 1 for a Celery 3.1 body. */
  protocol: 1 | 2;
}

/** Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize`. */
const REPR_MAXSIZE = 1024;

/**
 * Python's `datetime.isoformat()` of an aware UTC datetime: microseconds and `+00:00`, the
 * form Celery sends (`2026-01-01T10:00:00.123000+00:00`).
 *
 * @example
 * ```ts
 * isoformat(new Date(0)); // '1970-01-01T00:00:00.000000+00:00'
 * ```
 */
export function isoformat(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new ArgumentError('invalid date');
  return `${date.toISOString().slice(0, 23)}000+00:00`;
}

/** kombu's `saferepr` cut: keeps the first `max` characters and marks the cut. */
function saferepr(value: unknown): string {
  return pythonRepr(value, REPR_MAXSIZE);
}

/** A duration in seconds, checked: undefined stays null (absent). */
function seconds(value: number | undefined, what: string): number | null {
  if (value === undefined) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ArgumentError(`${what} must be a non-negative number of seconds, got ${String(value)}`);
  }
  return value;
}

/** What both protocols compute alike from the input: checked args, the id and the dates. */
interface Common {
  id: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  eta: string | null;
  expires: string | null;
  /** The per-message TTL in ms (v2 only), or undefined. */
  expiration: string | undefined;
  timelimit: [number | null, number | null];
}

function common(input: TaskMessageInput): Common {
  if (typeof input.task !== 'string' || input.task === '') throw new ArgumentError('task name required');
  const args = input.args ?? [];
  const kwargs = input.kwargs ?? {};
  if (!Array.isArray(args)) throw new ArgumentError('task args must be a list');
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs)) {
    throw new ArgumentError('task keyword arguments must be a mapping');
  }
  const id = input.id ?? randomUUID();
  const now = input.now ?? Date.now();
  let eta: string | null = null;
  const countdown = seconds(input.countdown, 'countdown');
  if (countdown !== null && countdown > 0) eta = isoformat(new Date(now + countdown * 1000));
  else if (input.eta !== undefined) eta = isoformat(input.eta);
  let expires: string | null = null;
  let expiration: string | undefined;
  if (input.expires !== undefined) {
    const at =
      input.expires instanceof Date
        ? input.expires
        : new Date(now + (seconds(input.expires, 'expires') ?? 0) * 1000);
    expires = isoformat(at);
    // Celery 5.2 also sets the per-message TTL (send_task's options['expiration']), never negative.
    expiration = String(Math.max(0, Math.trunc(at.getTime() - now)));
  }
  // Celery's order is [hard, soft] (Request.time_limits unpacks `time_limit, soft_time_limit`).
  const timelimit: [number | null, number | null] = [
    seconds(input.timeLimit, 'timeLimit'),
    seconds(input.softTimeLimit, 'softTimeLimit'),
  ];
  return { id, args: [...args], kwargs: { ...kwargs }, eta, expires, expiration, timelimit };
}

/** The 5.3/5.4 headers, only those given (5.2 sends none of them). */
function laterHeaders(input: TaskMessageInput): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const nesting = input.replacedTaskNesting;
  if (nesting !== undefined) {
    if (!Number.isSafeInteger(nesting) || nesting < 0) {
      throw new ArgumentError(`replacedTaskNesting must be an integer >= 0, got ${String(nesting)}`);
    }
    out['replaced_task_nesting'] = nesting;
  }
  const stamps = input.stamps;
  if (stamps !== undefined) {
    if (stamps === null || typeof stamps !== 'object' || Array.isArray(stamps)) {
      throw new ArgumentError('stamps must be a mapping of stamp names to values');
    }
    out['stamped_headers'] = Object.keys(stamps);
    out['stamps'] = { ...stamps };
  }
  return out;
}

/**
 * Builds a protocol v1 task message as Celery 3.1's `TaskProducer.publish_task` does (with
 * Celery 4/5's `group`/`group_index`): everything in the dict body (see {@link TaskBodyV1}),
 * `utc: true`, the group id as `taskset` and `group`, the canvas parts
 * `callbacks`/`errbacks`/`chord` from `embed`. The v2-only
 * inputs (root/parent ids, shadow, argsrepr, origin, ignoreResult, stamps) have no place in
 * v1 and are not sent.
 *
 * @throws ArgumentError as {@link encodeTaskMessage}.
 * @example
 * ```ts
 * const m = encodeTaskMessageV1({ task: 'tasks.add', args: [2, 3], replyTo: backend.oid });
 * await producer.publish(m.body, { serializer: 'pickle', correlationId: m.properties.correlationId, replyTo: m.properties.replyTo });
 * ```
 */
export function encodeTaskMessageV1(input: TaskMessageInput): EncodedTaskMessageV1 {
  const c = common(input);
  return {
    body: {
      task: input.task,
      id: c.id,
      args: c.args,
      kwargs: c.kwargs,
      retries: input.retries ?? 0,
      eta: c.eta,
      expires: c.expires,
      utc: true,
      callbacks: input.embed?.callbacks ?? null,
      errbacks: input.embed?.errbacks ?? null,
      timelimit: c.timelimit,
      taskset: input.groupId ?? null,
      chord: input.embed?.chord ?? null,
      group: input.groupId ?? null,
      group_index: input.groupIndex ?? null,
    },
    headers: { ...(input.headers ?? {}) },
    properties: { correlationId: c.id, replyTo: input.replyTo ?? '' },
  };
}

/**
 * The fields a `task-sent` event reports, in protocol v2 header names, for a message of
 * either protocol (a v1 message carries them in its body).
 *
 * @example
 * ```ts
 * taskSentFields(sentHeaders(message), queue, exchange, routingKey);
 * ```
 */
export function sentHeaders(message: EncodedTaskMessage | EncodedTaskMessageV1): Record<string, unknown> {
  if (Array.isArray(message.body)) return message.headers;
  const b = message.body;
  return {
    id: b.id,
    task: b.task,
    retries: b.retries,
    eta: b.eta,
    expires: b.expires,
    argsrepr: saferepr(b.args),
    kwargsrepr: saferepr(b.kwargs),
  };
}

/**
 * Builds a protocol v2 task message exactly as Celery 5.2's `as_task_v2` does; `stamps` and
 * `replacedTaskNesting`, when given, add Celery 5.3's `stamped_headers`/`stamps` and 5.4's
 * `replaced_task_nesting` headers.
 *
 * @throws ArgumentError for a missing task name, non-list args, non-object kwargs, a negative
 *   countdown/expires or time limit (seconds), an invalid eta/expires Date, bad stamps.
 * @example
 * ```ts
 * const m = encodeTaskMessage({ task: 'tasks.add', args: [2, 3], replyTo: backend.oid });
 * await producer.publish(m.body, { headers: m.headers, correlationId: m.properties.correlationId, replyTo: m.properties.replyTo });
 * ```
 */
export function encodeTaskMessage(input: TaskMessageInput): EncodedTaskMessage {
  const { id, args, kwargs, eta, expires, expiration, timelimit } = common(input);
  const headers: Record<string, unknown> = {
    lang: 'py',
    task: input.task,
    id,
    shadow: input.shadow ?? null,
    eta,
    expires,
    group: input.groupId ?? null,
    group_index: input.groupIndex ?? null,
    retries: input.retries ?? 0,
    timelimit,
    root_id: input.rootId === undefined || input.rootId === null || input.rootId === '' ? id : input.rootId,
    parent_id: input.parentId ?? null,
    argsrepr: input.argsrepr ?? saferepr(args),
    kwargsrepr: input.kwargsrepr ?? saferepr(kwargs),
    origin: input.origin ?? `gen${process.pid}@${hostname()}`,
    ignore_result: input.ignoreResult ?? false,
    ...laterHeaders(input),
    ...(input.headers ?? {}),
  };
  const embed: TaskEmbed = {
    callbacks: input.embed?.callbacks ?? null,
    errbacks: input.embed?.errbacks ?? null,
    chain: input.embed?.chain ?? null,
    chord: input.embed?.chord ?? null,
  };
  return {
    body: [args, kwargs, embed],
    headers,
    properties: {
      correlationId: id,
      replyTo: input.replyTo ?? '',
      ...(expiration === undefined ? {} : { expiration }),
    },
  };
}

/**
 * The parts of a received message {@link decodeTaskMessage} reads (a kombu Message fits).
 *
 * @example
 * ```ts
 * decodeTaskMessage({ payload: [[1], {}, {}], properties: { headers: { task: 'echo', id } } });
 * ```
 */
export interface RawTaskMessage {
  /** The decoded body. */
  readonly payload: unknown;
  /** AMQP properties (`headers`, `correlationId`, `replyTo`). */
  readonly properties: {
    readonly headers?: FieldTable | undefined;
    readonly correlationId?: string | undefined;
    readonly replyTo?: string | undefined;
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function toEmbed(value: unknown): TaskEmbed {
  const e = isRecord(value) ? value : {};
  const list = (v: unknown): unknown[] | null => (Array.isArray(v) ? v : null);
  return {
    callbacks: list(e['callbacks']),
    errbacks: list(e['errbacks']),
    chain: list(e['chain']),
    chord: e['chord'] ?? null,
  };
}

function nonEmpty(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/**
 * Decodes a task message: protocol v2 (headers `task`/`id`, body `[args, kwargs, embed]`),
 * or protocol v1 (everything in a dict body, Celery 3.1).
 *
 * @throws DecodeError when the message is neither, or args/kwargs have the wrong shape.
 * @example
 * ```ts
 * consumer.registerCallback((_body, message) => {
 *   const { id, task, args, kwargs, replyTo } = decodeTaskMessage(message);
 * });
 * ```
 */
export function decodeTaskMessage(message: RawTaskMessage): TaskMessage {
  const props = message.properties;
  const headers: Record<string, unknown> = { ...(props.headers ?? {}) };
  const body = message.payload;
  const replyTo = nonEmpty(props.replyTo);
  const correlationId = nonEmpty(props.correlationId);
  if (typeof headers['task'] === 'string' && typeof headers['id'] === 'string') {
    if (!Array.isArray(body)) throw new DecodeError('task message v2: body must be [args, kwargs, embed]');
    const [args, kwargs, embed] = body as unknown[];
    if (!Array.isArray(args) || !isRecord(kwargs)) {
      throw new DecodeError('task message v2: args must be a list and kwargs a mapping');
    }
    return {
      id: headers['id'],
      task: headers['task'],
      args,
      kwargs,
      embed: toEmbed(embed),
      headers,
      replyTo,
      correlationId,
      protocol: 2,
    };
  }
  if (isRecord(body) && typeof body['task'] === 'string' && typeof body['id'] === 'string') {
    const args = body['args'] ?? [];
    const kwargs = body['kwargs'] ?? {};
    if (!Array.isArray(args) || !isRecord(kwargs)) {
      throw new DecodeError('task message v1: args must be a list and kwargs a mapping');
    }
    return {
      id: body['id'],
      task: body['task'],
      args,
      kwargs,
      embed: toEmbed(body),
      // Celery 5's proto1_to_proto2: the 3.1 `taskset` is the group.
      headers: { ...body, ...('taskset' in body ? { group: body['taskset'] } : {}) },
      replyTo,
      correlationId,
      protocol: 1,
    };
  }
  throw new DecodeError('not a Celery task message (no task/id in headers or body)');
}

/**
 * When a task may run and when it expires, from its `eta` / `expires` headers, in ms since
 * the epoch (fractional: Celery sends microseconds). `null` when the header is absent.
 *
 * @example
 * ```ts
 * const { eta, expires } = taskTimes(decodeTaskMessage(message));
 * const expired = expires !== null && Date.now() > expires;
 * ```
 */
export interface TaskTimes {
  /** Earliest run time, or null to run at once. */
  eta: number | null;
  /** Expiry time, or null for none. */
  expires: number | null;
}

// Celery 5.2's `celery.utils.iso8601` grammar (what `parse_iso8601` accepts), anchored.
const ISO8601 =
  /^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:.(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[-+]\d{2}:\d{2})?)?)?)?$/;

/**
 * Parses an ISO 8601 date as Celery writes it (`datetime.isoformat()`,
 * `2026-01-01T10:00:00.123456+00:00`) into ms since the epoch, keeping the microseconds as
 * a fraction. A date without an offset is UTC, as on a Celery worker with the default
 * `enable_utc` / `timezone`.
 *
 * @throws DecodeError when the text is not such a date.
 * @example
 * ```ts
 * parseIsoDate('1970-01-01T00:00:01.000500+00:00'); // 1000.5
 * ```
 */
export function parseIsoDate(text: string): number {
  const m = ISO8601.exec(text);
  if (m === null) throw new DecodeError(`unable to parse date string ${pythonRepr(text)}`);
  const [, year = '', month = '1', day = '1', hour = '0', minute = '0', second = '0', fraction, zone] = m;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(utc);
  // Date.UTC rolls over (Feb 30 -> Mar 2); Python's datetime refuses such dates.
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    s > 59
  ) {
    throw new DecodeError(`date out of range: ${pythonRepr(text)}`);
  }
  let offset = 0;
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    offset = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
  }
  const frac = fraction === undefined ? 0 : Number(`0.${fraction}`) * 1000;
  return utc - offset + frac;
}

function timeHeader(value: unknown, what: string): number | null {
  // Celery's maybe_iso8601: an empty value means none.
  if (value === null || value === undefined || value === '' || value === 0 || value === false) return null;
  if (typeof value !== 'string') throw new DecodeError(`invalid ${what} value ${pythonRepr(value)}`);
  try {
    return parseIsoDate(value);
  } catch (err) {
    throw new DecodeError(`invalid ${what} value ${pythonRepr(value)}`, { cause: err });
  }
}

/**
 * Reads a decoded task's `eta` and `expires` (v2 headers; v1 bodies land in `headers` too).
 *
 * @throws DecodeError for a value Celery would refuse as well (its InvalidTaskError): not
 *   an ISO 8601 string.
 * @example
 * ```ts
 * const { eta } = taskTimes(decodeTaskMessage(message));
 * const wait = eta === null ? 0 : Math.max(0, eta - Date.now());
 * ```
 */
export function taskTimes(task: Pick<TaskMessage, 'headers'>): TaskTimes {
  return {
    eta: timeHeader(task.headers['eta'], 'eta'),
    expires: timeHeader(task.headers['expires'], 'expires'),
  };
}
