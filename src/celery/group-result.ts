/**
 * {@link GroupResult}: a saved group's results (Celery's `celery.result.GroupResult`), and
 * rebuilding result objects from their tuples (Celery's `result_from_tuple`).
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import { AsyncResult, requireResultId } from './async-result.js';
import type { AsyncResultOptions, GroupResultTuple } from './async-result.js';
import type { ResultBackend } from './backend-types.js';
import { pythonRepr } from './exceptions.js';
import { ResultSet } from './result-set.js';

/**
 * A group's results under the group id (Celery's `GroupResult`): a {@link ResultSet} that
 * can be saved to and restored from the backend. Not a thenable.
 *
 * @typeParam T - The members' return type (unchecked). @default unknown
 * @example
 * ```ts
 * const group = new GroupResult(groupId, ids.map((id) => new AsyncResult(id, backend)), backend);
 * await group.save();
 * const again = await GroupResult.restore(groupId, backend);
 * ```
 */
export class GroupResult<T = unknown> extends ResultSet<T> {
  /** The group id. */
  readonly id: string;
  /** The result this group was chained after, or null. @default null */
  parent: AsyncResult | GroupResult | null;

  /**
   * @param id - The group id.
   * @param results - The members.
   * @param backend - Where the group is saved. @default the first member's backend
   * @param options - `parent`. @default {}
   * @throws ArgumentError when `id` is empty.
   */
  constructor(
    id: string,
    results: Iterable<AsyncResult<T>>,
    backend?: ResultBackend,
    options: AsyncResultOptions = {},
  ) {
    super(results, backend);
    this.id = requireResultId(id, 'group id');
    this.parent = options.parent ?? null;
  }

  /** The members (Celery's `children`). */
  get children(): Array<AsyncResult<T>> {
    return this.results;
  }

  /**
   * Saves the group through `backend.saveGroup`, so that {@link GroupResult.restore} can
   * rebuild it.
   *
   * @example
   * ```ts
   * await group.save();
   * ```
   */
  async save(): Promise<void> {
    await this.backend.saveGroup(this.id, this);
  }

  /**
   * Deletes the saved group through `backend.deleteGroup`.
   *
   * @example
   * ```ts
   * await group.delete();
   * ```
   */
  async delete(): Promise<void> {
    await this.backend.deleteGroup(this.id);
  }

  /**
   * Restores a saved group, or null when none is saved under `id`. A backend that hands back
   * a tuple instead of a GroupResult is accepted too.
   *
   * @param options - `cache` (use a cached copy, default true), `signal`. @default {}
   * @example
   * ```ts
   * const group = await GroupResult.restore(groupId, backend);
   * ```
   */
  static async restore(
    id: string,
    backend: ResultBackend,
    options: { cache?: boolean | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<GroupResult | null> {
    const restored = await backend.restoreGroup(requireResultId(id, 'group id'), options);
    if (restored === null || restored === undefined) return null;
    if (restored instanceof GroupResult) return restored;
    return groupResultFromTuple(restored, backend);
  }

  /**
   * The group tuple `[group_id, [child tuples...]]`.
   *
   * @example
   * ```ts
   * group.asTuple(); // ['g', [[['a', null], null], [['b', null], null]]]
   * ```
   */
  asTuple(): GroupResultTuple {
    return [this.id, this.results.map((r) => r.asTuple())];
  }

  /** JSON form: the group tuple. */
  toJSON(): GroupResultTuple {
    return this.asTuple();
  }

  override toString(): string {
    return `<GroupResult: ${this.id} [${this.results.map((r) => r.id).join(', ')}]>`;
  }
}

/** Splits a tuple's head: a bare id (3.1) or `[id, parentTuple | null]`. */
function parseHead(head: unknown, backend: ResultBackend): [string, AsyncResult | GroupResult | null] {
  if (typeof head === 'string') return [requireResultId(head, 'result id'), null];
  if (Array.isArray(head) && head.length === 2) {
    const [id, parent] = head as [unknown, unknown];
    return [
      requireResultId(id, 'result id'),
      parent === null || parent === undefined ? null : resultFromTuple(parent, backend),
    ];
  }
  throw new ArgumentError(`not a result tuple head: ${quote(head)}`);
}

/**
 * Rebuilds a result object from its tuple (Celery's `result_from_tuple`):
 * `[[id, parent], null]` gives an {@link AsyncResult}, `[group_id, [children]]` (or
 * `[[group_id, parent], [children]]`, Celery 4.x's form) a {@link GroupResult}. Result
 * objects are returned as they are.
 *
 * @throws ArgumentError for anything else.
 * @example
 * ```ts
 * resultFromTuple([['a', null], null], backend); // AsyncResult 'a'
 * ```
 */
export function resultFromTuple(tuple: unknown, backend: ResultBackend): AsyncResult | GroupResult {
  if (tuple instanceof AsyncResult || tuple instanceof GroupResult) return tuple;
  if (!Array.isArray(tuple) || tuple.length !== 2) {
    throw new ArgumentError(`not a result tuple: ${quote(tuple)}`);
  }
  const [head, nodes] = tuple as [unknown, unknown];
  const [id, parent] = parseHead(head, backend);
  if (nodes === null || nodes === undefined) return new AsyncResult(id, backend, { parent });
  if (!Array.isArray(nodes)) throw new ArgumentError(`not a result tuple: ${quote(tuple)}`);
  const children = nodes.map((child: unknown) => {
    const r = resultFromTuple(child, backend);
    if (r instanceof GroupResult) {
      // A ResultSet holds AsyncResults only; Celery nests groups the same way in practice
      // only through chords, whose members are plain results.
      throw new ArgumentError(`nested group ${r.id} inside group ${id} is not supported`);
    }
    return r;
  });
  return new GroupResult(id, children, backend, { parent });
}

/**
 * Rebuilds a {@link GroupResult} from `[group_id, [child tuples...]]` (or Celery 4.x's
 * `[[group_id, parent], [...]]`). The backend's `restoreGroup` uses it.
 *
 * @throws ArgumentError when the tuple is not a group tuple.
 * @example
 * ```ts
 * groupResultFromTuple(['g', [[['a', null], null]]], backend).results[0]?.id; // 'a'
 * ```
 */
export function groupResultFromTuple(tuple: unknown, backend: ResultBackend): GroupResult {
  const r = resultFromTuple(tuple, backend);
  if (!(r instanceof GroupResult)) throw new ArgumentError(`not a group tuple: ${quote(tuple)}`);
  return r;
}

/** A foreign value quoted in an error message: its repr, cut (a tuple may be a decoded bomb). */
function quote(value: unknown): string {
  return pythonRepr(value, 200);
}
