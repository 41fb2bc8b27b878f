/**
 * Drives the CLI (and the bench's command line) in-process: output sinks, an io with a
 * stand-in backend that records what the CLI asked of it, and a runner returning the exit
 * code with what was written.
 *
 * @module
 */
import { Writable } from 'node:stream';
import type { AMQPBackend } from '../src/celery/amqp-backend.js';
import type { TaskMeta } from '../src/celery/backend-types.js';
import type { AMQPBackendOptions } from '../src/celery/backend-options.js';
import type { CliIo } from '../src/cli/io.js';
import { TimeoutError } from '../src/errors.js';

/** A stream that keeps what is written to it. */
export class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  /** The non-empty lines written so far. */
  lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

/** A stand-in with the backend's API, recording what the CLI asked of it. */
export class FakeBackend {
  /** Results shared by every fake backend of the test file (a stand-in for the broker). */
  static store = new Map<string, TaskMeta>();
  readonly calls: Array<{ op: string; args: unknown[] }> = [];
  closed = false;
  constructor(readonly options: AMQPBackendOptions) {}
  async storeResult(taskId: string, result: unknown, status: string, opts?: { traceback?: string | null }) {
    this.calls.push({ op: 'storeResult', args: [taskId, result, status, opts] });
    FakeBackend.store.set(taskId, {
      task_id: taskId,
      status,
      result,
      traceback: opts?.traceback ?? null,
      children: null,
    });
  }
  async getTaskMeta(taskId: string) {
    this.calls.push({ op: 'getTaskMeta', args: [taskId] });
    return (
      FakeBackend.store.get(taskId) ?? {
        task_id: taskId,
        status: 'PENDING',
        result: null,
        traceback: null,
        children: null,
      }
    );
  }
  async waitFor(taskId: string, opts: { timeout?: number } = {}) {
    this.calls.push({ op: 'waitFor', args: [taskId, opts] });
    const meta = FakeBackend.store.get(taskId);
    if (meta !== undefined) return meta;
    // A fake wait that runs out: it takes (part of) its timeout, as a real one would.
    await new Promise((r) => setTimeout(r, Math.min(opts.timeout ?? 0, 50)));
    throw new TimeoutError();
  }
  async *getMany(ids: Iterable<string>, opts: { timeout?: number } = {}) {
    this.calls.push({ op: 'getMany', args: [[...ids], opts] });
    let missing = 0;
    for (const id of ids) {
      const meta = FakeBackend.store.get(id);
      if (meta === undefined) missing++;
      else yield [id, meta] as [string, TaskMeta];
    }
    if (missing > 0) throw new TimeoutError();
  }
  async close() {
    this.closed = true;
  }
}

/** What {@link harness} returns. */
export interface Harness {
  io: CliIo;
  stdout: Sink;
  stderr: Sink;
  /** The fake backends the CLI made, in order. */
  backends: FakeBackend[];
}

/**
 * An io writing to sinks, whose backends are {@link FakeBackend}s unless `real` is set.
 *
 * @example
 * ```ts
 * const h = harness(); expect(await main(['get', 'x'], h.io)).toBe(0);
 * ```
 */
export function harness(
  env: Record<string, string> = {},
  options: { tty?: boolean; real?: boolean } = {},
): Harness {
  const stdout = new Sink();
  const stderr = new Sink();
  const backends: FakeBackend[] = [];
  const io: CliIo = { stdout, stderr, env, isTTY: { stdout: options.tty === true, stderr: false } };
  if (options.real !== true) {
    io.createBackend = (backendOptions) => {
      const b = new FakeBackend(backendOptions);
      backends.push(b);
      return b as unknown as AMQPBackend;
    };
  }
  return { io, stdout, stderr, backends };
}
