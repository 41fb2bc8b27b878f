/**
 * The CLI end to end on the real backend: RabbitMQ at 127.0.0.1:5672 for the result
 * commands, the embedded broker for demo.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

const BROKER = process.env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672//';

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

async function run(...argv: string[]): Promise<{ code: number; out: Sink; err: Sink }> {
  const out = new Sink();
  const err = new Sink();
  const io: CliIo = { stdout: out, stderr: err, env: {}, isTTY: { stdout: false, stderr: false } };
  const code = await main(argv, io);
  return { code, out, err };
}

describe('result commands on RabbitMQ', () => {
  it('store, then get (repeatable), then wait', async () => {
    const id = randomUUID();
    const stored = await run('store', id, 'SUCCESS', '{"answer":42}', '--broker', BROKER, '--expires', '60');
    expect(stored.err.text).toBe('');
    expect(stored.code).toBe(0);

    for (let i = 0; i < 2; i++) {
      const got = await run('get', id, '--broker', BROKER, '--expires', '60');
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

    const waited = await run('wait', id, '--broker', BROKER, '--expires', '60', '--timeout', '10');
    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.out.lines()[0]!)).toMatchObject({
      task_id: id,
      status: 'SUCCESS',
      result: { answer: 42 },
    });
  });

  it('get of an unknown id is PENDING; wait on it times out with exit 3', async () => {
    const id = randomUUID();
    const got = await run('get', id, '--broker', BROKER, '--expires', '5');
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out.text)).toMatchObject({ status: 'PENDING', result: null });
    const started = Date.now();
    const waited = await run('wait', id, '--broker', BROKER, '--expires', '5', '--timeout', '0.5');
    expect(waited.code).toBe(3);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(waited.err.lines()).toHaveLength(1);
  });

  it('watch prints the ready ones and exits 3 naming how many are missing', async () => {
    const ready = [randomUUID(), randomUUID()];
    const missing = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of ready) {
      expect((await run('store', id, 'SUCCESS', `"${id}"`, '--broker', BROKER, '--expires', '30')).code).toBe(
        0,
      );
    }
    const watched = await run(
      'watch',
      ...ready,
      ...missing,
      '--broker',
      BROKER,
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

  it('wrong credentials: one error line, exit 1, password redacted', async () => {
    const r = await run('get', randomUUID(), '--broker', 'amqp://guest:secret@127.0.0.1:5672//');
    expect(r.code).toBe(1);
    expect(r.err.lines()).toHaveLength(1);
    expect(r.err.text).not.toContain('secret');
    expect(r.err.text).not.toMatch(/\n\s+at /);
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
