/**
 * The hostile peer in CI (issue 13): 10,000 seeded hostile messages through the three doors
 * (an AMQPBackend's result queues, an RPCBackend's reply queue, a Worker's task queue), each
 * followed by a normal message through the same door: 1,000 on RabbitMQ and 9,000 on
 * memory://, which runs the same decode paths faster. Each slice is a child process
 * (test/hostile/run.ts) measured from outside. Every case must end within its bound in a
 * decoded value or a typed error, no normal message may be lost, a message a poll could not
 * read must stay queued, nothing may crash, and each process must stay under 300 MB of peak
 * RSS. The full run on RabbitMQ is `npm run hostile` (figures in docs/reliability.md).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_URL } from '../fixture.js';
import { runMeasured } from '../hostile/measure.js';
import type { Measured } from '../hostile/measure.js';
import { buildCli } from './cli-build.js';
import type { CliBuild } from './cli-build.js';

const MB = 1024 * 1024;

/**
 * The run's V8 heap is capped, as a service facing untrusted publishers would run: its live
 * heap stays 15-25 MB, but without a cap V8 lets the garbage of 10,000 decodes pile up to
 * 280-300 MB of RSS before collecting it (docs/reliability.md). `npm run hostile` runs so too.
 */
const NODE_FLAGS = ['--max-old-space-size=192'];

let build: CliBuild;

beforeAll(async () => {
  build = await buildCli(['test/hostile']);
}, 60_000);

afterAll(() => build?.remove());

interface Total {
  cases: number;
  decoded: number;
  typed: number;
  hangs: number;
  untyped: number;
  crashes: number;
  normalSent: number;
  normalLost: number;
  unsendable: number;
  keptMissing: number;
  reportedUntyped: number;
  durationMs: number;
}

function total(r: Measured): Total {
  const line = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { total?: Total })
    .find((l) => l.total !== undefined);
  if (line?.total === undefined) throw new Error(`no report (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  return line.total;
}

describe('the hostile peer (10,000 seeded cases)', () => {
  it('every case ends decoded or typed in time; 0 normal messages lost; no crash; < 300 MB each', async () => {
    const script = join(build.dir, 'test', 'hostile', 'run.js');
    const slices = [
      { url: 'memory://', cases: 9000, seed: 13 },
      { url: BROKER_URL, cases: 1000, seed: 1013 },
    ];
    // Side by side: one process each, measured from outside.
    const runs = await Promise.all(
      slices.map((s) =>
        runMeasured(
          process.execPath,
          [...NODE_FLAGS, script, '--seed', String(s.seed), '--run', `${s.url}=${s.cases}`],
          {
            killAfterMs: 170_000,
          },
        ),
      ),
    );
    let generated = 0;
    for (const [n, r] of runs.entries()) {
      const slice = slices[n];
      if (slice === undefined) continue;
      const t = total(r);
      console.log(
        `${slice.url.replace(/:[^:@/]*@/, ':****@')}: ${t.cases} cases (${t.decoded} decoded, ${t.typed} typed, ` +
          `${t.unsendable} refused by the publisher), ${t.hangs} hangs, ${t.crashes} crashes, ` +
          `${t.normalLost}/${t.normalSent} normal lost, peak RSS ${(r.peakRss / MB).toFixed(0)} MB, ` +
          `${(t.durationMs / 1000).toFixed(1)} s`,
      );
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(t.cases + t.unsendable).toBe(slice.cases);
      expect(t.unsendable).toBeLessThan(slice.cases / 100);
      expect(t.decoded + t.typed).toBe(t.cases);
      expect({ hangs: t.hangs, untyped: t.untyped, crashes: t.crashes, lost: t.normalLost }).toEqual({
        hangs: 0,
        untyped: 0,
        crashes: 0,
        lost: 0,
      });
      expect(t.normalSent).toBe(t.cases);
      expect(t.keptMissing).toBe(0);
      expect(t.reportedUntyped).toBe(0);
      expect(r.peakRss).toBeGreaterThan(0);
      expect(r.peakRss).toBeLessThan(300 * MB);
      generated += slice.cases;
    }
    expect(generated).toBe(10_000);
  }, 180_000);
});
