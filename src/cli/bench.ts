/**
 * `celery-amqp bench`: the backend against bare amqplib on the same broker, in the same run,
 * at the same concurrency (see bench/run-bench.ts for the plan and bench/raw-amqplib.ts for
 * the fairness rules). With `--json` the last stdout line is one JSON object; `--out FILE`
 * also writes it to a file (bench/results/latest.json feeds scripts/bench-chart.mjs).
 *
 * @module
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import { redact } from '../errors.js';
import { runBench } from './bench/run-bench.js';
import type { BenchReport } from './bench/run-bench.js';
import { Output, formatCount, progress } from './io.js';
import type { CliIo } from './io.js';
import { addResultOptions, brokerUrl, openBackend, parseCount, secondsToMs } from './options.js';
import type { ResultOptions } from './options.js';

interface BenchOptions extends ResultOptions {
  n: number;
  concurrency: number;
  samples: number;
  getmanyN?: number;
  getmanyBroker?: string;
  timeout: number;
  out?: string;
  verbose?: boolean;
}

/** The figures and the context needed to read them later. */
export type BenchRecord = BenchReport & { broker: string; node: string; date: string };

/**
 * The readable summary of a report.
 *
 * @example
 * ```ts
 * describeReport(record); // multi-line table
 * ```
 */
export function describeReport(r: BenchRecord): string {
  const ratio = (x: number | null): string => (x === null ? 'n/a' : `${x.toFixed(2)}x`);
  const perS = (x: number | null): string => (x === null ? 'n/a' : `${formatCount(x)}/s`);
  const lines = [
    `bench: N=${r.n}, concurrency ${r.concurrency}, broker ${r.broker}`,
    `                 backend      bare amqplib   ratio`,
    `  store     ${perS(r.store_per_s).padStart(12)}  ${perS(r.raw_store_per_s).padStart(14)}   ${ratio(r.store_ratio)}`,
    `  collect   ${perS(r.collect_per_s).padStart(12)}  ${perS(r.raw_collect_per_s).padStart(14)}   ${ratio(r.collect_ratio)}`,
    `  collect teardown (after the last result): backend ${r.collect_teardown_ms} ms, bare ${r.raw_collect_teardown_ms ?? 'n/a'} ms`,
    `  waitFor p50 ${r.waitfor_p50_ms.toFixed(2)} ms, p99 ${r.waitfor_p99_ms.toFixed(2)} ms (${r.samples} samples)`,
    `  peak RSS ${r.rss_mb} MB`,
  ];
  if (r.getmany_n !== undefined) {
    lines.push(
      `  getMany over ${formatCount(r.getmany_n)} ids: ${perS(r.getmany_per_s ?? null)}, peak RSS ${r.getmany_rss_mb} MB`,
    );
  }
  lines.push(`  ${r.queues_deleted} queues deleted`);
  return lines.join('\n');
}

/**
 * Builds the `bench` command.
 *
 * @example
 * ```ts
 * program.addCommand(benchCommand(io));
 * ```
 */
export function benchCommand(io: CliIo): Command {
  const cmd = new Command('bench')
    .description('measure store/collect throughput and waitFor latency against bare amqplib')
    .option('--n <count>', 'results per side', parseCount, 4000)
    .option('--concurrency <count>', 'stores in flight (backend) = channels (bare amqplib)', parseCount, 64)
    .option('--samples <count>', 'sequential waitFor samples', parseCount, 1000)
    .option('--getmany-n <count>', 'also measure peak RSS of getMany over this many ids', parseCount)
    .option('--getmany-broker <url>', 'broker of the getMany phase (default: --broker)')
    .addOption(
      new Option('--timeout <seconds>', 'deadline of each collect phase')
        .argParser(secondsToMs)
        .default(300_000, '300'),
    )
    .option('--out <file>', 'also write the JSON report to this file')
    .option('--verbose', 'log each phase on stderr (the default when stderr is a terminal)');
  addResultOptions(cmd).action(async (opts: BenchOptions) => {
    const out = new Output(io, opts.json === true);
    const url = brokerUrl(opts, io);
    const report = await runBench({
      url,
      n: opts.n,
      concurrency: opts.concurrency,
      samples: opts.samples,
      getmanyN: opts.getmanyN ?? 0,
      getmanyUrl: opts.getmanyBroker ?? url,
      timeoutMs: opts.timeout,
      exchange: opts.exchange ?? 'celeryresults',
      persistent: opts.transient !== true,
      expires: opts.expires === undefined ? 86_400_000 : opts.expires,
      // Same number of channels as the bare side: the ratio compares code, not parallelism.
      open: (brokerForPhase) =>
        openBackend({ ...opts, broker: brokerForPhase }, io, undefined, { storeChannels: opts.concurrency }),
      phase: (label, total) => progress(io, label, total),
      log: (text) => {
        if (io.isTTY.stderr || opts.verbose === true) io.stderr.write(`${text}\n`);
      },
    });
    const record: BenchRecord = {
      ...report,
      broker: redact(url),
      node: process.version,
      date: new Date().toISOString(),
    };
    if (opts.out !== undefined) {
      await mkdir(dirname(opts.out), { recursive: true });
      await writeFile(opts.out, `${JSON.stringify(record, null, 2)}\n`);
    }
    out.result(record, () => describeReport(record));
  });
  return cmd;
}
