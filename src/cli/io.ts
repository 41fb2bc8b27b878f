/**
 * The CLI's view of the outside world and its output conventions: every command writes
 * through a {@link CliIo} (so tests pass their own streams), results go to stdout as JSON
 * lines or readable text, and failures become one redacted line on stderr plus an exit code.
 *
 * @module
 */
import type { Writable } from 'node:stream';
import { SingleBar } from 'cli-progress';
import type { AMQPBackend } from '../celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../celery/backend-options.js';
import { AbortError, CeleryAmqpError, TimeoutError, redact } from '../errors.js';
import { DEFAULT_DECODE_LIMITS } from '../kombu/decode-limits.js';
import { JSON_FORMAT, writeJson } from '../kombu/value-writer.js';
import type { ValueFormat, WriteLimits } from '../kombu/value-writer.js';

/** Exit codes of `celery-amqp`. */
export const EXIT = {
  OK: 0,
  /** Any failure that is not one of the others (broker refused, bad value, ...). */
  ERROR: 1,
  /** Bad command line: unknown command or option, missing or malformed argument. */
  USAGE: 2,
  /** A wait ran out of time before the result(s) arrived. */
  TIMEOUT: 3,
  /** Interrupted (SIGINT), as shells report 128 + 2. */
  INTERRUPTED: 130,
} as const;

/** One of the {@link EXIT} values. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * Everything a command may touch besides the broker. Defaults to the process's own.
 *
 * @example
 * ```ts
 * await main(['get', id], { stdout: myStream, stderr: myErr, env: {}, isTTY: { stdout: false, stderr: false } });
 * ```
 */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  /** Environment variables (`CELERY_BROKER_URL`). */
  env: Record<string, string | undefined>;
  /** Whether each stream is a terminal: text output and progress bars depend on it. */
  isTTY: { stdout: boolean; stderr: boolean };
  /** Cancels long waits (SIGINT in the real process). */
  signal?: AbortSignal;
  /** Makes the backend; defaults to `new AMQPBackend(options)`. Tests inject fakes here. */
  createBackend?: (options: AMQPBackendOptions) => AMQPBackend | Promise<AMQPBackend>;
}

/**
 * The io of the running process.
 *
 * @example
 * ```ts
 * const io = processIo();
 * ```
 */
export function processIo(): CliIo & { dispose(): void } {
  // Ctrl-C aborts the current wait so the backend closes its connection (and consumers)
  // cleanly instead of the process dying mid-way.
  const controller = new AbortController();
  const onSigint = (): void => {
    controller.abort();
    // Commands without a cancellable wait (demo, bench) would otherwise ignore Ctrl-C, now
    // that a listener replaced Node's default exit: give the abort a second, then leave.
    setTimeout(() => process.exit(EXIT.INTERRUPTED), 1000).unref();
  };
  process.once('SIGINT', onSigint);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    isTTY: { stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true },
    signal: controller.signal,
    dispose: () => process.removeListener('SIGINT', onSigint),
  };
}

/**
 * An expected failure: printed as one line (no stack) and mapped to its exit code.
 *
 * @example
 * ```ts
 * throw new CliError('invalid JSON result: Unexpected token', EXIT.USAGE);
 * ```
 */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = EXIT.ERROR, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * Where results go: JSON lines when asked for or when stdout is not a terminal (scripts,
 * pipes), readable text otherwise.
 *
 * @example
 * ```ts
 * const out = new Output(io, opts.json === true);
 * out.result(meta, () => `${meta.task_id} ${meta.status}`);
 * ```
 */
export class Output {
  /** True when results are printed as JSON lines. */
  readonly json: boolean;
  /** What one printed value may cost: the decode limits in force. @default DEFAULT_DECODE_LIMITS */
  readonly limits: WriteLimits;
  readonly #io: CliIo;

  constructor(io: CliIo, json: boolean, limits: WriteLimits = DEFAULT_DECODE_LIMITS) {
    this.#io = io;
    this.json = json || !io.isTTY.stdout;
    this.limits = limits;
  }

  /**
   * Prints one result: one JSON line, or the text `describe` makes.
   *
   * @param label - Names the value in an output-limit error, e.g. `result of task <id>`. @default undefined
   * @throws EncodeLimitError for a value past {@link limits}: nothing is printed.
   */
  result(value: unknown, describe: () => string, label?: string): void {
    this.#io.stdout.write(this.json ? `${this.toJson(value, label)}\n` : `${describe()}\n`);
  }

  /** {@link toJsonLine} under this output's limits. */
  toJson(value: unknown, label?: string): string {
    return toJsonLine(value, { limits: this.limits, label });
  }

  /** A human-only note (text mode only; JSON consumers see nothing). */
  note(text: string): void {
    if (!this.json) this.#io.stdout.write(`${text}\n`);
  }
}

/** JSON with Buffers (base64), bigints (digits) and errors (name and message) made printable. */
const CLI_JSON_FORMAT: ValueFormat = Object.freeze({
  ...JSON_FORMAT,
  prepare: (v: unknown): unknown => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    if (v instanceof Error) return { name: v.name, message: v.message };
    return JSON_FORMAT.prepare === undefined ? v : JSON_FORMAT.prepare(v);
  },
});

/**
 * One line of JSON for any decoded result (Buffers and bigints from msgpack or pickle made
 * printable), within the limits: measured first, so a value whose shared references expand
 * past `maxDecodedBytes` (a YAML alias bomb) or nested past `maxDepth` is refused at once,
 * and written without recursion, so no depth overflows the stack.
 *
 * @param options - `limits` (the decode limits in force; output is held to `maxDepth` and
 *   `maxDecodedBytes`) and a `label` naming the value in errors. @default DEFAULT_DECODE_LIMITS
 * @throws EncodeLimitError (`TOO_DEEP`, `BODY_TOO_LARGE`) naming the label and the limit.
 * @example
 * ```ts
 * toJsonLine({ n: 1n }); // '{"n":"1"}'
 * ```
 */
export function toJsonLine(
  value: unknown,
  options: { limits?: WriteLimits | undefined; label?: string | undefined } = {},
): string {
  return writeJson(value, { ...options, format: CLI_JSON_FORMAT });
}

/**
 * The one-line description of a failure: the message and its chain of causes, without
 * stacks, with every URL password removed.
 *
 * @example
 * ```ts
 * describeError(new Error('connect failed amqp://u:pw@h//')); // 'connect failed amqp://u:****@h//'
 * ```
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const text = current instanceof Error ? current.message : String(current);
    if (text !== '' && !alreadySaid(parts, text)) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return redact(parts.join(': ') || 'unknown error').replace(/\s*\n\s*/g, ' ');
}

/**
 * A wrapper often repeats its cause's text, and a cause often quotes the broker's reply that
 * its wrapper already quoted (amqplib's "Handshake terminated by server: 403 (ACCESS-REFUSED)
 * with message "ACCESS_REFUSED - ..."" under our "access refused by URL: ACCESS_REFUSED - ...").
 * A text is said when an earlier part contains it, or it contains a whole clause (12
 * characters or more between ': ') of an earlier part.
 */
function alreadySaid(parts: readonly string[], text: string): boolean {
  return parts.some(
    (p) => p.includes(text) || p.split(': ').some((clause) => clause.length >= 12 && text.includes(clause)),
  );
}

/**
 * The exit code a failure maps to.
 *
 * @example
 * ```ts
 * exitCodeFor(new TimeoutError()); // 3
 * ```
 */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof AbortError) return EXIT.INTERRUPTED;
  return isTimeout(err) ? EXIT.TIMEOUT : EXIT.ERROR;
}

/**
 * True for the library's timeout (by class or by code, whichever layer raised it).
 *
 * @example
 * ```ts
 * isTimeout(new TimeoutError()); // true
 * ```
 */
export function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof CeleryAmqpError && err.code === 'TIMEOUT');
}

/**
 * Writes the one error line for a failure.
 *
 * @example
 * ```ts
 * reportError(io, err); // "celery-amqp: error: 403 ACCESS_REFUSED ..."
 * ```
 */
export function reportError(io: CliIo, err: unknown): ExitCode {
  io.stderr.write(`celery-amqp: error: ${describeError(err)}\n`);
  return exitCodeFor(err);
}

/**
 * A progress bar on stderr, or a no-op when stderr is not a terminal (logs and pipes must
 * not fill up with redraws).
 *
 * @example
 * ```ts
 * const bar = progress(io, 'collect', ids.length); bar.increment(); bar.stop();
 * ```
 */
export function progress(
  io: CliIo,
  label: string,
  total: number,
): { increment(by?: number): void; stop(): void } {
  if (!io.isTTY.stderr) return { increment() {}, stop() {} };
  const bar = new SingleBar({
    stream: io.stderr,
    format: `${label.padEnd(8)} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}`,
    // Left visible: a Ctrl-C exit must not leave the terminal without a cursor.
    hideCursor: false,
    clearOnComplete: false,
    fps: 10,
  });
  bar.start(total, 0);
  return {
    increment: (by = 1) => bar.increment(by),
    stop: () => bar.stop(),
  };
}

/**
 * `1234567.8` → `'1,234,568'`: rates and counts in text output.
 *
 * @example
 * ```ts
 * formatCount(23800); // '23,800'
 * ```
 */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
