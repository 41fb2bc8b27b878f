/**
 * Task exceptions and their (de)serialization as Celery sends them under a non-pickle
 * serializer (docs/wire.md §3):
 *
 * - Celery 3.1: `{"exc_type": "<class name>", "exc_message": "<str(exc)>"}`
 * - Celery 4.x / 5.x: `{"exc_type": "<qualname>", "exc_message": [args...], "exc_module": "<module>"}`
 *
 * @module
 */
import { CeleryAmqpError } from '../errors.js';
import { PickledObject } from '../kombu/pickle-values.js';
import { writeValue } from '../kombu/value-writer.js';
import type { ValueFormat } from '../kombu/value-writer.js';
import { FAILURE, REVOKED } from './states.js';
import type { State } from './states.js';

/** An exception in Celery 4.x's serialized form, as {@link exceptionToMeta} builds it. */
export interface ExceptionMeta {
  /** Python class (qualified) name, e.g. `ValueError`. */
  exc_type: string;
  /** The exception's `args`. */
  exc_message: unknown[];
  /** Python module of the class, e.g. `builtins`. */
  exc_module: string;
}

/** What a {@link TaskError} is built from. */
export interface TaskErrorInit {
  /** Python class (qualified) name. */
  excType: string;
  /** Python module, or null when the peer did not send one (Celery 3.1). @default null */
  excModule?: string | null | undefined;
  /** The exception's `args`. @default [] */
  excArgs?: readonly unknown[] | undefined;
  /** The worker's traceback text. @default null */
  traceback?: string | null | undefined;
  /** The task state the error came with. @default 'FAILURE' */
  state?: State | undefined;
  /** Overrides the message computed from the args like Python's `str(exc)`. */
  message?: string | undefined;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A task raised an exception in the worker (state FAILURE), or was revoked (REVOKED).
 * `name` is the Python type name, `message` is Python's `str(exc)`, so `String(err)` reads
 * like the last line of a Python traceback: `ValueError: bad`.
 *
 * @example
 * ```ts
 * try { await result.get(); } catch (err) {
 *   if (err instanceof TaskError && err.excType === 'ValueError') console.log(err.excArgs);
 * }
 * ```
 */
export class TaskError extends CeleryAmqpError {
  /** Python class (qualified) name, e.g. `ValueError`. */
  readonly excType: string;
  /** Python module of the class, or null when unknown (Celery 3.1 does not send it). */
  readonly excModule: string | null;
  /** The exception's `args` (for Celery 3.1: `[str(exc)]`). */
  readonly excArgs: unknown[];
  /** The worker's traceback text, when it sent one. */
  readonly traceback: string | null;
  /** The task state: FAILURE, REVOKED (or another exception state such as RETRY). */
  readonly state: State;

  constructor(init: TaskErrorInit) {
    const args = init.excArgs === undefined ? [] : [...init.excArgs];
    super(
      init.message ?? pythonExceptionStr(init.excType, args),
      'TASK_FAILED',
      init.cause === undefined ? {} : { cause: init.cause },
    );
    this.name = init.excType;
    this.excType = init.excType;
    this.excModule = init.excModule ?? null;
    this.excArgs = args;
    this.traceback = init.traceback ?? null;
    this.state = init.state ?? FAILURE;
  }

  /** `module.Type` when the module is known, else the type name. */
  get pythonType(): string {
    return this.excModule === null ? this.excType : `${this.excModule}.${this.excType}`;
  }
}

/**
 * The task was revoked (Celery's `celery.exceptions.TaskRevokedError`, state REVOKED).
 *
 * @example
 * ```ts
 * err instanceof TaskRevokedError; // the task was revoked or expired before it ran
 * ```
 */
export class TaskRevokedError extends TaskError {
  constructor(init: Partial<TaskErrorInit> = {}) {
    super({
      ...init,
      excType: init.excType ?? 'TaskRevokedError',
      excModule: init.excModule ?? 'celery.exceptions',
      state: init.state ?? REVOKED,
    });
  }
}

/**
 * Polling found more queued states for one task than the backlog limit allows (Celery's
 * `BacklogLimitExceeded`: "Too much state history to fast-forward").
 *
 * @example
 * ```ts
 * throw new BacklogLimitExceeded(taskId);
 * ```
 */
export class BacklogLimitExceeded extends CeleryAmqpError {
  /** The task whose queue held too many states. */
  readonly taskId: string;

  constructor(taskId: string, options: { cause?: unknown } = {}) {
    super(`Too much state history to fast-forward: ${taskId}`, 'BACKLOG_LIMIT_EXCEEDED', options);
    this.taskId = taskId;
  }
}

/**
 * Turns a FAILURE/REVOKED result back into an error. Reads Celery 3.1's
 * `{exc_type, exc_message: "<str>"}` and 4.x's `{exc_type, exc_message: [args], exc_module}`;
 * anything else (a string, null, a number, a dict without `exc_type`) becomes a generic
 * `Exception` carrying the value. Never throws.
 *
 * @param state - The message's status. @default 'FAILURE' ('REVOKED' for a TaskRevokedError)
 * @returns a {@link TaskRevokedError} for state REVOKED or type TaskRevokedError, else a {@link TaskError}.
 * @example
 * ```ts
 * exceptionFromMeta({ exc_type: 'ValueError', exc_message: ['bad'], exc_module: 'builtins' }).message; // 'bad'
 * exceptionFromMeta({ exc_type: 'KeyError', exc_message: "'x'" }).message; // "'x'"
 * ```
 */
export function exceptionFromMeta(result: unknown, traceback?: string | null, state?: string): TaskError {
  const tb = typeof traceback === 'string' ? traceback : null;
  try {
    const init = initFromMeta(result);
    const revoked = state === REVOKED || (state === undefined && init.excType === 'TaskRevokedError');
    const full: TaskErrorInit = {
      ...init,
      traceback: tb,
      state: typeof state === 'string' ? state : revoked ? REVOKED : FAILURE,
    };
    return revoked ? new TaskRevokedError(full) : new TaskError(full);
  } catch (err) {
    // Exotic input (a throwing getter, a revoked Proxy): still hand back an error.
    return new TaskError({
      excType: 'Exception',
      message: 'undecodable task exception',
      traceback: tb,
      cause: err,
    });
  }
}

function initFromMeta(result: unknown): TaskErrorInit {
  if (result instanceof TaskError) {
    return {
      excType: result.excType,
      excModule: result.excModule,
      excArgs: result.excArgs,
      message: result.message,
    };
  }
  if (result instanceof Error) {
    const meta = exceptionToMeta(result);
    return { excType: meta.exc_type, excModule: meta.exc_module, excArgs: meta.exc_message, cause: result };
  }
  if (result instanceof PickledObject) {
    // A pickled exception of a class the pickle reader could not tell was one.
    return { excType: result.__name__, excModule: result.__module__, excArgs: [...(result.args ?? [])] };
  }
  if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
    const meta = result as Record<string, unknown>;
    const type = meta.exc_type;
    if (typeof type === 'string' && type.length > 0) {
      const module = typeof meta.exc_module === 'string' ? meta.exc_module : null;
      const raw = meta.exc_message;
      if (typeof raw === 'string') {
        // 3.1 sends str(exc): it already is the message; the args are lost, keep it as the one arg.
        return { excType: type, excModule: module, excArgs: [raw], message: raw };
      }
      const args = Array.isArray(raw)
        ? [...(raw as unknown[])]
        : raw === undefined || raw === null
          ? []
          : [raw];
      return { excType: type, excModule: module, excArgs: args };
    }
  }
  if (result === null || result === undefined)
    return { excType: 'Exception', excModule: 'builtins', excArgs: [] };
  return { excType: 'Exception', excModule: 'builtins', excArgs: [result] };
}

/**
 * How a JS error's name maps to a Python builtin: same name when Python has it (TypeError,
 * TimeoutError, ...); otherwise the closest Python meaning.
 */
const JS_TO_PYTHON: ReadonlyMap<string, string> = new Map([
  ['Error', 'Exception'],
  // A value outside the allowed range: Python raises ValueError for that.
  ['RangeError', 'ValueError'],
  // At run time JS SyntaxError comes from parsing data (JSON.parse): Python's json raises ValueError.
  ['SyntaxError', 'ValueError'],
  ['URIError', 'ValueError'],
  // An unresolvable identifier: Python's NameError (its ReferenceError is about weakrefs).
  ['ReferenceError', 'NameError'],
  ['EvalError', 'RuntimeError'],
  ['AggregateError', 'Exception'],
]);

const PYTHON_BUILTIN_EXCEPTIONS: ReadonlySet<string> = new Set([
  'BaseException',
  'Exception',
  'ArithmeticError',
  'AssertionError',
  'AttributeError',
  'BlockingIOError',
  'BrokenPipeError',
  'BufferError',
  'ChildProcessError',
  'ConnectionAbortedError',
  'ConnectionError',
  'ConnectionRefusedError',
  'ConnectionResetError',
  'EOFError',
  'EnvironmentError',
  'FileExistsError',
  'FileNotFoundError',
  'FloatingPointError',
  'GeneratorExit',
  'IOError',
  'ImportError',
  'IndentationError',
  'IndexError',
  'InterruptedError',
  'IsADirectoryError',
  'KeyError',
  'KeyboardInterrupt',
  'LookupError',
  'MemoryError',
  'ModuleNotFoundError',
  'NameError',
  'NotADirectoryError',
  'NotImplementedError',
  'OSError',
  'OverflowError',
  'PermissionError',
  'ProcessLookupError',
  'RecursionError',
  'RuntimeError',
  'StopIteration',
  'SyntaxError',
  'SystemError',
  'SystemExit',
  'TabError',
  'TimeoutError',
  'TypeError',
  'UnboundLocalError',
  'UnicodeDecodeError',
  'UnicodeEncodeError',
  'UnicodeError',
  'ValueError',
  'ZeroDivisionError',
]);

/**
 * Module sent for JS error types Python does not know. No such Python module exists, so
 * Celery falls back to creating an exception class of that name (its
 * `create_exception_cls`), which is what we want.
 */
export const JS_EXCEPTION_MODULE = 'nodejs';

/**
 * Serializes an error in Celery 4.x's form, for a worker-side peer or a test double.
 *
 * - A {@link TaskError} round-trips to its own type, module and args (a 3.1 error without a
 *   module gets `builtins` for a Python builtin name, else `celery.exceptions`).
 * - A JS error maps to a Python builtin: same name when Python has one (TypeError,
 *   TimeoutError, ConnectionError...), `Error` → `Exception`, `RangeError`, `SyntaxError`,
 *   `URIError` → `ValueError`, `ReferenceError` → `NameError`, `EvalError` → `RuntimeError`;
 *   any other name is kept with module {@link JS_EXCEPTION_MODULE}. Args are `[message]`
 *   (`[]` for an empty message, as Python's `Exception()`).
 * - A non-error becomes `Exception(value)`.
 *
 * @example
 * ```ts
 * exceptionToMeta(new RangeError('too big'));
 * // { exc_type: 'ValueError', exc_message: ['too big'], exc_module: 'builtins' }
 * ```
 */
export function exceptionToMeta(err: unknown): ExceptionMeta {
  if (err instanceof TaskError) {
    const module =
      err.excModule ?? (PYTHON_BUILTIN_EXCEPTIONS.has(err.excType) ? 'builtins' : 'celery.exceptions');
    return { exc_type: err.excType, exc_message: [...err.excArgs], exc_module: module };
  }
  if (err instanceof Error) {
    const name = typeof err.name === 'string' && err.name.length > 0 ? err.name : 'Error';
    const args = typeof err.message === 'string' && err.message.length > 0 ? [err.message] : [];
    const mapped = JS_TO_PYTHON.get(name);
    if (mapped !== undefined) return { exc_type: mapped, exc_message: args, exc_module: 'builtins' };
    if (PYTHON_BUILTIN_EXCEPTIONS.has(name))
      return { exc_type: name, exc_message: args, exc_module: 'builtins' };
    return { exc_type: name, exc_message: args, exc_module: JS_EXCEPTION_MODULE };
  }
  const arg =
    err === null ||
    typeof err === 'string' ||
    typeof err === 'boolean' ||
    (typeof err === 'number' && Number.isFinite(err))
      ? err
      : String(err);
  return { exc_type: 'Exception', exc_message: err === undefined ? [] : [arg], exc_module: 'builtins' };
}

/**
 * Python's `str(exc)` for an exception of that type and args: `''` for no args, `str(arg)`
 * for one (`repr(arg)` for KeyError), `repr(args)` for several.
 *
 * @example
 * ```ts
 * pythonExceptionStr('KeyError', ['x']); // "'x'"
 * pythonExceptionStr('ValueError', ['a', 1]); // "('a', 1)"
 * ```
 */
export function pythonExceptionStr(excType: string, args: readonly unknown[]): string {
  if (args.length === 0) return '';
  if (args.length === 1) return excType === 'KeyError' ? pythonRepr(args[0]) : pythonStr(args[0]);
  // The args' list repr (one cut for all of them), as a tuple.
  const list = pythonRepr(args);
  return list.endsWith(']') ? `(${list.slice(1, -1)})` : `(${list.slice(1)}`;
}

/**
 * Python's `str()` of a decoded wire value: a string is itself, anything else its repr.
 *
 * @example
 * ```ts
 * pythonStr(['a', null]); // "['a', None]"
 * ```
 */
export function pythonStr(value: unknown): string {
  return typeof value === 'string' ? value : pythonRepr(value);
}

/**
 * Longest text {@link pythonRepr} writes by default: a repr quoted in an error message or a
 * log line, cut with `...` past it.
 */
export const REPR_LIMIT = 4096;

/** Lists/maps nested deeper than this are written `...`, as before the cut existed. */
const REPR_DEPTH = 21;

/** Python's repr syntax for {@link writeValue}. */
const REPR_FORMAT: ValueFormat = Object.freeze({
  leaf: reprLeaf,
  omit: () => false,
  omittedItem: 'None',
  brackets: ['[', ']', '{', '}'] as const,
  separator: ', ',
  key: (key: string) => `${reprString(key)}: `,
  tooDeep: '...',
});

function reprLeaf(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return reprString(value);
    case 'boolean':
      return value ? 'True' : 'False';
    case 'number':
      if (Number.isNaN(value)) return 'nan';
      if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
      return reprNumber(value);
    case 'bigint':
      return String(value);
    case 'undefined':
      return 'None';
    case 'object':
      if (value === null) return 'None';
      return value instanceof Uint8Array ? reprBytes(value) : undefined;
    default:
      return String(value);
  }
}

/**
 * Python's `repr()` of a decoded wire value (None, True, 'str', [..], {..}), cut at
 * `maxLength` characters (ending `...`). Written without recursion and stopped at the cut,
 * so a value whose shared references expand exponentially (a YAML alias bomb) costs no more
 * than the text kept.
 *
 * @param maxLength - Longest text. @default REPR_LIMIT (4096)
 * @example
 * ```ts
 * pythonRepr({ a: true }); // "{'a': True}"
 * ```
 */
export function pythonRepr(value: unknown, maxLength = REPR_LIMIT): string {
  return writeValue(value, REPR_FORMAT, { maxLength, maxDepth: REPR_DEPTH });
}

function reprBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x5c || b === 0x27) out += `\\${String.fromCharCode(b)}`;
    else if (b < 0x20 || b >= 0x7f) out += charEscape(String.fromCharCode(b));
    else out += String.fromCharCode(b);
  }
  return `b'${out}'`;
}

/**
 * Python's float repr: positional for exponents -4..15, else `1.5e-05` style. Integral
 * values print as ints, since JSON does not tell 1 from 1.0.
 */
function reprNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return String(value);
  const [mantissa = '', exp = '0'] = value.toExponential().split('e');
  const e = Number(exp);
  if (e >= -4 && e < 16) return String(value);
  const digits = Math.abs(e).toString().padStart(2, '0');
  return `${mantissa}e${e < 0 ? '-' : '+'}${digits}`;
}

function charEscape(c: string): string {
  switch (c) {
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    case '\t':
      return '\\t';
    default:
      return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  }
}

function reprString(s: string): string {
  // Python prefers single quotes, switching to double when only ' occurs in the text.
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of s) {
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch < ' ' || ch === '\x7f') out += charEscape(ch);
    else out += ch;
  }
  return `${quote}${out}${quote}`;
}
