/**
 * A task message as the worker holds it (Celery's `worker.request.Request`), and the door it
 * comes through: {@link parseRequest} decodes a delivery and checks every field the worker
 * will use (types and sizes), so a hostile message becomes one typed
 * {@link InvalidTaskError}, never a crash or a stuck consumer.
 *
 * @module
 */
import { CeleryAmqpError } from '../../errors.js';
import type { DecodeLimits } from '../../kombu/decode-limits.js';
import type { Message } from '../../kombu/message.js';
import type { TaskRequest } from '../backend-types.js';
import { pythonRepr } from '../exceptions.js';
import { decodeTaskMessage, isoformat, taskTimes } from '../task-message.js';
import type { TaskMessage } from '../task-message.js';
import { InvalidTaskError } from './exceptions.js';
import type { RegisteredTask } from './task-registry.js';

/** Longest id, task name, reply_to, correlation_id, root/parent/group id accepted (AMQP's shortstr). */
export const MAX_NAME_LENGTH = 255;
/** Celery's `argsrepr_maxsize` / `resultrepr_maxsize`: longest repr kept or sent in events. */
export const REPR_MAX = 1024;
/** Longest eta/expires text accepted (an ISO 8601 date is about 32 characters). */
const MAX_DATE_LENGTH = 64;
/** Largest retries count and time limit (seconds, about 31 years) accepted. */
const MAX_RETRIES = 1_000_000_000;
const MAX_LIMIT_SECONDS = 1_000_000_000;
/** Keys refused in kwargs: spread into an object they would replace its prototype or constructor. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Values `info()` walks before it shows the repr instead (a YAML alias bomb is tiny but vast). */
const REPR_NODES = 2000;

/**
 * Where a task message came from (Celery's `delivery_info`).
 *
 * @example
 * ```ts
 * const d: DeliveryInfo = { exchange: '', routing_key: 'celery', priority: 0, redelivered: false };
 * ```
 */
export interface DeliveryInfo {
  /** Exchange it was published to ('' for the default exchange). */
  exchange: string;
  /** Its routing key. */
  routing_key: string;
  /** Its priority property, or null. */
  priority: number | null;
  /** True when the broker delivered it before. */
  redelivered: boolean;
}

/**
 * What the worker tells about a task in its events and `inspect` replies.
 *
 * @example
 * ```ts
 * worker.on('task-succeeded', (task: TaskInfo, result) => console.log(task.name, task.id, result));
 * ```
 */
export interface TaskInfo {
  /** The task id. */
  readonly id: string;
  /** The name shown (the message's `shadow` when set, else the task name). */
  readonly name: string;
  /** The registered task name. */
  readonly type: string;
  /** Positional arguments. */
  readonly args: unknown[];
  /** Keyword arguments. */
  readonly kwargs: Record<string, unknown>;
  /** Retries so far (0 for the first run). */
  readonly retries: number;
  /** Earliest run time, ms since the epoch, or null. */
  readonly eta: number | null;
  /** Expiry, ms since the epoch, or null. */
  readonly expires: number | null;
  /** When it started running, seconds since the epoch, or null. */
  readonly timeStart: number | null;
}

/**
 * A received task: the decoded message, its checked headers and its settle state.
 *
 * @example
 * ```ts
 * const req = parseRequest(message, 'node1@host');
 * req.info(); // what `celery inspect active` shows
 * ```
 */
export class Request implements TaskInfo {
  readonly id: string;
  readonly name: string;
  readonly type: string;
  readonly message: Message;
  readonly task: TaskMessage;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown>;
  retries = 0;
  readonly rootId: string | null;
  readonly parentId: string | null;
  readonly argsrepr: string;
  readonly kwargsrepr: string;
  /** Store nothing: the message's `ignore_result`, or the task's option. */
  ignoreResult: boolean;
  readonly deliveryInfo: DeliveryInfo;
  /** What the result backend stores with (correlation_id, reply_to, group, ...). */
  readonly request: TaskRequest;
  readonly hostname: string;
  eta: number | null = null;
  expires: number | null = null;
  /** `[hard, soft]` seconds from the message's `timelimit` header (null: none). */
  timeLimits: readonly [number | null, number | null] = [null, null];
  timeStart: number | null = null;
  /** The registered task, once looked up (undefined for an unknown task). */
  registered: RegisteredTask | undefined;
  /** Set once the task is done, revoked or abandoned: nothing more is stored for it. */
  finished = false;
  #abort: AbortController | undefined;

  constructor(message: Message, task: TaskMessage, hostname: string) {
    this.message = message;
    this.task = task;
    this.hostname = hostname;
    this.id = task.id;
    this.type = task.task;
    const h = task.headers;
    this.name = typeof h['shadow'] === 'string' && h['shadow'] !== '' ? h['shadow'] : task.task;
    this.args = task.args;
    this.kwargs = task.kwargs;
    this.rootId = optionalId(h['root_id'], 'root_id', task);
    this.parentId = optionalId(h['parent_id'], 'parent_id', task);
    this.argsrepr = reprHeader(h['argsrepr'], task.args);
    this.kwargsrepr = reprHeader(h['kwargsrepr'], task.kwargs);
    this.ignoreResult = h['ignore_result'] === true;
    const info = message.deliveryInfo;
    const priority = message.properties.priority;
    this.deliveryInfo = {
      exchange: info.exchange,
      routing_key: info.routingKey,
      priority: typeof priority === 'number' ? priority : null,
      redelivered: info.redelivered,
    };
    this.request = {
      id: task.id,
      task: task.task,
      args: task.args,
      kwargs: task.kwargs,
      correlation_id: task.correlationId ?? task.id,
      reply_to: task.replyTo,
      group: optionalId(h['group'], 'group', task),
      parent_id: this.parentId,
      root_id: this.rootId,
      hostname,
      retries: 0,
      delivery_info: this.deliveryInfo,
      children: [],
      ...stampsOf(task),
    };
  }

  /** True once acked, rejected or requeued. */
  get acknowledged(): boolean {
    return this.message.acknowledged;
  }

  /**
   * The handler's AbortSignal, made on first use: most handlers never look at it, and an
   * AbortController per task would cost every task.
   */
  get signal(): AbortSignal {
    this.#abort ??= new AbortController();
    return this.#abort.signal;
  }

  /** Aborts the handler's signal with `reason` (once; later reasons are ignored). */
  abort(reason: Error): void {
    this.#abort ??= new AbortController();
    if (!this.#abort.signal.aborted) this.#abort.abort(reason);
  }

  /** Acks unless already settled; false when its channel is gone (the broker requeued it). */
  ack(): boolean {
    return this.message.acknowledged ? false : this.message.ack();
  }

  /** Rejects (with or without requeue) unless already settled. */
  reject(requeue: boolean): boolean {
    return this.message.acknowledged ? false : this.message.reject({ requeue });
  }

  /**
   * Celery's `Request.info()`: what `inspect active` / `reserved` / `scheduled` show. With
   * `safe`, args and kwargs are their repr strings.
   */
  info(safe = false): Record<string, unknown> {
    return {
      id: this.id,
      name: this.name,
      args: safe || !isSmall(this.args) ? this.argsrepr : this.args,
      kwargs: safe || !isSmall(this.kwargs) ? this.kwargsrepr : this.kwargs,
      type: this.type,
      hostname: this.hostname,
      time_start: this.timeStart,
      acknowledged: this.acknowledged,
      delivery_info: this.deliveryInfo,
      worker_pid: this.timeStart === null ? null : process.pid,
    };
  }

  /** `name[id]`, as Celery's log lines name a task. */
  toString(): string {
    return `${this.name}[${this.id}]`;
  }
}

/**
 * Reads a delivery at the worker's door: decodes the body, checks the protocol v2 (or v1)
 * shape and the fields every task needs (id, task name, args, kwargs, reply_to,
 * correlation_id, root/parent/group ids). Dates, retries and time limits are checked by
 * {@link checkSchedule} once the task is known to be registered (Celery answers an unknown
 * task with NotRegistered before it looks at its eta).
 *
 * The body is decoded under `limits`, labelled `task <id>` (the id header) so that a limit
 * error names the task.
 *
 * @param limits - The worker's decode limits. @default the message's own (DEFAULT_DECODE_LIMITS)
 * @throws InvalidTaskError (code of the cause when the body could not be decoded:
 *   DECODE_ERROR, CONTENT_DISALLOWED, BODY_TOO_LARGE, TOO_DEEP, TOO_MANY_ALIASES, ...).
 * @example
 * ```ts
 * try { parseRequest(message, hostname, limits); } catch (err) { message.reject({ requeue: false }); }
 * ```
 */
export function parseRequest(message: Message, hostname: string, limits?: Readonly<DecodeLimits>): Request {
  const headers = message.properties.headers ?? {};
  const id = shortString(headers['id']);
  if (limits !== undefined) message.limits = limits;
  message.label = id === null ? 'task message' : `task ${id}`;
  let task: TaskMessage;
  try {
    task = decodeTaskMessage(message);
  } catch (err) {
    const name = shortString(headers['task']);
    const code = err instanceof CeleryAmqpError ? err.code : 'DECODE_ERROR';
    throw new InvalidTaskError(`invalid task message: ${errorText(err)}`, id, name, { cause: err, code });
  }
  checkName(task.id, 'id', task);
  checkName(task.task, 'task', task);
  if (task.replyTo !== null) checkName(task.replyTo, 'reply_to', task);
  if (task.correlationId !== null) checkName(task.correlationId, 'correlation_id', task);
  for (const key of Object.keys(task.kwargs)) {
    if (FORBIDDEN_KEYS.has(key)) invalid(task, `kwargs must not have the key ${JSON.stringify(key)}`);
  }
  return new Request(message, task, hostname);
}

/**
 * Reads and checks eta, expires, retries and timelimit (Celery's InvalidTaskError cases, and
 * values of the wrong type or an absurd size) into the request.
 *
 * @throws InvalidTaskError naming the field.
 */
export function checkSchedule(req: Request): void {
  const h = req.task.headers;
  for (const key of ['eta', 'expires']) {
    const v = h[key];
    if (typeof v === 'string' && v.length > MAX_DATE_LENGTH) invalid(req.task, `${key} is too long`);
  }
  try {
    const times = taskTimes(req.task);
    req.eta = times.eta;
    req.expires = times.expires;
  } catch (err) {
    invalid(req.task, errorText(err), err);
  }
  const retries = h['retries'];
  if (retries !== undefined && retries !== null) {
    if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
      invalid(req.task, `retries must be a non-negative integer, got ${short(retries)}`);
    }
    req.retries = retries;
    req.request['retries'] = retries;
  }
  const limits = h['timelimit'];
  if (limits !== undefined && limits !== null) {
    if (!Array.isArray(limits) || limits.length > 2) {
      invalid(req.task, `timelimit must be [hard, soft], got ${short(limits)}`);
    }
    const pair: unknown[] = limits;
    const [hard = null, soft = null] = pair;
    req.timeLimits = [limitValue(hard, req.task), limitValue(soft, req.task)];
  }
}

/**
 * Celery 5.3's stamps of a message (its `Request.stamped_headers` / `stamps`): the names in
 * `stamped_headers`, each with its value from the `stamps` header (null when missing), for
 * the result meta (result_extended). Absent: nothing.
 *
 * @throws InvalidTaskError when `stamped_headers` is not a list of names or `stamps` not a mapping.
 */
function stampsOf(task: TaskMessage): { stamped_headers?: string[]; stamps?: Record<string, unknown> } {
  const names = task.headers['stamped_headers'];
  const values = task.headers['stamps'];
  if (names === undefined || names === null) return {};
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n.length > MAX_NAME_LENGTH)) {
    invalid(task, `stamped_headers must be a list of header names, got ${short(names)}`);
  }
  const isMapping = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (values !== undefined && values !== null && !isMapping(values)) {
    invalid(task, `stamps must be a mapping, got ${short(values)}`);
  }
  const given: Record<string, unknown> = isMapping(values) ? values : {};
  const stamps: Record<string, unknown> = {};
  for (const name of names) {
    // Defined, not assigned: a stamp named __proto__ stays a plain key.
    Object.defineProperty(stamps, name, {
      value: Object.hasOwn(given, name) ? given[name] : null,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { stamped_headers: [...names], stamps };
}

function limitValue(v: unknown, task: TaskMessage): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_LIMIT_SECONDS) {
    invalid(task, `time limits must be null or seconds, got ${short(v)}`);
  }
  // Celery treats 0 as no limit (`soft_time_limit or task.soft_time_limit`).
  return v === 0 ? null : v;
}

function checkName(value: string, what: string, task: TaskMessage): void {
  if (value.length === 0 || value.length > MAX_NAME_LENGTH) {
    invalid(task, `${what} must be 1 to ${MAX_NAME_LENGTH} characters, got ${value.length}`);
  }
}

function optionalId(value: unknown, what: string, task: TaskMessage): string | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value !== 'string') invalid(task, `${what} must be a string or null, got ${short(value)}`);
  checkName(value, what, task);
  return value;
}

function invalid(task: TaskMessage, why: string, cause?: unknown): never {
  const id = task.id.length <= MAX_NAME_LENGTH ? task.id : null;
  const name = task.task.length <= MAX_NAME_LENGTH ? task.task : null;
  throw new InvalidTaskError(
    `invalid task message${name === null ? '' : ` for ${name}`}${id === null ? '' : `[${id}]`}: ${why}`,
    id,
    name,
    cause === undefined ? {} : { cause },
  );
}

function shortString(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_LENGTH ? value : null;
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > REPR_MAX ? `${text.slice(0, REPR_MAX)}...` : text;
}

/** A value named in an error message: its repr, cut short. */
function short(value: unknown): string {
  return boundedRepr(value, 64);
}

/** The argsrepr/kwargsrepr header when it is a string (cut at 1024), else a repr of the value. */
function reprHeader(header: unknown, value: unknown): string {
  if (typeof header === 'string') return cut(header, REPR_MAX);
  return boundedRepr(value, REPR_MAX);
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/**
 * Python's `saferepr`: the repr cut at `max` characters. The work is bounded by the text
 * kept, so a YAML alias bomb (shared references that expand exponentially) costs no more
 * than a short list.
 *
 * @example
 * ```ts
 * boundedRepr([1, 'a']); // "[1, 'a']"
 * ```
 */
export function boundedRepr(value: unknown, max = REPR_MAX): string {
  return pythonRepr(value, max);
}

/** True when walking the value visits at most {@link REPR_NODES} values. */
function isSmall(value: unknown): boolean {
  let budget = REPR_NODES;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (--budget < 0) return false;
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) continue;
    if (Array.isArray(v)) {
      if (v.length > budget) return false;
      for (const item of v) stack.push(item);
    } else {
      const values = Object.values(v);
      if (values.length > budget) return false;
      for (const item of values) stack.push(item);
    }
  }
  return true;
}

/** An eta/expires for events and `inspect scheduled`: Celery's isoformat, or null. */
export function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : isoformat(new Date(ms));
}
