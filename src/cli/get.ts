/**
 * `celery-amqp get <task-id>`: the current meta of a task, without consuming it (Celery's
 * `get_task_meta`: the latest message is requeued, so `get` can be repeated).
 *
 * @module
 */
import { Command } from 'commander';
import type { TaskMeta } from '../celery/backend-types.js';
import { Output, toJsonLine } from './io.js';
import type { CliIo } from './io.js';
import { addResultOptions, withBackend } from './options.js';
import type { ResultOptions } from './options.js';

/**
 * The five wire keys of a meta first, then any `result_extended` extras, as printed.
 *
 * @example
 * ```ts
 * metaRecord(meta); // { task_id, status, result, traceback, children, ...extras }
 * ```
 */
export function metaRecord(taskId: string, meta: TaskMeta): Record<string, unknown> {
  return {
    ...meta,
    task_id: meta.task_id ?? taskId,
    status: meta.status,
    result: meta.result ?? null,
    traceback: meta.traceback ?? null,
    children: meta.children ?? null,
  };
}

/**
 * The readable form of a meta: one `key: value` line per field.
 *
 * @example
 * ```ts
 * describeMeta(record); // 'task_id:   abc\nstatus:    SUCCESS\nresult:    42...'
 * ```
 */
export function describeMeta(record: Record<string, unknown>): string {
  return Object.entries(record)
    .map(([key, value]) => {
      const text = typeof value === 'string' ? value : toJsonLine(value);
      return `${`${key}:`.padEnd(11)}${text.includes('\n') ? `\n  ${text.replace(/\n/g, '\n  ')}` : text}`;
    })
    .join('\n');
}

/**
 * Builds the `get` command.
 *
 * @example
 * ```ts
 * program.addCommand(getCommand(io));
 * ```
 */
export function getCommand(io: CliIo): Command {
  const cmd = new Command('get')
    .summary('print the current state of a task (does not consume it)')
    .description('print the current state of a task (PENDING when unknown); leaves the result on the broker')
    .argument('<task-id>', 'the task id');
  addResultOptions(cmd).action(async (taskId: string, opts: ResultOptions) => {
    const out = new Output(io, opts.json === true);
    const meta = await withBackend(opts, io, (backend) =>
      backend.getTaskMeta(taskId, io.signal === undefined ? {} : { signal: io.signal }),
    );
    const record = metaRecord(taskId, meta);
    out.result(record, () => describeMeta(record));
  });
  return cmd;
}
