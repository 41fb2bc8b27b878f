/**
 * `celery-amqp store <task-id> <status> <json-result>`: publishes one result as a Celery
 * worker would (declare exchange, queue and binding, then publish).
 *
 * @module
 */
import { Command } from 'commander';
import { ALL_STATES } from '../celery/states.js';
import { CliError, EXIT, Output } from './io.js';
import type { CliIo } from './io.js';
import { addResultOptions, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

interface StoreOptions extends ResultOptions {
  traceback?: string;
  force?: boolean;
}

/** How a custom state is spelled: upper-case, as Celery's own states and the custom ones its docs show. */
const CUSTOM_STATE = /^[A-Z][A-Z0-9_]*$/;

/**
 * Levenshtein distance, for "did you mean" (strings here are a few characters long).
 *
 * @example
 * ```ts
 * editDistance('SUCESS', 'SUCCESS'); // 1
 * ```
 */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * Why `status` would be a mistake to store, or undefined when it is a Celery state or an
 * upper-case custom state. A status that differs from a Celery state only in case or by a
 * typo or two (`success`, `SUCESS`) would be stored as a custom state no reader treats as
 * ready: a wait for it would never end.
 *
 * @example
 * ```ts
 * statusProblem('success'); // "'success' is not a Celery state; did you mean SUCCESS? ..."
 * statusProblem('PROGRESS'); // undefined (a custom state)
 * ```
 */
export function statusProblem(status: string): string | undefined {
  if (ALL_STATES.has(status)) return undefined;
  const near = [...ALL_STATES].find(
    (state) => state === status.toUpperCase() || editDistance(state, status.toUpperCase()) <= 2,
  );
  if (near === undefined && CUSTOM_STATE.test(status)) return undefined;
  const hint = near === undefined ? '' : `; did you mean ${near}?`;
  return (
    `'${status}' is not a Celery state${hint} (${[...ALL_STATES].join(', ')}; custom states are ` +
    `upper-case, e.g. PROGRESS); --force stores it anyway`
  );
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
    .argument('<status>', 'SUCCESS, FAILURE, STARTED, ... or an upper-case custom state (e.g. PROGRESS)')
    .argument('<json-result>', 'the result as JSON, e.g. 42, \'"text"\', \'{"a":1}\'')
    .option('--traceback <text>', 'traceback text stored with the result')
    .option('--force', 'store a status that is neither a Celery state nor an upper-case custom state');
  addResultOptions(cmd).action(async (taskId: string, status: string, json: string, opts: StoreOptions) => {
    if (taskId.trim() === '') throw new CliError('<task-id> must not be empty', EXIT.USAGE);
    const problem = opts.force === true ? undefined : statusProblem(status);
    if (problem !== undefined) throw new CliError(problem, EXIT.USAGE);
    const result = parseJsonResult(json);
    const out = new Output(io, opts.json === true);
    await withBackend(opts, io, (backend) =>
      backend.storeResult(taskId, result, status, { traceback: opts.traceback ?? null }),
    );
    out.result({ task_id: taskId, status, stored: true }, () => `stored ${status} for ${taskId}`);
  });
  return cmd;
}
