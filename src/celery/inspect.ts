/**
 * Inspecting workers (Celery's `app.control.inspect()`): each method broadcasts one
 * inspect command through {@link Control} and gathers the replies by node name.
 *
 * @module
 */
import type { Control, InspectOptions, NodeReply } from './control.js';

/** Celery's `flatten_reply`: `[{a: x}, {b: y}]` -> `{a: x, b: y}`. */
function flatten<T>(replies: NodeReply[]): Record<string, T> {
  const out: Record<string, T> = {};
  for (const r of replies) Object.assign(out, r);
  return out;
}

/**
 * Inspects workers (Celery's `Inspect`): each method resolves with `{<hostname>: reply}`
 * for the workers that answered within the timeout (empty when none did).
 *
 * @example
 * ```ts
 * const active = await app.control.inspect().active(); // { 'node1@host': [{ id, name, ... }] }
 * ```
 */
export class Inspect {
  readonly #control: Control;
  readonly #options: InspectOptions;

  constructor(control: Control, options: InspectOptions = {}) {
    this.#control = control;
    this.#options = options;
  }

  async #request<T>(method: string, args: Record<string, unknown> = {}): Promise<Record<string, T>> {
    const replies = await this.#control.broadcast(method, { ...this.#options, arguments: args, reply: true });
    return flatten<T>(replies);
  }

  /** `{ok: 'pong'}` per worker. */
  ping(): Promise<Record<string, { ok: string }>> {
    return this.#request('ping');
  }

  /** Running tasks per worker (with `safe`, args as repr strings). */
  active(safe?: boolean): Promise<Record<string, Array<Record<string, unknown>>>> {
    return this.#request('active', safe === undefined ? {} : { safe });
  }

  /** Tasks received and waiting for a slot. */
  reserved(): Promise<Record<string, Array<Record<string, unknown>>>> {
    return this.#request('reserved');
  }

  /** Tasks held for their eta: `{eta, priority, request}`. */
  scheduled(): Promise<Record<string, Array<Record<string, unknown>>>> {
    return this.#request('scheduled');
  }

  /** Revoked ids remembered. */
  revoked(): Promise<Record<string, string[]>> {
    return this.#request('revoked');
  }

  /** Registered task names (with the attributes asked for). */
  registered(...taskinfoitems: string[]): Promise<Record<string, string[]>> {
    return this.#request('registered', { taskinfoitems });
  }

  /** Worker statistics. */
  stats(): Promise<Record<string, Record<string, unknown>>> {
    return this.#request('stats');
  }

  /** Queues consumed. */
  activeQueues(): Promise<Record<string, Array<Record<string, unknown>>>> {
    return this.#request('active_queues');
  }

  /** Configuration. */
  conf(withDefaults = false): Promise<Record<string, Record<string, unknown>>> {
    return this.#request('conf', { with_defaults: withDefaults });
  }

  /** Logical clock value. */
  clock(): Promise<Record<string, { clock: number }>> {
    return this.#request('clock');
  }

  /** `{id: [state, info]}` for the tasks asked about. */
  queryTask(...ids: string[]): Promise<Record<string, Record<string, [string, Record<string, unknown>]>>> {
    return this.#request('query_task', { ids });
  }

  /** Software and platform report. */
  report(): Promise<Record<string, { ok: string }>> {
    return this.#request('report');
  }
}
