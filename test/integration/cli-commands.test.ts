/**
 * The CLI end to end on the real backend: RabbitMQ at 127.0.0.1:5672 for the result
 * commands, the embedded broker for demo.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { harness } from '../cli-harness.js';
import type { Sink } from '../cli-harness.js';
import { BROKER_URL, newTaskId } from '../fixture.js';

/** Runs `celery-amqp` in-process on the real backend, with `env` as its environment. */
async function runEnv(
  env: Record<string, string>,
  ...argv: string[]
): Promise<{ code: number; out: Sink; err: Sink }> {
  const h = harness(env, { real: true });
  const code = await main(argv, h.io);
  return { code, out: h.stdout, err: h.stderr };
}

function run(...argv: string[]): Promise<{ code: number; out: Sink; err: Sink }> {
  return runEnv({}, ...argv);
}

/** A local port nothing listens on (it was free a moment ago): a broker that is down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('result commands on RabbitMQ', () => {
  it('store, then get (repeatable), then wait', async () => {
    const id = newTaskId();
    const stored = await run(
      'store',
      id,
      'SUCCESS',
      '{"answer":42}',
      '--broker',
      BROKER_URL,
      '--expires',
      '60',
    );
    expect(stored.err.text).toBe('');
    expect(stored.code).toBe(0);

    for (let i = 0; i < 2; i++) {
      const got = await run('get', id, '--broker', BROKER_URL, '--expires', '60');
      expect(got.code).toBe(0);
      expect(got.out.lines()).toHaveLength(1);
      expect(JSON.parse(got.out.lines()[0]!)).toMatchObject({
        task_id: id,
        status: 'SUCCESS',
        result: { answer: 42 },
        traceback: null,
        children: null,
      });
    }

    const waited = await run('wait', id, '--broker', BROKER_URL, '--expires', '60', '--timeout', '10');
    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.out.lines()[0]!)).toMatchObject({
      task_id: id,
      status: 'SUCCESS',
      result: { answer: 42 },
    });
  });

  it('get of an unknown id is PENDING; wait on it times out with exit 3', async () => {
    const id = newTaskId();
    const got = await run('get', id, '--broker', BROKER_URL, '--expires', '5');
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out.text)).toMatchObject({ status: 'PENDING', result: null });
    const started = Date.now();
    const waited = await run('wait', id, '--broker', BROKER_URL, '--expires', '5', '--timeout', '0.5');
    expect(waited.code).toBe(3);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(waited.err.lines()).toHaveLength(1);
  });

  it('watch prints the ready ones and exits 3 naming how many are missing', async () => {
    const ready = [newTaskId(), newTaskId()];
    const missing = [newTaskId(), newTaskId(), newTaskId()];
    for (const id of ready) {
      expect(
        (await run('store', id, 'SUCCESS', `"${id}"`, '--broker', BROKER_URL, '--expires', '30')).code,
      ).toBe(0);
    }
    const watched = await run(
      'watch',
      ...ready,
      ...missing,
      '--broker',
      BROKER_URL,
      '--expires',
      '30',
      '--timeout',
      '1',
    );
    expect(watched.code).toBe(3);
    const seen = watched.out.lines().map((l) => JSON.parse(l) as { task_id: string; result: unknown });
    expect(seen.map((m) => m.task_id).sort()).toEqual([...ready].sort());
    expect(seen.every((m) => m.result === m.task_id)).toBe(true);
    expect(watched.err.text).toContain('3 of 5 results missing');
    expect(watched.err.lines()).toHaveLength(1);
  });

  it('wrong credentials: one error line naming ACCESS_REFUSED once, exit 1, password redacted, no retry', async () => {
    const url = new URL(BROKER_URL);
    url.password = 'secret';
    const r = await run('get', newTaskId(), '--broker', url.href);
    expect(r.code).toBe(1);
    expect(r.err.lines()).toHaveLength(1);
    expect(r.err.text.match(/ACCESS_REFUSED/g)).toHaveLength(1);
    expect(r.err.text).not.toContain('secret');
    expect(r.err.text).not.toMatch(/\n\s+at /);
  });

  it('a down broker: each retry announced on stderr with its count, --retries bounds them', async () => {
    const port = await closedPort();
    const started = Date.now();
    const r = await run(
      'store',
      newTaskId(),
      'SUCCESS',
      '1',
      '--broker',
      `amqp://guest:guest@127.0.0.1:${port}//`,
      '--retries',
      '2',
    );
    expect(r.code).toBe(1);
    const lines = r.err.lines();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      new RegExp(`^celery-amqp: retrying \\(1/2\\): .*ECONNREFUSED 127\\.0\\.0\\.1:${port}`),
    );
    expect(lines[1]).toMatch(/^celery-amqp: retrying \(2\/2\): /);
    expect(lines[2]).toMatch(/^celery-amqp: error: .*ECONNREFUSED/);
    // Two retries sleep 0 s and 1 s (Celery's policy), not the 19 s of twenty.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('the broker comes from CELERY_BROKER_URL when --broker is absent', async () => {
    const id = newTaskId();
    expect(
      (await runEnv({ CELERY_BROKER_URL: BROKER_URL }, 'store', id, 'SUCCESS', '3', '--expires', '30')).code,
    ).toBe(0);
    const got = await run('get', id, '--broker', BROKER_URL, '--expires', '30');
    expect(JSON.parse(got.out.text)).toMatchObject({ status: 'SUCCESS', result: 3 });
  });

  it('store refuses a status that is not a state (nothing stored), and takes it with --force', async () => {
    const id = newTaskId();
    const refused = await run('store', id, 'success', '1', '--broker', BROKER_URL, '--expires', '30');
    expect(refused.code).toBe(2);
    expect(refused.err.text).toContain('did you mean SUCCESS?');
    expect(
      JSON.parse((await run('get', id, '--broker', BROKER_URL, '--expires', '30')).out.text),
    ).toMatchObject({
      status: 'PENDING',
    });
    expect(
      (await run('store', id, 'success', '1', '--force', '--broker', BROKER_URL, '--expires', '30')).code,
    ).toBe(0);
    expect(
      JSON.parse((await run('get', id, '--broker', BROKER_URL, '--expires', '30')).out.text),
    ).toMatchObject({
      status: 'success',
    });
  });

  it('wait --keep leaves the result for the next reader; wait consumes it', async () => {
    const id = newTaskId();
    const common = ['--broker', BROKER_URL, '--expires', '30'];
    expect((await run('store', id, 'SUCCESS', '"kept"', ...common)).code).toBe(0);
    for (let i = 0; i < 2; i++) {
      const kept = await run('wait', id, '--keep', '--timeout', '10', ...common);
      expect(kept.code).toBe(0);
      expect(JSON.parse(kept.out.text)).toMatchObject({ status: 'SUCCESS', result: 'kept' });
    }
    const consumed = await run('wait', id, '--timeout', '10', ...common);
    expect(JSON.parse(consumed.out.text)).toMatchObject({ status: 'SUCCESS', result: 'kept' });
    // As --help says: the result message is gone from the broker.
    expect(JSON.parse((await run('get', id, ...common)).out.text)).toMatchObject({ status: 'PENDING' });
  });
});

describe('demo', () => {
  it('demo --n 2000 on memory:// collects and verifies everything', async () => {
    const r = await run('demo', '--n', '2000');
    expect(r.err.text).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out.lines().at(-1)!) as Record<string, unknown>;
    expect(report).toMatchObject({ n: 2000, received: 2000, wrong: 0, broker: 'memory://' });
    expect(report['per_s']).toBeGreaterThan(0);
  });
});
