/**
 * The recovery record of a kombu Channel: the declarations to replay after a reconnect,
 * each kept as the `{ method, params }` the channel sent, bounded by the channel's
 * `recoveryLimit`, and which queues are consumed from (their declarations are never evicted).
 *
 * @module
 */
import type {
  ChannelMethodParams,
  ExchangeBindParams,
  ExchangeDeclareParams,
  QueueBindParams,
  QueueDeclareParams,
  TransportChannel,
} from '../transport/types.js';
import { isRecoverable } from './retry.js';

/**
 * The channel methods a recovery record keeps, in the order they are replayed: every
 * exchange, then exchange-to-exchange bindings, then queues, then queue bindings (by kind
 * rather than by age: a re-declared exchange moves to the end, yet every binding needs it).
 */
export const RECORDED_METHODS = ['declareExchange', 'bindExchange', 'declareQueue', 'bindQueue'] as const;

/** A method a recovery record keeps. */
export type RecordedMethod = (typeof RECORDED_METHODS)[number];

/**
 * One remembered declaration: the transport method and the parameters it was called with.
 *
 * @example
 * ```ts
 * const op: RecordedOp = { method: 'declareExchange', params: { exchange: 'logs', type: 'fanout' } };
 * ```
 */
export type RecordedOp = {
  [M in RecordedMethod]: { readonly method: M; readonly params: ChannelMethodParams[M] };
}[RecordedMethod];

/**
 * What identifies a declaration in the record (a structured key: the method and the
 * parameters that name the entity or binding). A later declaration with the same key
 * replaces the earlier one; `unbind*` and `delete*` forget by key.
 *
 * @example
 * ```ts
 * record.forget({ method: 'bindQueue', params: { queue: 'q', exchange: 'x', routingKey: 'k' } });
 * ```
 */
export type RecordKey =
  | { readonly method: 'declareExchange'; readonly params: Pick<ExchangeDeclareParams, 'exchange'> }
  | {
      readonly method: 'bindExchange';
      readonly params: Pick<ExchangeBindParams, 'destination' | 'source' | 'routingKey'>;
    }
  | { readonly method: 'declareQueue'; readonly params: Pick<QueueDeclareParams, 'queue'> }
  | {
      readonly method: 'bindQueue';
      readonly params: Pick<QueueBindParams, 'queue' | 'exchange' | 'routingKey'>;
    };

/** A remembered declaration. */
interface Entry {
  readonly op: RecordedOp;
  /** The queue it belongs to (queue declarations and queue bindings), by its original name. */
  readonly queue: string | undefined;
  /** Declared with the name `''`: replayed as `''`, and the broker's new name followed. */
  readonly serverNamed: boolean;
}

/** The parts of a key that identify it, in a fixed order. */
function identity(key: RecordKey): string[] {
  switch (key.method) {
    case 'declareExchange':
      return [key.method, key.params.exchange];
    case 'bindExchange':
      return [key.method, key.params.destination, key.params.source, key.params.routingKey ?? ''];
    case 'declareQueue':
      return [key.method, key.params.queue];
    case 'bindQueue':
      return [key.method, key.params.queue, key.params.exchange, key.params.routingKey ?? ''];
  }
}

/** The map key of a structured key (its parts, JSON-encoded: any name is safe). */
function slot(key: RecordKey): string {
  return JSON.stringify(identity(key));
}

function queueOf(key: RecordKey): string | undefined {
  return key.method === 'declareQueue' || key.method === 'bindQueue' ? key.params.queue : undefined;
}

/** The transport methods a replay calls, typed per method so that one call serves all. */
type Replayer = { [M in RecordedMethod]: (params: ChannelMethodParams[M]) => Promise<unknown> };

/** Sends one declaration through the transport method it names. */
function send<M extends RecordedMethod>(
  ch: Replayer,
  op: { method: M; params: ChannelMethodParams[M] },
): Promise<unknown> {
  return ch[op.method](op.params);
}

/** What a replay calls back into (see {@link RecoveryRecord.replay}). */
export interface ReplayHooks {
  /** Opens a fresh transport channel when a failure closed the current one. */
  create(): Promise<TransportChannel>;
  /** Receives each declaration that failed for good (it is forgotten). */
  report(err: unknown): void;
  /** A server-named queue was declared again and got `newName`. */
  renamed?(original: string, newName: string): void;
}

/** Declarations replayed at once before waiting for their replies. */
const REPLAY_CHUNK = 512;

/**
 * The declarations a Channel replays after a reconnect. Queue names in the record are the
 * names declared; server-named queues renamed on recovery are tracked by
 * {@link RecoveryRecord.currentName}. One per Channel; not part of the package's API.
 *
 * @example
 * ```ts
 * const record = new RecoveryRecord(10000);
 * record.remember({ method: 'declareQueue', params: { queue: 'results', durable: true } });
 * record.pin('results'); // consumed from: never evicted
 * ```
 */
export class RecoveryRecord {
  readonly #limit: number;
  /** Slot -> entry, most recently remembered last. */
  readonly #entries = new Map<string, Entry>();
  /** Queue name -> number of active consumers: their declarations are never evicted. */
  readonly #consumed = new Map<string, number>();
  /** Current queue name -> the slots of its declaration and bindings. */
  readonly #queueSlots = new Map<string, Set<string>>();
  /** Recorded entries whose queue is consumed from: they do not count against the limit. */
  #pinnedCount = 0;
  /** Server-named queues renamed on recovery: original name -> current name. */
  readonly #alias = new Map<string, string>();

  /** @param limit Most unpinned declarations kept (the channel's `recoveryLimit`). */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Number of declarations remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /** True when a declaration with this key is remembered. */
  has(key: RecordKey): boolean {
    return this.#entries.has(slot(key));
  }

  /**
   * The name a queue has now: the broker's new name for a server-named queue renamed on
   * recovery, else the name itself.
   */
  currentName(queue: string): string {
    return this.#alias.get(queue) ?? queue;
  }

  /** True when `queue` (an original or current name) has an active consumer. */
  #pinned(queue: string): boolean {
    return this.#consumed.has(this.currentName(queue));
  }

  /**
   * Remembers a declaration for recovery (most recent last), replacing one with the same
   * key. Bounded by the recovery limit, counting only declarations of queues nobody consumes
   * from: those of consumed queues are what saves results after a reconnect, so they are
   * never evicted.
   *
   * @param options - `serverNamed`: the queue was declared as `''` and got this name from
   *   the broker; it is declared as `''` again on replay.
   * @returns The remembered entry's token, for {@link forget}'s `only`.
   */
  remember(op: RecordedOp, options: { serverNamed?: boolean } = {}): object {
    const d = this.#entries;
    const key = slot(op);
    const queue = queueOf(op);
    const entry: Entry = { op, queue, serverNamed: options.serverNamed ?? false };
    if (d.has(key)) d.delete(key);
    else if (queue !== undefined) {
      const name = this.currentName(queue);
      let slots = this.#queueSlots.get(name);
      if (slots === undefined) this.#queueSlots.set(name, (slots = new Set()));
      slots.add(key);
      if (this.#pinned(queue)) this.#pinnedCount += 1;
    }
    d.set(key, entry);
    if (d.size - this.#pinnedCount > this.#limit) this.#evictOne();
    return entry;
  }

  /**
   * Evicts the oldest unpinned declaration; pinned ones met on the way move to the end so
   * that the next eviction does not scan them again (replay goes by kind, not by age).
   */
  #evictOne(): void {
    const d = this.#entries;
    const moved: Array<[string, Entry]> = [];
    let victim: Entry | undefined;
    for (const [k, e] of d) {
      if (e.queue !== undefined && this.#pinned(e.queue)) moved.push([k, e]);
      else {
        victim = e;
        break;
      }
    }
    for (const [k] of moved) d.delete(k);
    for (const [k, e] of moved) d.set(k, e);
    if (victim !== undefined) this.forget(victim.op);
  }

  /**
   * Removes a declaration from the record, keeping the per-queue index and pin count right.
   *
   * @param only - Forget only while this entry (from {@link remember}) is the one recorded:
   *   a later declaration of the same key, which may have succeeded, stays.
   */
  forget(key: RecordKey, only?: object): void {
    const k = slot(key);
    const entry = this.#entries.get(k);
    if (entry === undefined || (only !== undefined && entry !== only)) return;
    this.#entries.delete(k);
    if (entry.queue === undefined) return;
    const name = this.currentName(entry.queue);
    const slots = this.#queueSlots.get(name);
    slots?.delete(k);
    if (slots?.size === 0) this.#queueSlots.delete(name);
    if (this.#pinned(entry.queue)) this.#pinnedCount -= 1;
  }

  /**
   * Forgets the declaration of a deleted queue and its bindings, under its current name or
   * an original one. Bindings left behind would be replayed as no-ops, yet still fill the
   * record and, while the queue had a consumer, be counted as pinned.
   */
  forgetQueue(name: string): void {
    for (const k of [...(this.#queueSlots.get(name) ?? [])]) {
      const entry = this.#entries.get(k);
      if (entry !== undefined) this.forget(entry.op);
    }
    this.forget({ method: 'declareQueue', params: { queue: name } });
    for (const [original, current] of this.#alias) {
      if (current === name) {
        this.forget({ method: 'declareQueue', params: { queue: original } });
        this.#alias.delete(original);
      }
    }
  }

  /**
   * A server-named queue was redeclared under a new broker-given name: its declarations and
   * consumer count move to the new name.
   *
   * @returns The name it had until now, or undefined when the name did not change.
   */
  rename(original: string, newName: string): string | undefined {
    const previous = this.currentName(original);
    if (previous === newName) return undefined;
    this.#alias.set(original, newName);
    const slots = this.#queueSlots.get(previous);
    if (slots !== undefined) {
      this.#queueSlots.delete(previous);
      this.#queueSlots.set(newName, slots);
    }
    const n = this.#consumed.get(previous);
    if (n !== undefined) {
      this.#consumed.delete(previous);
      this.#consumed.set(newName, n);
    }
    return previous;
  }

  /** A consumer started on `queue`: its declarations are pinned until the last one ends. */
  pin(queue: string): void {
    const name = this.currentName(queue);
    const count = this.#consumed.get(name) ?? 0;
    if (count === 0) this.#pinnedCount += this.#queueSlots.get(name)?.size ?? 0;
    this.#consumed.set(name, count + 1);
  }

  /** A consumer of `queue` ended (cancelled, or could not be restarted). */
  unpin(queue: string): void {
    const name = this.currentName(queue);
    const n = this.#consumed.get(name) ?? 0;
    if (n > 1) {
      this.#consumed.set(name, n - 1);
      return;
    }
    if (n === 1) this.#pinnedCount -= this.#queueSlots.get(name)?.size ?? 0;
    this.#consumed.delete(name);
  }

  /** The recorded declaration of `queue` (by the name it was declared with), or undefined. */
  queueDeclaration(queue: string): QueueDeclareParams | undefined {
    const op = this.#entries.get(slot({ method: 'declareQueue', params: { queue } }))?.op;
    return op?.method === 'declareQueue' ? op.params : undefined;
  }

  /**
   * Replays the declaration of one queue, then its bindings, on `ch` (its consumer was
   * cancelled because the queue was lost). A failure rejects; nothing is forgotten.
   *
   * @param hooks - `renamed` hears of a server-named queue that got a new name.
   * @returns False when the queue's declaration is not recorded (deleted on purpose).
   */
  async replayQueue(
    ch: TransportChannel,
    queue: string,
    hooks: Pick<ReplayHooks, 'renamed'>,
  ): Promise<boolean> {
    const declared = this.#entries.get(slot({ method: 'declareQueue', params: { queue } }));
    if (declared === undefined) return false;
    await this.#replayOne(ch, declared, hooks);
    const bindings = [...(this.#queueSlots.get(this.currentName(queue)) ?? [])]
      .map((k) => this.#entries.get(k))
      .filter((e): e is Entry => e !== undefined && e.op.method === 'bindQueue');
    await Promise.all(bindings.map((e) => this.#replayOne(ch, e, hooks)));
    return true;
  }

  /** Forgets everything (the channel was closed). */
  clear(): void {
    this.#consumed.clear();
    this.#alias.clear();
    this.#entries.clear();
    this.#queueSlots.clear();
    this.#pinnedCount = 0;
  }

  /**
   * Replays every remembered declaration on `first`, by kind in {@link RECORDED_METHODS}
   * order and by age within a kind, and resolves with the transport channel still open at
   * the end.
   *
   * @param hooks - `create` opens a fresh transport channel when a failure closed the
   *   current one; `report` receives the failures that are not recoverable (their
   *   declaration is forgotten; recoverable, connection, errors reject instead); `renamed`
   *   hears of a server-named queue that got a new name.
   */
  async replay(first: TransportChannel, hooks: ReplayHooks): Promise<TransportChannel> {
    const all = [...this.#entries.values()];
    let ch = first;
    for (const method of RECORDED_METHODS) {
      ch = await this.#replayPass(
        ch,
        all.filter((e) => e.op.method === method),
        hooks,
      );
    }
    return ch;
  }

  /**
   * Sends one remembered declaration as it was made, with queue names mapped to their
   * current names. A server-named queue is declared as `''` again (RabbitMQ refuses
   * `amq.gen-*` names from clients) and its new name followed; a binding whose queue is no
   * longer recorded (deleted since) is skipped rather than failing with 404.
   */
  #replayOne(ch: TransportChannel, entry: Entry, hooks: Pick<ReplayHooks, 'renamed'>): Promise<unknown> {
    const op = entry.op;
    if (op.method === 'bindQueue') {
      const queue = op.params.queue;
      if (!this.has({ method: 'declareQueue', params: { queue } })) return Promise.resolve();
      return ch.bindQueue({ ...op.params, queue: this.currentName(queue) });
    }
    if (op.method === 'declareQueue' && entry.serverNamed) {
      const given = op.params.queue;
      return ch.declareQueue({ ...op.params, queue: '' }).then((ok) => {
        if (ok !== null) hooks.renamed?.(given, ok.queue);
      });
    }
    return send(ch, op);
  }

  /**
   * Replays declarations pipelined, a chunk at a time (thousands of result queues recover in
   * a few round trips' worth of time, not one round trip each). A chunk with a failure is
   * replayed one by one on a fresh channel to find the culprit: declarations are idempotent
   * and survive a channel close, so replaying the rest again is harmless. The culprit is
   * forgotten and reported; recoverable (connection) errors abort the recovery.
   */
  async #replayPass(first: TransportChannel, items: Entry[], hooks: ReplayHooks): Promise<TransportChannel> {
    let ch = first;
    for (let i = 0; i < items.length; i += REPLAY_CHUNK) {
      const chunk = items.slice(i, i + REPLAY_CHUNK).filter((e) => this.#entries.get(slot(e.op)) === e);
      const target = ch;
      const results = await Promise.allSettled(chunk.map((e) => this.#replayOne(target, e, hooks)));
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length === 0) continue;
      for (const r of failed) if (isRecoverable(r.reason)) throw r.reason;
      if (ch.closed) ch = await hooks.create();
      for (const entry of chunk) {
        try {
          await this.#replayOne(ch, entry, hooks);
        } catch (err) {
          if (isRecoverable(err)) throw err;
          this.forget(entry.op, entry);
          hooks.report(err);
          if (ch.closed) ch = await hooks.create();
        }
      }
    }
    return ch;
  }
}
