/**
 * The bench on RabbitMQ: its command line in-process, and `npm run bench` as a contributor
 * runs it (compiled into .bench/build, where the getMany phase's child script exists).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runBenchCli } from '../../bench/cli.js';
import { harness } from '../cli-harness.js';
import { BROKER_URL } from '../fixture.js';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('bench', () => {
  it('--n 200 --rounds 2 --json prints one JSON object with every key and deletes its queues', async () => {
    const h = harness({}, { real: true });
    const code = await runBenchCli(
      ['--n', '200', '--rounds', '2', '--samples', '50', '--settle', '0', '--json', '--broker', BROKER_URL],
      h.io,
    );
    expect(h.stderr.text).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(h.stdout.lines().at(-1)!) as Record<string, unknown>;
    for (const key of [
      'store_per_s',
      'collect_per_s',
      'raw_store_per_s',
      'raw_collect_per_s',
      'waitfor_p50_ms',
      'waitfor_p99_ms',
      'rss_mb',
      'store_ratio',
      'collect_ratio',
    ]) {
      expect(typeof report[key], key).toBe('number');
    }
    expect(report['rounds']).toBe(2);
    const perRound = report['per_round'] as Array<Record<string, unknown>>;
    expect(perRound).toHaveLength(2);
    for (const r of perRound) expect(typeof r['raw_collect_per_s']).toBe('number');
    // Backend: warm-up + 2 rounds of N + samples; bare: warm-up + 2 rounds of N.
    expect(report['queues_deleted']).toBe(200 + 2 * 200 + 50 + 200 + 2 * 200);
  }, 120_000);

  it('`npm run bench` compiles and runs it, with the getMany memory phase in a child process', async () => {
    const args = ['--n', '50', '--rounds', '1', '--samples', '10', '--getmany-n', '300', '--settle', '0.05'];
    const { stdout } = await execFileAsync(
      'npm',
      ['run', '--silent', 'bench', '--', ...args, '--json', '--broker', BROKER_URL],
      { cwd: ROOT, timeout: 240_000 },
    );
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(report['getmany_n']).toBe(300);
    expect(report['getmany_per_s']).toBeGreaterThan(0);
    expect(report['getmany_rss_mb']).toBeGreaterThan(0);
    // Only a child process reports the storing process's own peak.
    expect(report['getmany_store_rss_mb']).toBeGreaterThan(0);
    // Backend: warm-up 50 + N + samples; bare: warm-up + N; getMany: 300.
    expect(report['queues_deleted']).toBe(50 + 50 + 10 + 50 + 50 + 300);
  }, 300_000);
});
