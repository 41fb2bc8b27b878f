/**
 * The events a {@link Worker} emits (Node's EventEmitter): its errors, the messages it
 * refused at the door, and each task's lifecycle, named as Celery's monitoring events.
 *
 * @module
 */
import type { InvalidTaskError, Retry } from './exceptions.js';
import type { TaskInfo } from './request.js';

/**
 * Events of a Worker and their arguments.
 *
 * @example
 * ```ts
 * worker.on('error', (err) => log(err));
 * worker.on('task-failed', (task, err) => metrics.fail(task.name, err));
 * ```
 */
export interface WorkerEvents {
  /**
   * An operational error nobody else receives: a result that could not be stored (the
   * message went back to the queue), a failed qos update, a control command that failed.
   * Without a listener it is logged.
   */
  error: [error: Error];
  /** A message rejected at the door (bad body, headers, args, ...); also logged. */
  invalid: [error: InvalidTaskError];
  /** A valid task for a registered name arrived. */
  'task-received': [task: TaskInfo];
  /** A task started running. */
  'task-started': [task: TaskInfo];
  /** A task's SUCCESS was stored; `runtime` in seconds. */
  'task-succeeded': [task: TaskInfo, result: unknown, runtime: number];
  /** A task's FAILURE was stored (NotRegistered and time limits included). */
  'task-failed': [task: TaskInfo, error: unknown];
  /** A task was sent again by a retry; RETRY was stored. */
  'task-retried': [task: TaskInfo, reason: Retry];
  /** A task was stored REVOKED: expired, revoked, or terminated while running. */
  'task-revoked': [task: TaskInfo, how: { terminated: boolean; expired: boolean }];
  /** A task's message was rejected (requeued or not) without a result. */
  'task-rejected': [task: TaskInfo, requeue: boolean];
  /** Shutdown began: `warm` (finish running tasks) or `cold` (give everything back). */
  shutdown: [how: 'warm' | 'cold'];
}
