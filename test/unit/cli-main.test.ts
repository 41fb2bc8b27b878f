/**
 * The CLI without a broker: argument parsing, seconds to ms, exit codes, JSON-lines output
 * and error lines, driven through `main(argv, io)` with a fake backend injected.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { TaskMeta } from '../../src/celery/backend-types.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import { ConnectionError, TimeoutError } from '../../src/errors.js';
import { describeError, toJsonLine } from '../../src/cli/io.js';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { parseExpires, secondsToMs } from '../../src/cli/options.js';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

/** A stand-in with the backend's API, recording what the CLI asked of it. */
class FakeBackend {
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

function harness(env: Record<string, string> = {}, tty = false) {
  const stdout = new Sink();
  const stderr = new Sink();
  const backends: FakeBackend[] = [];
  const io: CliIo = {
    stdout,
    stderr,
    env,
    isTTY: { stdout: tty, stderr: false },
    createBackend: (options) => {
      const b = new FakeBackend(options);
      backends.push(b);
      return b as unknown as AMQPBackend;
    },
  };
  return { io, stdout, stderr, backends, run: (...argv: string[]) => main(argv, io) };
}

describe('seconds to milliseconds', () => {
  it('converts seconds, decimals included, and refuses nonsense', () => {
    expect(secondsToMs('1')).toBe(1000);
    expect(secondsToMs('0.25')).toBe(250);
    expect(secondsToMs('0')).toBe(0);
    expect(() => secondsToMs('-1')).toThrow();
    expect(() => secondsToMs('abc')).toThrow();
    expect(() => secondsToMs('')).toThrow();
    expect(parseExpires('none')).toBeNull();
    expect(parseExpires('86400')).toBe(86_400_000);
    expect(() => parseExpires('0')).toThrow();
  });

  it('passes --timeout to waitFor in ms and --expires to the backend in seconds', async () => {
    const h = harness();
    FakeBackend.store.set('t-secs', {
      task_id: 't-secs',
      status: 'SUCCESS',
      result: 1,
      traceback: null,
      children: null,
    });
    expect(await h.run('wait', 't-secs', '--timeout', '2.5', '--expires', '60', '--transient')).toBe(0);
    const b = h.backends[0]!;
    expect(b.options.expires).toBe(60);
    expect(b.options.persistent).toBe(false);
    expect(b.calls[0]).toMatchObject({
      op: 'waitFor',
      args: ['t-secs', { timeout: 2500, propagate: false }],
    });
    expect(b.closed).toBe(true);
  });
});

describe('usage errors exit 2', () => {
  it.each([
    [['frobnicate']],
    [['get']],
    [['store', 'id', 'SUCCESS']],
    [['wait', 'id', '--timeout', 'soon']],
    [['get', 'id', '--serializer', 'pickle']],
    [['get', 'id', '--no-such-flag']],
    [['demo', '--n', '0']],
  ])('%j', async (argv) => {
    const h = harness();
    expect(await h.run(...argv)).toBe(2);
    expect(h.stderr.text).toMatch(/^celery-amqp: error:/);
    expect(h.stdout.text).toBe('');
    expect(h.backends).toHaveLength(0);
  });

  it('refuses a <json-result> that is not JSON', async () => {
    const h = harness();
    expect(await h.run('store', 'id', 'SUCCESS', 'tru')).toBe(2);
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.stderr.text).toContain('invalid <json-result>');
  });

  it('prints help and version with exit 0', async () => {
    const h = harness();
    expect(await h.run('--version')).toBe(0);
    expect(h.stdout.text).toMatch(/^\d+\.\d+\.\d+/);
    const g = harness();
    expect(await g.run('watch', '--help')).toBe(0);
    expect(g.stdout.text).toContain('--timeout <seconds>');
  });
});

describe('output', () => {
  it('store then get prints one JSON line with the five wire keys', async () => {
    const h = harness();
    expect(await h.run('store', 'abc-1', 'FAILURE', '{"exc_type":"ValueError"}', '--traceback', 'TB')).toBe(
      0,
    );
    expect(JSON.parse(h.stdout.lines()[0]!)).toEqual({ task_id: 'abc-1', status: 'FAILURE', stored: true });
    const g = harness();
    expect(await g.run('get', 'abc-1')).toBe(0);
    const lines = g.stdout.lines();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      task_id: 'abc-1',
      status: 'FAILURE',
      result: { exc_type: 'ValueError' },
      traceback: 'TB',
      children: null,
    });
  });

  it('prints readable text on a terminal unless --json', async () => {
    FakeBackend.store.set('txt', {
      task_id: 'txt',
      status: 'SUCCESS',
      result: [1, 2],
      traceback: null,
      children: null,
    });
    const h = harness({}, true);
    expect(await h.run('get', 'txt')).toBe(0);
    expect(h.stdout.text).toMatch(/status:\s+SUCCESS/);
    const j = harness({}, true);
    expect(await j.run('get', 'txt', '--json')).toBe(0);
    expect(JSON.parse(j.stdout.text).result).toEqual([1, 2]);
  });

  it('uses --broker, else CELERY_BROKER_URL, else the local RabbitMQ', async () => {
    const a = harness();
    await a.run('get', 'x');
    expect(a.backends[0]!.options.connection).toBe('amqp://guest:guest@127.0.0.1:5672//');
    const b = harness({ CELERY_BROKER_URL: 'amqp://u:p@h:1/v' });
    await b.run('get', 'x');
    expect(b.backends[0]!.options.connection).toBe('amqp://u:p@h:1/v');
    const c = harness({ CELERY_BROKER_URL: 'amqp://u:p@h:1/v' });
    await c.run('get', 'x', '--broker', 'memory://');
    expect(c.backends[0]!.options.connection).toBe('memory://');
  });
});

describe('timeouts exit 3', () => {
  it('wait times out with one stderr line', async () => {
    const h = harness();
    expect(await h.run('wait', 'never', '--timeout', '0.01')).toBe(3);
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.stderr.text).toContain('timed out');
  });

  it('watch prints what arrived, one JSON line each, and names how many are missing', async () => {
    for (const id of ['w1', 'w2']) {
      FakeBackend.store.set(id, {
        task_id: id,
        status: 'SUCCESS',
        result: id,
        traceback: null,
        children: null,
      });
    }
    const h = harness();
    expect(await h.run('watch', 'w1', 'w2', 'w3', 'w4', 'w5', '--timeout', '0.05')).toBe(3);
    expect(h.stdout.lines().map((l) => JSON.parse(l).task_id)).toEqual(['w1', 'w2']);
    expect(h.stderr.text).toContain('3 of 5 results missing');
    expect(h.backends[0]!.calls[0]!.args[1]).toMatchObject({ timeout: 50 });
  });
});

describe('errors', () => {
  it('prints one redacted line, no stack, exit 1', async () => {
    const h = harness();
    h.io.createBackend = () => {
      throw new ConnectionError('403 ACCESS_REFUSED connecting to amqp://guest:secret@127.0.0.1:5672//', {
        cause: new Error('Login was refused\n using authentication mechanism PLAIN'),
      });
    };
    expect(await h.run('get', 'x', '--broker', 'amqp://guest:secret@127.0.0.1:5672//')).toBe(1);
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.stderr.text).not.toContain('secret');
    expect(h.stderr.text).not.toContain('    at ');
    expect(h.stderr.text).toContain('ACCESS_REFUSED');
    expect(h.stderr.text).toContain('Login was refused');
  });

  it('redacts a password echoed by a usage error', async () => {
    const h = harness();
    expect(await h.run('get', '--broker', 'amqp://u:hunter2@h//')).toBe(2);
    expect(h.stderr.text).not.toContain('hunter2');
  });

  it('describeError chains causes once and toJsonLine never throws', () => {
    const err = new Error('outer amqp://a:b@h//', { cause: new Error('outer amqp://a:b@h//') });
    expect(describeError(err)).toBe('outer amqp://a:****@h//');
    expect(toJsonLine({ n: 1n, b: Buffer.from('hi') })).toBe('{"n":"1","b":"aGk="}');
  });
});

describe('demo and bench orchestration (fake backend)', () => {
  it('demo stores N, collects N, verifies, and reports one JSON line', async () => {
    const h = harness();
    expect(await h.run('demo', '--n', '300')).toBe(0);
    const report = JSON.parse(h.stdout.lines().at(-1)!);
    expect(report).toMatchObject({ n: 300, received: 300, wrong: 0, broker: 'memory://' });
    expect(h.backends[0]!.options.connection).toBe('memory://');
    expect(h.backends[0]!.calls.filter((c) => c.op === 'storeResult')).toHaveLength(300);
  });

  it('demo exits 1 when a result comes back wrong', async () => {
    const h = harness();
    h.io.createBackend = (options) => {
      const b = new FakeBackend(options);
      const store = b.storeResult.bind(b);
      b.storeResult = (id, result, status, opts) =>
        store(id, status === 'SUCCESS' ? { i: -1 } : result, status, opts);
      return b as unknown as AMQPBackend;
    };
    expect(await h.run('demo', '--n', '5')).toBe(1);
    expect(h.stderr.text).toContain('verification failed: 0 results missing, 5 with a wrong value');
  });

  it('bench on a non-AMQP broker measures the backend only and prints one JSON object', async () => {
    const h = harness();
    expect(await h.run('bench', '--n', '50', '--samples', '10', '--broker', 'memory://', '--json')).toBe(0);
    const report = JSON.parse(h.stdout.lines().at(-1)!);
    expect(report).toMatchObject({
      n: 50,
      samples: 10,
      raw_store_per_s: null,
      store_ratio: null,
      broker: 'memory://',
    });
    expect(report.store_per_s).toBeGreaterThan(0);
    expect(report.waitfor_p99_ms).toBeGreaterThanOrEqual(report.waitfor_p50_ms);
    expect(report.rss_mb).toBeGreaterThan(0);
    // --rounds defaults to 3, each round storing N on one backend kept open across rounds.
    expect(report.rounds).toBe(3);
    expect(report.per_round).toHaveLength(3);
    expect(h.backends).toHaveLength(1);
    expect(h.backends[0]!.calls.filter((c) => c.op === 'storeResult')).toHaveLength(50 + 3 * 50 + 10);
  });

  it('bench --rounds takes a positive count', async () => {
    const h = harness();
    const args = ['bench', '--n', '20', '--samples', '5', '--broker', 'memory://', '--json'];
    expect(await h.run(...args, '--rounds', '2')).toBe(0);
    expect(JSON.parse(h.stdout.lines().at(-1)!).per_round).toHaveLength(2);
    expect(await h.run(...args, '--rounds', '0')).toBe(2);
  });
});
