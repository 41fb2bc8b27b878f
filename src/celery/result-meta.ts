/**
 * The result message body (docs/wire.md §3): building it for a store, and decoding and validating
 * it when read back. Kept apart from the backend so the store path, the poll path and
 * getMany share one definition.
 *
 * @module
 */
import { ArgumentError, CeleryAmqpError, ContentDisallowedError, DecodeError } from '../errors.js';
import type { DecodeLimits } from '../kombu/decode-limits.js';
import type { Message } from '../kombu/message.js';
import type { StoreOptions, TaskMeta, TaskRequest } from './backend-types.js';
import { exceptionToMeta } from './exceptions.js';
import { EXCEPTION_STATES, READY_STATES } from './states.js';
import { isoformat } from './task-message.js';

/**
 * Checks a task (or group) id and returns its routing key: the id with every `-` removed.
 *
 * @throws ArgumentError naming the argument when the id is not a non-empty string.
 * @example
 * ```ts
 * routingKeyFor('6f1c-…'); // '6f1c…'
 * ```
 */
export function routingKeyFor(id: unknown, what = 'taskId'): string {
  const checked = checkId(id, what);
  return checked.includes('-') ? checked.replaceAll('-', '') : checked;
}

/**
 * Checks a task (or group) id without building its routing key.
 *
 * @throws ArgumentError naming the argument when the id is not a non-empty string.
 * @example
 * ```ts
 * checkId(taskId); // taskId
 * ```
 */
export function checkId(id: unknown, what = 'taskId'): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new ArgumentError(`${what} must be a non-empty string, got ${describe(id)}`);
  }
  return id;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  return typeof value;
}

/**
 * `children` of a stored result: null without a request, else each child as a result tuple
 * (objects with `asTuple()` are converted; tuples are kept).
 *
 * @example
 * ```ts
 * childrenFor({ children: [[['a', null], null]] }); // [[['a', null], null]]
 * childrenFor(undefined); // null
 * ```
 */
export function childrenFor(request: TaskRequest | undefined): unknown[] | null {
  if (request === undefined || request === null) return null;
  const children = request.children;
  if (children === undefined || children === null) return [];
  return children.map((c) => {
    const asTuple = (c as { asTuple?: unknown } | null)?.asTuple;
    return typeof asTuple === 'function' ? (asTuple as () => unknown).call(c) : c;
  });
}

/**
 * The store options of a FAILURE (both backends' `markAsFailure`): the traceback given, or
 * else the error's stack, so a Python client's `result.traceback` says where it failed.
 * An explicit `null` stores no traceback.
 *
 * @example
 * ```ts
 * failureOptions(new TypeError('bad'), {}).traceback; // 'TypeError: bad\n    at ...'
 * failureOptions(new TypeError('bad'), { traceback: null }).traceback; // null
 * ```
 */
export function failureOptions(error: unknown, options: StoreOptions): StoreOptions {
  if (options.traceback !== undefined) return options;
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : null;
  return Object.assign({}, options, { traceback: stack });
}

/**
 * How a backend lays out a `result_extended` body, as Celery's code does:
 * - `'amqp'`: Celery 4.4.7's AMQP backend (`store_result`): the five keys, then `name`,
 *   `args`, `kwargs`, `worker`, `retries`, `queue` (null without a request).
 * - `'meta'`: Celery's `_get_result_meta`, which the RPC backend uses on Celery's main
 *   branch (commit 7c5d9a62d): the five keys, `date_done` (ISO 8601 UTC when ready, else
 *   null), `group_id` / `parent_id` when the request has them, and, with a request, the
 *   request fields.
 * Both add Celery 5.3's stamps when the request has some: `stamped_headers` and each stamp
 * under its own name (a stamp named like a meta key is left out: it would hide that key).
 */
export type ExtendedLayout = 'amqp' | 'meta';

/** Meta keys a stamp may not replace. */
const META_KEYS = new Set([
  'task_id',
  'status',
  'result',
  'traceback',
  'children',
  'date_done',
  'group_id',
  'parent_id',
  'name',
  'args',
  'kwargs',
  'worker',
  'retries',
  'queue',
  'stamped_headers',
  '__proto__',
  'constructor',
]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The request fields `result_extended` stores (Celery's `request_meta`), stamps included. */
function requestMeta(request: TaskRequest | undefined): Record<string, unknown> {
  const r: TaskRequest = request ?? {};
  const delivery = r['delivery_info'];
  const routingKey = isRecord(delivery) ? delivery['routing_key'] : undefined;
  const out: Record<string, unknown> = {
    name: r['task'] ?? null,
    args: r['args'] ?? null,
    kwargs: r['kwargs'] ?? null,
    worker: r['hostname'] ?? null,
    retries: r['retries'] ?? null,
    queue: routingKey ?? null,
  };
  const stamped = r['stamped_headers'];
  const stamps = isRecord(r['stamps']) ? r['stamps'] : {};
  if (Array.isArray(stamped) && stamped.length > 0) {
    out['stamped_headers'] = stamped;
    for (const header of stamped) {
      if (typeof header !== 'string' || META_KEYS.has(header)) continue;
      out[header] = Object.hasOwn(stamps, header) ? stamps[header] : null;
    }
  }
  return out;
}

/**
 * The body Celery publishes: `{task_id, status, result, traceback, children}`, plus the
 * request fields in the backend's {@link ExtendedLayout} when `result_extended` is on. An
 * Error result under an exception state becomes its exception dict (Celery's `encode_result`).
 *
 * @param extended - The layout when result_extended is on, else null. @default null
 * @param now - The clock for `date_done`, ms since the epoch. @default Date.now()
 * @example
 * ```ts
 * resultBody(id, 2, 'SUCCESS', null, undefined);
 * // { task_id: id, status: 'SUCCESS', result: 2, traceback: null, children: null }
 * ```
 */
export function resultBody(
  taskId: string,
  result: unknown,
  status: string,
  traceback: string | null,
  request: TaskRequest | undefined,
  extended: ExtendedLayout | null = null,
  now: number = Date.now(),
): TaskMeta {
  const encoded = EXCEPTION_STATES.has(status) && result instanceof Error ? exceptionToMeta(result) : result;
  const meta: TaskMeta = {
    task_id: taskId,
    status,
    result: encoded,
    traceback,
    children: childrenFor(request),
  };
  if (extended === 'amqp') return Object.assign(meta, requestMeta(request));
  if (extended === 'meta') {
    meta['date_done'] = READY_STATES.has(status) ? isoformat(new Date(now)) : null;
    if (request !== undefined) {
      if (typeof request.group === 'string' && request.group !== '') meta['group_id'] = request.group;
      const parent = request['parent_id'];
      if (typeof parent === 'string' && parent !== '') meta['parent_id'] = parent;
      Object.assign(meta, requestMeta(request));
    }
  }
  return meta;
}

/**
 * Decodes a message's payload under `limits`, labelled `result of task <id>` (or group),
 * turning any failure into a typed error that names the task and the cause. A limit crossed
 * stays the DecodeLimitError the decoder raised (it names the task and the limit).
 *
 * @param limits - The decode limits in force. @default the message's own (DEFAULT_DECODE_LIMITS)
 * @param what - What the id names. @default 'task'
 * @throws DecodeError / ContentDisallowedError / DecodeLimitError; the code of the cause is kept.
 * @example
 * ```ts
 * const body = decodePayload(message, taskId, backend.decodeLimits);
 * ```
 */
export function decodePayload(
  message: Message,
  taskId: string,
  limits?: Readonly<DecodeLimits>,
  what = 'task',
): unknown {
  if (limits !== undefined) message.limits = limits;
  message.label = `result of ${what} ${taskId}`;
  try {
    return message.payload;
  } catch (err) {
    // Limit errors (and the serializers' own) already say `result of task <id>: ...`.
    if (err instanceof DecodeError && err.message.includes(taskId)) throw err;
    const cause = err instanceof Error ? err.message : String(err);
    const code = err instanceof CeleryAmqpError ? err.code : undefined;
    const text = `Cannot decode the result of ${what} ${taskId}: ${cause}`;
    const options = code === undefined ? { cause: err } : { cause: err, code };
    throw err instanceof ContentDisallowedError
      ? new ContentDisallowedError(text, options)
      : new DecodeError(text, options);
  }
}

/**
 * Decodes and validates a result message into a {@link TaskMeta}: the body must be an
 * object with a string `task_id` and `status`, `traceback` null or a string, `children`
 * null or an array. Extra (result_extended) keys are kept.
 *
 * @param taskId - The id the message was read for (named in errors).
 * @param limits - The decode limits in force. @default DEFAULT_DECODE_LIMITS
 * @throws DecodeError naming the task id and the cause.
 * @example
 * ```ts
 * const meta = decodeMeta(message, taskId, backend.decodeLimits);
 * ```
 */
export function decodeMeta(message: Message, taskId: string, limits?: Readonly<DecodeLimits>): TaskMeta {
  return validateMeta(decodePayload(message, taskId, limits), taskId);
}

/**
 * Validates a decoded body (see {@link decodeMeta}).
 *
 * @throws DecodeError naming the task id and what is wrong.
 * @example
 * ```ts
 * validateMeta({ task_id: 'a', status: 'SUCCESS', result: 1 }, 'a');
 * ```
 */
export function validateMeta(body: unknown, taskId: string): TaskMeta {
  const bad = (why: string): DecodeError =>
    new DecodeError(`Malformed result message for task ${taskId}: ${why}`);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw bad(`the body is ${Array.isArray(body) ? 'an array' : describe(body)}, not an object`);
  }
  const b = body as Record<string, unknown>;
  if (typeof b['task_id'] !== 'string') throw bad('task_id is missing or not a string');
  if (typeof b['status'] !== 'string' || b['status'] === '') throw bad('status is missing or not a string');
  const tb = b['traceback'];
  if (tb !== undefined && tb !== null && typeof tb !== 'string')
    throw bad('traceback is not a string or null');
  const children = b['children'];
  if (children !== undefined && children !== null && !Array.isArray(children)) {
    throw bad('children is not an array or null');
  }
  return {
    ...b,
    task_id: b['task_id'],
    status: b['status'],
    result: b['result'] ?? null,
    traceback: tb ?? null,
    children: children ?? null,
  };
}

/**
 * A meta as the typed view callers asked for (`waitFor<T>`, `AsyncResult<T>`). Unchecked: the
 * result is whatever the worker sent; this is the one place that says so to the compiler.
 *
 * @example
 * ```ts
 * const meta: TaskMeta<number> = typedMeta(await backend.getTaskMeta(id));
 * ```
 */
export function typedMeta<T>(meta: TaskMeta): TaskMeta<T> {
  return meta as TaskMeta<T>;
}

/**
 * The meta reported when nothing is known about a task.
 *
 * @example
 * ```ts
 * pendingMeta(id).status; // 'PENDING'
 * ```
 */
export function pendingMeta(taskId: string): TaskMeta {
  return { task_id: taskId, status: 'PENDING', result: null, traceback: null, children: null };
}
