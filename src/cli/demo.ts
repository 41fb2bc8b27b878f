/**
 * `celery-amqp demo [--n N]`: the library end to end in one process. Stores N results and
 * collects them through the backend (`getMany`), on the embedded `memory://` broker unless
 * `--broker` is given, then checks that every result arrived with the right value.
 *
 * @module
 */
import { Command, Option } from 'commander';
import { redact } from '../errors.js';
import { collectAll, rate, round, storeAll, taskIds } from './demo-runner.js';
import { CliError, EXIT, Output, formatCount, progress } from './io.js';
import type { CliIo } from './io.js';
import { addResultOptions, parseCount, secondsToMs, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

interface DemoOptions extends ResultOptions {
  n: number;
  concurrency: number;
  /** Milliseconds (parsed from seconds). */
  timeout: number;
}

/** The demo runs on the embedded broker unless told otherwise. */
export const DEMO_BROKER = 'memory://';

/**
 * Builds the `demo` command.
 *
 * @example
 * ```ts
 * program.addCommand(demoCommand(io));
 * ```
 */
export function demoCommand(io: CliIo): Command {
  const cmd = new Command('demo')
    .description('store N results and collect them through the backend (embedded broker by default)')
    .option('--n <count>', 'number of results', parseCount, 10_000)
    .option('--concurrency <count>', 'stores in flight', parseCount, 64)
    .addOption(
      new Option('--timeout <seconds>', 'give up collecting after this many seconds')
        .argParser(secondsToMs)
        .default(120_000, '120'),
    );
  addResultOptions(cmd, { brokerHelp: `broker URL (default: ${DEMO_BROKER}, the embedded broker)` }).action(
    async (opts: DemoOptions) => {
      const out = new Output(io, opts.json === true);
      // Only an explicit --broker leaves the embedded broker: the demo must run anywhere.
      const url = opts.broker ?? DEMO_BROKER;
      const ids = taskIds(opts.n);
      const outcome = await withBackend({ ...opts, broker: url }, io, async (backend) => {
        const storeBar = progress(io, 'store', ids.length);
        let storeMs: number;
        try {
          storeMs = await storeAll(backend, ids, opts.concurrency, () => storeBar.increment());
        } finally {
          storeBar.stop();
        }
        const collectBar = progress(io, 'collect', ids.length);
        try {
          const collected = await collectAll(backend, ids, opts.timeout, () => collectBar.increment());
          return { storeMs, ...collected };
        } finally {
          collectBar.stop();
        }
      });
      const totalMs = outcome.storeMs + outcome.ms;
      const seconds = totalMs / 1000;
      const perS = rate(opts.n, totalMs);
      out.result(
        {
          n: opts.n,
          received: outcome.received,
          wrong: outcome.wrong,
          seconds: round(seconds, 3),
          per_s: perS,
          store_per_s: rate(opts.n, outcome.storeMs),
          collect_per_s: rate(opts.n, outcome.ms),
          // getMany's cleanup after the last result, not counted in the rates above.
          teardown_ms: Math.round(outcome.teardownMs),
          broker: redact(url),
        },
        () =>
          `${opts.n} results stored and collected in ${seconds.toFixed(2)} s (${formatCount(perS)}/s; ` +
          `store ${formatCount(rate(opts.n, outcome.storeMs))}/s, collect ${formatCount(rate(opts.n, outcome.ms))}/s)`,
      );
      const missing = opts.n - outcome.received;
      if (missing > 0 || outcome.wrong > 0) {
        throw new CliError(
          `verification failed: ${missing} results missing, ${outcome.wrong} with a wrong value`,
          EXIT.ERROR,
        );
      }
    },
  );
  return cmd;
}
