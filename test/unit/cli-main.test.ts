/**
 * The CLI without a broker: argument parsing, seconds to ms, exit codes, JSON-lines output
 * and error lines, driven through `main(argv, io)` with a fake backend injected.
 */
import { describe, expect, it } from 'vitest';
import type { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { ConnectionError } from '../../src/errors.js';
import { describeError, toJsonLine } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { parseExpires, parseLimit, secondsToMs } from '../../src/cli/options.js';
import { editDistance, statusProblem } from '../../src/cli/store.js';
import { FakeBackend, harness } from '../cli-harness.js';
import { aliasBombValue, nestedValue } from '../hostile/bodies.js';

/** A harness whose `run` drives `celery-amqp` with the given environment. */
function cli(env: Record<string, string> = {}, tty = false) {
  const h = harness(env, { tty });
  return { ...h, run: (...argv: string[]) => main(argv, h.io) };
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
    const h = cli();
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
    expect(b.calls[0]).toMatchObject({ op: 'waitFor', args: ['t-secs', { propagate: false }] });
    // The deadline is taken once, before the backend is opened: what is left of 2.5 s.
    const timeout = (b.calls[0]!.args[1] as { timeout: number }).timeout;
    expect(timeout).toBeGreaterThan(2000);
    expect(timeout).toBeLessThanOrEqual(2500);
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
    [['get', 'id', '--retries', '-1']],
    [['store', 'id', 'success', '1']],
    [['store', 'id', 'SUCESS', '1']],
    [['store', 'id', 'In Progress', '1']],
    [['demo', '--n', '0']],
  ])('%j', async (argv) => {
    const h = cli();
    expect(await h.run(...argv)).toBe(2);
    expect(h.stderr.text).toMatch(/^celery-amqp: error:/);
    expect(h.stdout.text).toBe('');
    expect(h.backends).toHaveLength(0);
  });

  it('refuses a <json-result> that is not JSON', async () => {
    const h = cli();
    expect(await h.run('store', 'id', 'SUCCESS', 'tru')).toBe(2);
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.stderr.text).toContain('invalid <json-result>');
  });

  it('prints help and version with exit 0', async () => {
    const h = cli();
    expect(await h.run('--version')).toBe(0);
    expect(h.stdout.text).toMatch(/^\d+\.\d+\.\d+/);
    const g = cli();
    expect(await g.run('watch', '--help')).toBe(0);
    expect(g.stdout.text).toContain('--timeout <seconds>');
  });
});

describe('output', () => {
  it('store then get prints one JSON line with the five wire keys', async () => {
    const h = cli();
    expect(await h.run('store', 'abc-1', 'FAILURE', '{"exc_type":"ValueError"}', '--traceback', 'TB')).toBe(
      0,
    );
    expect(JSON.parse(h.stdout.lines()[0]!)).toEqual({ task_id: 'abc-1', status: 'FAILURE', stored: true });
    const g = cli();
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
    const h = cli({}, true);
    expect(await h.run('get', 'txt')).toBe(0);
    expect(h.stdout.text).toMatch(/status:\s+SUCCESS/);
    const j = cli({}, true);
    expect(await j.run('get', 'txt', '--json')).toBe(0);
    expect(JSON.parse(j.stdout.text).result).toEqual([1, 2]);
  });

  it("uses --broker, else CELERY_BROKER_URL, else amqp://guest:guest@localhost:5672// (Celery's rule)", async () => {
    const a = cli();
    await a.run('get', 'x');
    expect(a.backends[0]!.options.connection).toBe('amqp://guest:guest@localhost:5672//');
    const b = cli({ CELERY_BROKER_URL: 'amqp://u:p@h:1/v' });
    await b.run('get', 'x');
    expect(b.backends[0]!.options.connection).toBe('amqp://u:p@h:1/v');
    const c = cli({ CELERY_BROKER_URL: 'amqp://u:p@h:1/v' });
    await c.run('get', 'x', '--broker', 'memory://');
    expect(c.backends[0]!.options.connection).toBe('memory://');
  });
});

describe('timeouts exit 3', () => {
  it('wait times out with one stderr line', async () => {
    const h = cli();
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
    const h = cli();
    expect(await h.run('watch', 'w1', 'w2', 'w3', 'w4', 'w5', '--timeout', '0.05')).toBe(3);
    expect(h.stdout.lines().map((l) => JSON.parse(l).task_id)).toEqual(['w1', 'w2']);
    expect(h.stderr.text).toContain('3 of 5 results missing');
    // What is left of the 0.05 s deadline, taken before the backend was opened.
    const { timeout } = h.backends[0]!.calls[0]!.args[1] as { timeout: number };
    expect(timeout).toBeGreaterThan(0);
    expect(timeout).toBeLessThanOrEqual(50);
  });
});

describe('errors', () => {
  it('prints one redacted line, no stack, exit 1', async () => {
    const h = cli();
    h.io.createBackend = () => {
      throw new ConnectionError('403 ACCESS_REFUSED connecting to amqp://guest:secret@127.0.0.1:5672//', {
        cause: new Error('Login was refused\n using authentication mechanism PLAIN'),
        // As fromReply() makes a 403: reconnecting cannot fix it, so it is not retried.
        recoverable: false,
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
    const h = cli();
    expect(await h.run('get', '--broker', 'amqp://u:hunter2@h//')).toBe(2);
    expect(h.stderr.text).not.toContain('hunter2');
  });

  it('describeError chains causes once and toJsonLine never throws', () => {
    const err = new Error('outer amqp://a:b@h//', { cause: new Error('outer amqp://a:b@h//') });
    expect(describeError(err)).toBe('outer amqp://a:****@h//');
    expect(toJsonLine({ n: 1n, b: Buffer.from('hi') })).toBe('{"n":"1","b":"aGk="}');
  });
});

describe('demo orchestration (fake backend)', () => {
  it('demo stores N, collects N, verifies, and reports one JSON line', async () => {
    const h = cli();
    expect(await h.run('demo', '--n', '300')).toBe(0);
    const report = JSON.parse(h.stdout.lines().at(-1)!);
    expect(report).toMatchObject({ n: 300, received: 300, wrong: 0, broker: 'memory://' });
    expect(h.backends[0]!.options.connection).toBe('memory://');
    expect(h.backends[0]!.calls.filter((c) => c.op === 'storeResult')).toHaveLength(300);
  });

  it('demo exits 1 when a result comes back wrong', async () => {
    const h = cli();
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
});

describe('retries', () => {
  /** A harness whose first `failures` backends fail to open with `error`. */
  function failing(failures: number, error: () => Error) {
    const h = cli();
    let opened = 0;
    const create = h.io.createBackend!;
    h.io.createBackend = (options) => {
      opened++;
      if (opened <= failures) throw error();
      return create(options);
    };
    return { ...h, opened: () => opened };
  }
  const refused = () =>
    new ConnectionError('cannot connect to amqp://g:pw@127.0.0.1:1//: connect ECONNREFUSED');

  it('announces each retry on stderr with its count, and --retries bounds them', async () => {
    const h = failing(Number.POSITIVE_INFINITY, refused);
    expect(await h.run('store', 'r-1', 'SUCCESS', '1', '--retries', '2')).toBe(1);
    expect(h.opened()).toBe(3);
    const lines = h.stderr.lines();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^celery-amqp: retrying \(1\/2\): cannot connect to amqp:\/\/g:\*\*\*\*@/);
    expect(lines[1]).toMatch(/^celery-amqp: retrying \(2\/2\): /);
    expect(lines[2]).toMatch(/^celery-amqp: error: cannot connect/);
    expect(h.stderr.text).not.toContain(':pw@');
  });

  it('retries 20 times by default and goes on once the broker answers', async () => {
    const h = failing(1, refused);
    expect(await h.run('get', 'r-2')).toBe(0);
    expect(h.stderr.lines()).toEqual([expect.stringMatching(/^celery-amqp: retrying \(1\/20\): /)]);
    expect(JSON.parse(h.stdout.text)).toMatchObject({ task_id: 'r-2', status: 'PENDING' });
  });

  it('does not retry what reconnecting cannot fix (a refused login), nor a timeout', async () => {
    const h = failing(
      Number.POSITIVE_INFINITY,
      () => new ConnectionError('403 ACCESS_REFUSED', { recoverable: false }),
    );
    expect(await h.run('get', 'r-3')).toBe(1);
    expect(h.opened()).toBe(1);
    expect(h.stderr.lines()).toHaveLength(1);
    const t = cli();
    expect(await t.run('wait', 'r-never', '--timeout', '0.01')).toBe(3);
    expect(t.backends).toHaveLength(1);
  });

  it('--retries 0 fails at the first error, and the backend itself never retries silently', async () => {
    const h = failing(Number.POSITIVE_INFINITY, refused);
    expect(await h.run('get', 'r-4', '--retries', '0')).toBe(1);
    expect(h.opened()).toBe(1);
    const ok = cli();
    await ok.run('get', 'r-5');
    expect(ok.backends[0]!.options.retryPolicy).toEqual({ maxRetries: 0 });
  });
});

describe('one line per error', () => {
  it('says the broker reply once when the cause quotes it again', () => {
    const reply =
      'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.';
    const err = new ConnectionError(`access refused by amqp://guest:****@127.0.0.1:5672//: ${reply}`, {
      cause: new Error(`Handshake terminated by server: 403 (ACCESS-REFUSED) with message "${reply}"`),
    });
    const text = describeError(err);
    expect(text.match(/ACCESS_REFUSED/g)).toHaveLength(1);
    expect(text).toBe(`access refused by amqp://guest:****@127.0.0.1:5672//: ${reply}`);
  });
});

describe('store refuses a status that is not a state', () => {
  it('accepts Celery states and upper-case custom states', () => {
    for (const status of ['SUCCESS', 'FAILURE', 'STARTED', 'RETRY', 'PROGRESS', 'BOGUS', 'UPLOADING_2']) {
      expect(statusProblem(status), status).toBeUndefined();
    }
  });

  it('refuses other spellings and near-misses of a state, naming it', () => {
    expect(statusProblem('success')).toContain('did you mean SUCCESS?');
    expect(statusProblem('Failure')).toContain('did you mean FAILURE?');
    expect(statusProblem('SUCESS')).toContain('did you mean SUCCESS?');
    expect(statusProblem('progress')).toContain('custom states are upper-case');
    expect(statusProblem('IN PROGRESS')).toContain('--force');
    expect(editDistance('SUCESS', 'SUCCESS')).toBe(1);
    expect(editDistance('', 'ABC')).toBe(3);
  });

  it('stores nothing when refused, and anything with --force', async () => {
    const h = cli();
    expect(await h.run('store', 's-1', 'success', '1')).toBe(2);
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.stderr.text).toContain("'success' is not a Celery state; did you mean SUCCESS?");
    expect(h.backends).toHaveLength(0);
    const f = cli();
    expect(await f.run('store', 's-1', 'success', '1', '--force')).toBe(0);
    expect(FakeBackend.store.get('s-1')?.status).toBe('success');
  });
});

describe('wait --keep', () => {
  it('polls getTaskMeta (which leaves the result) until ready, never waitFor', async () => {
    FakeBackend.store.set('k-1', {
      task_id: 'k-1',
      status: 'STARTED',
      result: null,
      traceback: null,
      children: null,
    });
    const h = cli();
    let polls = 0;
    const create = h.io.createBackend!;
    h.io.createBackend = async (options) => {
      const b = await create(options);
      const get = b.getTaskMeta.bind(b);
      b.getTaskMeta = async (id, o) => {
        // Ready on the third poll.
        if (++polls === 3)
          FakeBackend.store.set('k-1', { ...FakeBackend.store.get('k-1')!, status: 'SUCCESS', result: 7 });
        return get(id, o);
      };
      return b;
    };
    expect(await h.run('wait', 'k-1', '--keep', '--interval', '0.01', '--timeout', '5')).toBe(0);
    expect(JSON.parse(h.stdout.text)).toMatchObject({ status: 'SUCCESS', result: 7 });
    const ops = h.backends[0]!.calls.map((c) => c.op);
    expect(ops).toEqual(['getTaskMeta', 'getTaskMeta', 'getTaskMeta']);
  });

  it('times out with exit 3', async () => {
    const h = cli();
    expect(await h.run('wait', 'k-never', '--keep', '--interval', '0.01', '--timeout', '0.05')).toBe(3);
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.backends[0]!.calls.every((c) => c.op === 'getTaskMeta')).toBe(true);
  });

  it('--help says which commands consume the result', async () => {
    const h = cli();
    expect(await h.run('--help')).toBe(0);
    expect(h.stdout.text).toContain('`get` leaves the result on the broker');
    expect(h.stdout.text).toContain('`wait` and `watch`\nconsume the result messages');
    expect(h.stdout.text).toMatch(
      /wait \[options\] <task-id>\s+wait until a task is ready and print it \(consumes it unless --keep\)/,
    );
    const w = cli();
    expect(await w.run('wait', '--help')).toBe(0);
    expect(w.stdout.text).toContain('--keep');
  });
});

describe('decode limits and bounded output', () => {
  it('parses limits: counts, sizes with KiB/MiB/GiB, none', () => {
    expect(parseLimit('1_000', false)).toBe(1000);
    expect(parseLimit('64MiB', true)).toBe(64 * 1024 * 1024);
    expect(parseLimit('2 kib', true)).toBe(2048);
    expect(parseLimit('none', false)).toBe(Infinity);
    for (const bad of ['-1', '1.5', '', 'x', '64MB']) expect(() => parseLimit(bad, true)).toThrow();
    expect(() => parseLimit('1KiB', false)).toThrow();
  });

  it('hands the limit flags to the backend as decodeLimits; a bad value is a usage error', async () => {
    const h = cli();
    const code = await h.run('get', 'x', '--max-depth', '50', '--max-decoded-bytes', '1MiB', '--json');
    expect(code).toBe(0);
    expect(h.backends[0]?.options.decodeLimits).toEqual({ maxDepth: 50, maxDecodedBytes: 1024 * 1024 });
    expect(await cli().run('get', 'x', '--max-depth', 'deep')).toBe(2);
    const help = cli();
    await help.run('get', '--help');
    expect(help.stdout.text).toMatch(/--max-alias-expansion <count>[\s\S]*?default:\s+1,000,000/);
    expect(help.stdout.text).not.toContain('--max-pickle-memo');
  });

  it('a result that expands past the output limit: one line naming the task and the limit, exit 1', async () => {
    const h = cli();
    const id = 'bomb-output-1';
    FakeBackend.store.set(id, {
      task_id: id,
      status: 'SUCCESS',
      result: aliasBombValue(),
      traceback: null,
      children: null,
    });
    expect(await h.run('get', id)).toBe(1);
    expect(h.stdout.text).toBe('');
    expect(h.stderr.lines()).toHaveLength(1);
    expect(h.stderr.text).toContain(`result of task ${id}`);
    expect(h.stderr.text).toContain('limit maxDecodedBytes = 67108864');
    // Text mode too.
    const text = cli({}, true);
    expect(await text.run('get', id)).toBe(1);
    expect(text.stderr.text).toContain('limit maxDecodedBytes');
  });

  it('prints 200,000 levels when the limits let them through (no stack overflow), refuses them by default', async () => {
    const id = 'deep-output-1';
    FakeBackend.store.set(id, {
      task_id: id,
      status: 'SUCCESS',
      result: nestedValue(200_000),
      traceback: null,
      children: null,
    });
    const refused = cli();
    expect(await refused.run('get', id)).toBe(1);
    expect(refused.stderr.text).toMatch(/nested more than 1000 levels deep \(limit maxDepth = 1000\)/);
    const h = cli();
    expect(await h.run('get', id, '--max-depth', 'none')).toBe(0);
    let v: unknown = (JSON.parse(h.stdout.text) as { result: unknown }).result;
    let depth = 0;
    for (; Array.isArray(v); depth++) v = v[0];
    expect(depth).toBe(200_000);
  });
});
