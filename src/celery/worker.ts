/**
 * The Node worker (see `worker/worker.ts`), and what its users need: options, the task
 * context, task options, events and errors.
 *
 * @module
 */
export { Worker } from './worker/worker.js';
export type { CloseOptions } from './worker/worker.js';
export type { WorkerOptions, WorkerSettings, ResolvedWorkerOptions } from './worker/worker-settings.js';
export { DEFAULT_WORKER_SETTINGS } from './worker/worker-settings.js';
export type { TaskContext, TaskHandler, RetryOptions } from './worker/context.js';
export { RegisteredTask } from './worker/task-registry.js';
export type { TaskDefinition, TaskOptions, ErrorMatcher } from './worker/task-registry.js';
export type { WorkerEvents } from './worker/worker-events.js';
export type { WorkerCounters } from './worker/state.js';
export type { TaskInfo, DeliveryInfo } from './worker/request.js';
export type { LogLevel } from './worker/task-log.js';
export {
  InvalidTaskError,
  MaxRetriesExceededError,
  Retry,
  SoftTimeLimitExceeded,
  TaskTerminated,
  TimeLimitExceeded,
  WorkerLostError,
} from './worker/exceptions.js';
