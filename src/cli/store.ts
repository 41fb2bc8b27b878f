/**
 * `celery-amqp store <task-id> <status> <json-result>`: publishes one result as a Celery
 * worker would (declare exchange, queue and binding, then publish).
 *
 * @module
 */
import { Command } from 'commander';
import { CliError, EXIT, Output } from './io.js';
import type { CliIo } from './io.js';
import { addResultOptions, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

interface StoreOptions extends ResultOptions {
  traceback?: string;
}

/**
 * Parses the `<json-result>` argument. Not JSON is a usage error, not a string result:
 * silently storing `"tru"` for a mistyped `true` would be worse than refusing.
 *
 * @example
 * ```ts
 * parseJsonResult('{"a":1}'); // { a: 1 }
 * ```
 */
export function parseJsonResult(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(
      `invalid <json-result> (${(err as Error).message}); quote strings as '"text"'`,
      EXIT.USAGE,
    );
  }
}

/**
 * Builds the `store` command.
 *
 * @example
 * ```ts
 * program.addCommand(storeCommand(io));
 * ```
 */
export function storeCommand(io: CliIo): Command {
  const cmd = new Command('store')
    .description('store a task result (as a worker does)')
    .argument('<task-id>', 'the task id')
    .argument('<status>', 'SUCCESS, FAILURE, STARTED, ... or a custom state')
    .argument('<json-result>', 'the result as JSON, e.g. 42, \'"text"\', \'{"a":1}\'')
    .option('--traceback <text>', 'traceback text stored with the result');
  addResultOptions(cmd).action(async (taskId: string, status: string, json: string, opts: StoreOptions) => {
    if (taskId.trim() === '') throw new CliError('<task-id> must not be empty', EXIT.USAGE);
    const result = parseJsonResult(json);
    const out = new Output(io, opts.json === true);
    await withBackend(opts, io, (backend) =>
      backend.storeResult(taskId, result, status, { traceback: opts.traceback ?? null }),
    );
    out.result({ task_id: taskId, status, stored: true }, () => `stored ${status} for ${taskId}`);
  });
  return cmd;
}
