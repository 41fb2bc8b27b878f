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
import { addResultOptions, outputLimits, withBackend } from './options.js';
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
 * @param toJson - Writes a non-string field. @default toJsonLine (the default limits)
 * @example
 * ```ts
 * describeMeta(record); // 'task_id:   abc\nstatus:    SUCCESS\nresult:    42...'
 * ```
 */
export function describeMeta(
  record: Record<string, unknown>,
  toJson: (value: unknown) => string = (v) => toJsonLine(v),
): string {
  return Object.entries(record)
    .map(([key, value]) => {
      const text = typeof value === 'string' ? value : toJson(value);
      return `${`${key}:`.padEnd(11)}${text.includes('\n') ? `\n  ${text.replace(/\n/g, '\n  ')}` : text}`;
    })
    .join('\n');
}

/**
 * Prints a task's meta (JSON line or text) under the output's limits, naming the task in an
 * output-limit error.
 *
 * @example
 * ```ts
 * printMeta(out, id, await backend.getTaskMeta(id));
 * ```
 */
export function printMeta(out: Output, taskId: string, meta: TaskMeta): void {
  const record = metaRecord(taskId, meta);
  const label = `result of task ${taskId}`;
  out.result(record, () => describeMeta(record, (v) => out.toJson(v, label)), label);
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
    const out = new Output(io, opts.json === true, outputLimits(opts));
    const meta = await withBackend(opts, io, (backend) =>
      backend.getTaskMeta(taskId, io.signal === undefined ? {} : { signal: io.signal }),
    );
    printMeta(out, taskId, meta);
  });
  return cmd;
}
