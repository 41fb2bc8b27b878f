/**
 * Result objects (Celery's `celery.result`): {@link AsyncResult} for one task,
 * {@link ResultSet} for several, {@link GroupResult} for a saved group, and the result tuple
 * (de)serialization the wire uses for `children` (docs/wire.md §3). The module others import.
 *
 * These modules depend on the {@link ResultBackend} interface only, never on the backend
 * class, so the backend can import them (for `groupResultFromTuple`) without an import cycle.
 *
 * @module
 */
export { AsyncResult, requireResultId } from './async-result.js';
export type {
  AsyncResultOptions,
  AsyncResultTuple,
  GetOptions,
  GroupResultTuple,
  ResultTuple,
} from './async-result.js';
export { ResultSet } from './result-set.js';
export type { JoinOptions } from './result-set.js';
export { GroupResult, groupResultFromTuple, resultFromTuple } from './group-result.js';
