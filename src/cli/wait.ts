/**
 * `celery-amqp wait <task-id> [--timeout S]`: blocks until the task is ready (SUCCESS,
 * FAILURE or REVOKED) and prints its meta. Exit 3 when the timeout comes first.
 *
 * @module
 */
import { Command } from 'commander';
import { CliError, EXIT, Output, isTimeout } from './io.js';
import type { CliIo } from './io.js';
import { describeMeta, metaRecord } from './get.js';
import { addResultOptions, secondsToMs, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

interface WaitOptions extends ResultOptions {
  /** Milliseconds (parsed from seconds). */
  timeout?: number;
}

/**
 * Builds the `wait` command.
 *
 * @example
 * ```ts
 * program.addCommand(waitCommand(io));
 * ```
 */
export function waitCommand(io: CliIo): Command {
  const cmd = new Command('wait')
    .description('wait until a task is ready and print its result (exit 3 on timeout)')
    .argument('<task-id>', 'the task id')
    .option('--timeout <seconds>', 'give up after this many seconds (default: wait forever)', secondsToMs);
  addResultOptions(cmd).action(async (taskId: string, opts: WaitOptions) => {
    const out = new Output(io, opts.json === true);
    const meta = await withBackend(opts, io, (backend) =>
      backend.waitFor(taskId, {
        // A FAILURE is a result to print, not an error of this command.
        propagate: false,
        ...(opts.timeout === undefined ? {} : { timeout: opts.timeout }),
        ...(io.signal === undefined ? {} : { signal: io.signal }),
      }),
    ).catch((err: unknown) => {
      if (isTimeout(err)) {
        throw new CliError(
          `timed out after ${(opts.timeout ?? 0) / 1000} s waiting for ${taskId}`,
          EXIT.TIMEOUT,
        );
      }
      throw err;
    });
    const record = metaRecord(taskId, meta);
    out.result(record, () => describeMeta(record));
  });
  return cmd;
}
