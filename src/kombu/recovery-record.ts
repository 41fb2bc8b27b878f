/**
 * The recovery record of a kombu Channel: the declarations to replay after a
 * reconnect, bounded by the channel's `recoveryLimit`, and which queues are consumed from
 * (their declarations are never evicted).
 *
 * @module
 */
import type { TransportChannel } from '../transport/types.js';
import { isRecoverable } from './retry.js';

/**
 * Replays one remembered declaration on a (re)opened transport channel.
 *
 * @example
 * ```ts
 * const replay: Replay = (ch) => ch.declareExchange('logs', 'fanout', { durable: true });
 * ```
 */
export type Replay = (ch: TransportChannel) => Promise<unknown>;

/** Declarations replayed at once before waiting for their replies. */
const REPLAY_CHUNK = 512;

/** Replay passes: exchanges, then exchange bindings, then queues, then queue bindings. */
const REPLAY_ORDER = ['e\0', 'eb\0', 'q\0', 'qb\0'] as const;

/**
 * The declarations a Channel replays after a reconnect, by key: `e\0<exchange>`,
 * `eb\0<destination>\0<source>\0<routing key>`, `q\0<queue>` and
 * `qb\0<queue>\0<exchange>\0<routing key>`. Queue names in keys are the names declared;
 * server-named queues renamed on recovery are tracked by {@link RecoveryRecord.currentName}. One per
 * Channel; not part of the package's API.
 *
 * @example
 * ```ts
 * const record = new RecoveryRecord(10000);
 * record.remember('q\0results', (ch) => ch.declareQueue('results', { durable: true }));
 * record.pin('results'); // consumed from: never evicted
 * ```
 */
export class RecoveryRecord {
  readonly #limit: number;
  /** Key -> replay, most recently remembered last. */
  readonly #declarations = new Map<string, Replay>();
  /** Queue name -> number of active consumers: their declarations are never evicted. */
  readonly #consumed = new Map<string, number>();
  /** Current queue name -> its recorded `q` and `qb` keys. */
  readonly #queueKeys = new Map<string, Set<string>>();
  /** Recorded keys whose queue is consumed from: they do not count against the limit. */
  #pinnedKeys = 0;
  /** Server-named queues renamed on recovery: original name -> current name. */
  readonly #alias = new Map<string, string>();

  /** @param limit Most unpinned declarations kept (the channel's `recoveryLimit`). */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Number of declarations remembered. */
  get size(): number {
    return this.#declarations.size;
  }

  /** True when the declaration `key` is remembered. */
  has(key: string): boolean {
    return this.#declarations.has(key);
  }

  /**
   * The name a queue has now: the broker's new name for a server-named queue renamed on
   * recovery, else the name itself.
   */
  currentName(queue: string): string {
    return this.#alias.get(queue) ?? queue;
  }

  /** The queue a declaration key belongs to (`q` and `qb` keys), else undefined. */
  static #queueOf(key: string): string | undefined {
    if (key.startsWith('q\0')) return key.slice(2);
    if (key.startsWith('qb\0')) return key.slice(3, key.indexOf('\0', 3));
    return undefined;
  }

  /** True when `queue` (an original or current name) has an active consumer. */
  #pinned(queue: string): boolean {
    return this.#consumed.has(this.currentName(queue));
  }

  /**
   * Remembers a declaration for recovery (most recent last). Bounded by the recovery limit,
   * counting only declarations of queues nobody consumes from: those of consumed queues are
   * what saves results after a reconnect, so they are never evicted.
   */
  remember(key: string, replay: Replay): void {
    const d = this.#declarations;
    if (d.has(key)) d.delete(key);
    else {
      const q = RecoveryRecord.#queueOf(key);
      if (q !== undefined) {
        const name = this.currentName(q);
        let keys = this.#queueKeys.get(name);
        if (keys === undefined) this.#queueKeys.set(name, (keys = new Set()));
        keys.add(key);
        if (this.#pinned(q)) this.#pinnedKeys += 1;
      }
    }
    d.set(key, replay);
    if (d.size - this.#pinnedKeys <= this.#limit) return;
    // Evict the oldest unpinned declaration; pinned ones met on the way move to the end so
    // that the next eviction does not scan them again (replay goes by kind, not by age).
    const moved: Array<[string, Replay]> = [];
    let victim: string | undefined;
    for (const [k, r] of d) {
      const q = RecoveryRecord.#queueOf(k);
      if (q !== undefined && this.#pinned(q)) moved.push([k, r]);
      else {
        victim = k;
        break;
      }
    }
    for (const [k] of moved) d.delete(k);
    for (const [k, r] of moved) d.set(k, r);
    if (victim !== undefined) this.forget(victim);
  }

  /**
   * Removes a declaration from the record, keeping the per-queue index and pin count right.
   *
   * @param only - Forget only while this replay is the one recorded (a later declaration of
   *   the same key, which may have succeeded, stays).
   */
  forget(key: string, only?: Replay): void {
    if (only !== undefined && this.#declarations.get(key) !== only) return;
    if (!this.#declarations.delete(key)) return;
    const q = RecoveryRecord.#queueOf(key);
    if (q === undefined) return;
    const name = this.currentName(q);
    const keys = this.#queueKeys.get(name);
    keys?.delete(key);
    if (keys?.size === 0) this.#queueKeys.delete(name);
    if (this.#pinned(q)) this.#pinnedKeys -= 1;
  }

  /**
   * Forgets the declaration of a deleted queue and its bindings, under its current name or
   * an original one. Bindings left behind would be replayed as no-ops, yet still fill the
   * record and, while the queue had a consumer, be counted as pinned.
   */
  forgetQueue(name: string): void {
    for (const key of [...(this.#queueKeys.get(name) ?? [])]) this.forget(key);
    this.forget(`q\0${name}`);
    for (const [original, current] of this.#alias) {
      if (current === name) {
        this.forget(`q\0${original}`);
        this.#alias.delete(original);
      }
    }
  }

  /**
   * A server-named queue was redeclared under a new broker-given name: its keys and
   * consumer count move to the new name.
   *
   * @returns The name it had until now, or undefined when the name did not change.
   */
  rename(original: string, newName: string): string | undefined {
    const previous = this.currentName(original);
    if (previous === newName) return undefined;
    this.#alias.set(original, newName);
    const keys = this.#queueKeys.get(previous);
    if (keys !== undefined) {
      this.#queueKeys.delete(previous);
      this.#queueKeys.set(newName, keys);
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
    if (count === 0) this.#pinnedKeys += this.#queueKeys.get(name)?.size ?? 0;
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
    if (n === 1) this.#pinnedKeys -= this.#queueKeys.get(name)?.size ?? 0;
    this.#consumed.delete(name);
  }

  /**
   * Replays the declaration of one queue, then its bindings, on `ch` (its consumer was
   * cancelled because the queue was lost). A failure rejects; nothing is forgotten.
   *
   * @returns False when the queue's declaration is not recorded (deleted on purpose).
   */
  async replayQueue(ch: TransportChannel, queue: string): Promise<boolean> {
    const declare = this.#declarations.get(`q\0${queue}`);
    if (declare === undefined) return false;
    await declare(ch);
    const keys = [...(this.#queueKeys.get(this.currentName(queue)) ?? [])].filter((k) =>
      k.startsWith('qb\0'),
    );
    await Promise.all(keys.map((k) => this.#declarations.get(k)?.(ch)));
    return true;
  }

  /** Forgets everything (the channel was closed). */
  clear(): void {
    this.#consumed.clear();
    this.#alias.clear();
    this.#declarations.clear();
    this.#queueKeys.clear();
    this.#pinnedKeys = 0;
  }

  /**
   * Replays every remembered declaration on `first`, exchanges first, and resolves with
   * the transport channel still open at the end.
   *
   * @param create Opens a fresh transport channel when a failure closed the current one.
   * @param report Receives the failures that are not recoverable (their declaration is
   *   forgotten); recoverable (connection) errors reject instead.
   */
  async replay(
    first: TransportChannel,
    create: () => Promise<TransportChannel>,
    report: (err: unknown) => void,
  ): Promise<TransportChannel> {
    // By kind rather than by age: a re-declared exchange moves to the end of the record,
    // yet every binding needs it first.
    const all = [...this.#declarations];
    let ch = first;
    for (const prefix of REPLAY_ORDER) {
      const pass = all.filter(
        ([key]) => key.startsWith(prefix) && !(prefix === 'e\0' && key.startsWith('eb\0')),
      );
      ch = await this.#replayPass(ch, pass, create, report);
    }
    return ch;
  }

  /**
   * Replays declarations pipelined, a chunk at a time (thousands of result queues recover in
   * a few round trips' worth of time, not one round trip each). A chunk with a failure is
   * replayed one by one on a fresh channel to find the culprit: declarations are idempotent
   * and survive a channel close, so replaying the rest again is harmless. The culprit is
   * forgotten and reported; recoverable (connection) errors abort the recovery.
   */
  async #replayPass(
    first: TransportChannel,
    items: Array<[string, Replay]>,
    create: () => Promise<TransportChannel>,
    report: (err: unknown) => void,
  ): Promise<TransportChannel> {
    let ch = first;
    for (let i = 0; i < items.length; i += REPLAY_CHUNK) {
      const chunk = items.slice(i, i + REPLAY_CHUNK).filter(([key]) => this.#declarations.has(key));
      const target = ch;
      const results = await Promise.allSettled(chunk.map(([, replay]) => replay(target)));
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length === 0) continue;
      for (const r of failed) if (isRecoverable(r.reason)) throw r.reason;
      if (ch.closed) ch = await create();
      for (const [key, replay] of chunk) {
        try {
          await replay(ch);
        } catch (err) {
          if (isRecoverable(err)) throw err;
          this.forget(key);
          report(err);
          if (ch.closed) ch = await create();
        }
      }
    }
    return ch;
  }
}
