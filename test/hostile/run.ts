/**
 * The hostile-peer run as a process: `node run.js --seed 1 --run memory://=9000 --run
 * amqp://guest:guest@127.0.0.1:5672//=1000`. Runs each plan in turn in this one process,
 * prints one JSON report line per run and a total line with the process's crashes
 * (uncaught exceptions, unhandled rejections) and its peak RSS, and exits 1 unless every
 * case ended in time, decoded or typed, with no normal message lost and nothing crashed.
 *
 * `npm run hostile` builds it and, with no `--run`, runs 10,000 cases on the broker of
 * `CELERY_BROKER_URL` (else amqp://guest:guest@localhost:5672//); its figures are in
 * docs/reliability.md. `npm run hostile -- --run memory://=10000` runs on the embedded broker.
 *
 * @module
 */
import { resolveBrokerUrl } from '../../src/transport/url.js';
import { runPeer } from './peer.js';
import type { PeerReport } from './peer.js';

interface Args {
  seed: number;
  runs: Array<{ url: string; cases: number }>;
  timeout: number | undefined;
  maxDecodedBytes: number | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { seed: 1, runs: [], timeout: undefined, maxDecodedBytes: undefined };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ''];
    if (flag === '--seed') args.seed = Number(value);
    else if (flag === '--timeout') args.timeout = Number(value);
    else if (flag === '--max-decoded-bytes') args.maxDecodedBytes = Number(value);
    else if (flag === '--run') {
      const at = value.lastIndexOf('=');
      args.runs.push({ url: value.slice(0, at), cases: Number(value.slice(at + 1)) });
    } else throw new Error(`unknown argument ${String(flag)}`);
  }
  // The full run: 10,000 cases on the real broker.
  if (args.runs.length === 0) args.runs.push({ url: resolveBrokerUrl(undefined), cases: 10_000 });
  return args;
}

const crashes: string[] = [];
process.on('uncaughtException', (err) => void crashes.push(`uncaught: ${String(err)}`));
process.on('unhandledRejection', (err) => void crashes.push(`unhandled rejection: ${String(err)}`));

process.on('exit', () => {
  if (crashes.length > 0) process.stderr.write(`crashes:\n${crashes.slice(0, 10).join('\n')}\n`);
});

const args = parseArgs(process.argv.slice(2));
const reports: PeerReport[] = [];
const started = performance.now();
for (const [n, run] of args.runs.entries()) {
  // A failure of the harness itself is a failed run, never a silent exit.
  const report = await runPeer({
    url: run.url,
    seed: args.seed + n,
    cases: run.cases,
    ...(args.timeout === undefined ? {} : { caseTimeoutMs: args.timeout }),
    ...(args.maxDecodedBytes === undefined ? {} : { maxDecodedBytes: args.maxDecodedBytes }),
    onProgress: (done, r) =>
      process.stderr.write(
        `${r.url}: ${done}/${run.cases} cases, ${(r.durationMs / 1000).toFixed(0)} s, ` +
          `rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`,
      ),
  }).catch((err: unknown) => {
    process.stderr.write(
      `the run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(2);
  });
  reports.push(report);
  process.stdout.write(`${JSON.stringify({ run: report })}\n`);
}
const sum = (f: (r: PeerReport) => number): number => reports.reduce((a, r) => a + f(r), 0);
const total = {
  cases: sum((r) => r.cases),
  decoded: sum((r) => r.doors.amqp.decoded + r.doors.rpc.decoded + r.doors.worker.decoded),
  typed: sum((r) => r.doors.amqp.typed + r.doors.rpc.typed + r.doors.worker.typed),
  hangs: sum((r) => r.hangs),
  untyped: sum((r) => r.untyped),
  crashes: crashes.length,
  normalSent: sum((r) => r.normal.sent),
  normalLost: sum((r) => r.normal.lost),
  unsendable: sum((r) => r.unsendable),
  keptMissing: sum((r) => r.kept.missing),
  reportedUntyped: sum((r) => r.reported.untyped),
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
  durationMs: Math.round(performance.now() - started),
  crashDetails: crashes.slice(0, 10),
};
process.stdout.write(`${JSON.stringify({ total })}\n`);
const clean =
  total.hangs === 0 &&
  total.untyped === 0 &&
  total.crashes === 0 &&
  total.normalLost === 0 &&
  total.keptMissing === 0 &&
  total.reportedUntyped === 0;
process.exitCode = clean ? 0 : 1;
