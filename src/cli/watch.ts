/**
 * `celery-amqp watch <task-id>... [--timeout S]`: collects many results with one consumer
 * (Celery's `get_many`), printing each as it arrives. Exit 3, naming how many are missing,
 * when the timeout leaves some out. Like `wait`, it consumes the result messages it prints.
 *
 * @module
 */
import { Command } from 'commander';
import { CliError, EXIT, Output, isTimeout, progress } from './io.js';
import type { CliIo } from './io.js';
import { metaRecord } from './get.js';
import { addResultOptions, outputLimits, secondsToMs, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

interface WatchOptions extends ResultOptions {
  /** Milliseconds (parsed from seconds). */
  timeout?: number;
}

/**
 * Builds the `watch` command.
 *
 * @example
 * ```ts
 * program.addCommand(watchCommand(io));
 * ```
 */
export function watchCommand(io: CliIo): Command {
  const cmd = new Command('watch')
    .summary('print results as they become ready (consumes them)')
    .description(
      'print results as they become ready (exit 3 if the timeout leaves some missing); consumes the ' +
        'result messages',
    )
    .argument('<task-id...>', 'the task ids')
    .option('--timeout <seconds>', 'give up after this many seconds (default: wait forever)', secondsToMs);
  addResultOptions(cmd).action(async (taskIds: string[], opts: WatchOptions) => {
    const out = new Output(io, opts.json === true, outputLimits(opts));
    const wanted = new Set(taskIds);
    const received = new Set<string>();
    const bar = progress(io, 'watch', wanted.size);
    let timedOut = false;
    // One deadline for every attempt: a retry after a lost connection does not restart it.
    const deadline = opts.timeout === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.timeout;
    try {
      await withBackend(opts, io, async (backend) => {
        const pending = [...wanted].filter((id) => !received.has(id));
        const results = backend.getMany(pending, {
          ...(opts.timeout === undefined ? {} : { timeout: Math.max(0, deadline - Date.now()) }),
          ...(io.signal === undefined ? {} : { signal: io.signal }),
        });
        try {
          for await (const [taskId, meta] of results) {
            if (received.has(taskId)) continue;
            received.add(taskId);
            bar.increment();
            const record = metaRecord(taskId, meta);
            const label = `result of task ${taskId}`;
            out.result(
              record,
              () => `${taskId} ${meta.status} ${out.toJson(record['result'], label)}`,
              label,
            );
            if (received.size === wanted.size) break;
          }
        } catch (err) {
          if (!isTimeout(err)) throw err;
          timedOut = true;
        }
      });
    } finally {
      bar.stop();
    }
    const missing = wanted.size - received.size;
    if (missing > 0) {
      const why =
        timedOut || opts.timeout !== undefined ? `timed out after ${(opts.timeout ?? 0) / 1000} s: ` : '';
      throw new CliError(`${why}${missing} of ${wanted.size} results missing`, EXIT.TIMEOUT);
    }
  });
  return cmd;
}
