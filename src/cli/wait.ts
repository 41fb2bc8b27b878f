/**
 * `celery-amqp wait <task-id> [--timeout S] [--keep]`: blocks until the task is ready
 * (SUCCESS, FAILURE or REVOKED) and prints its meta. Exit 3 when the timeout comes first.
 *
 * Without `--keep` it waits as Celery's `wait_for` does, consuming the result message: the
 * result is then gone from the broker (another process's `wait` or `get` finds PENDING).
 * With `--keep` it polls as `get` does (the message is requeued each time), so the result
 * stays for others.
 *
 * @module
 */
import { Command, Option } from 'commander';
import type { AMQPBackend } from '../celery/amqp-backend.js';
import type { TaskMeta } from '../celery/backend-types.js';
import { isReady } from '../celery/states.js';
import { TimeoutError } from '../errors.js';
import { sleep } from '../kombu/retry.js';
import { CliError, EXIT, Output, isTimeout } from './io.js';
import type { CliIo } from './io.js';
import { printMeta } from './get.js';
import { addResultOptions, outputLimits, secondsToMs, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

interface WaitOptions extends ResultOptions {
  /** Milliseconds (parsed from seconds). */
  timeout?: number;
  keep?: boolean;
  /** Milliseconds between polls with --keep (parsed from seconds). */
  interval: number;
}

/**
 * Polls `getTaskMeta` (which leaves the result in its queue) every `intervalMs` until the
 * state is ready; throws TimeoutError once `deadline` (a `Date.now()` time) has passed.
 *
 * @example
 * ```ts
 * const meta = await pollUntilReady(backend, id, 500, Date.now() + 10_000);
 * ```
 */
export async function pollUntilReady(
  backend: AMQPBackend,
  taskId: string,
  intervalMs: number,
  deadline: number,
  signal?: AbortSignal,
): Promise<TaskMeta> {
  for (;;) {
    const meta = await backend.getTaskMeta(taskId, signal === undefined ? {} : { signal });
    if (isReady(meta.status)) return meta;
    const left = deadline - Date.now();
    if (left <= 0) throw new TimeoutError(`task ${taskId} not ready (last state ${meta.status})`);
    await sleep(Math.min(intervalMs, left), { signal });
  }
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
    .summary('wait until a task is ready and print it (consumes it unless --keep)')
    .description(
      'wait until a task is ready and print its result (exit 3 on timeout); consumes the result ' +
        'message unless --keep',
    )
    .argument('<task-id>', 'the task id')
    .option('--timeout <seconds>', 'give up after this many seconds (default: wait forever)', secondsToMs)
    .option('--keep', 'leave the result on the broker: poll as `get` does instead of consuming it')
    .addOption(
      new Option('--interval <seconds>', 'time between polls with --keep')
        .argParser(secondsToMs)
        .default(500, '0.5'),
    );
  addResultOptions(cmd).action(async (taskId: string, opts: WaitOptions) => {
    const out = new Output(io, opts.json === true, outputLimits(opts));
    // One deadline for every attempt: a retry after a lost connection does not restart it.
    const deadline = opts.timeout === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.timeout;
    const left = (): number => Math.max(0, deadline - Date.now());
    const meta = await withBackend(opts, io, (backend) =>
      opts.keep === true
        ? pollUntilReady(backend, taskId, opts.interval, deadline, io.signal)
        : backend.waitFor(taskId, {
            // A FAILURE is a result to print, not an error of this command.
            propagate: false,
            ...(opts.timeout === undefined ? {} : { timeout: left() }),
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
    printMeta(out, taskId, meta);
  });
  return cmd;
}
