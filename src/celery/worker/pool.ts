/**
 * The worker's concurrency: at most `concurrency` tasks run at once; the others wait here,
 * their messages unacked, in arrival order (Celery's pool slots and reserved requests). A
 * task whose handler has returned gives its slot to the next one while its outcome is
 * stored: the store waits for the broker's confirm, and holding the slot through it would
 * bound the tasks per second by concurrency / confirm latency. Its message stays unacked
 * until the store is confirmed, so the prefetch still bounds the stores in flight.
 *
 * @module
 */
import type { Request } from './request.js';

/** Runs requests through `start`, at most `concurrency` at a time. */
export class TaskPool {
  /** Tasks run at once. */
  concurrency: number;
  /** Running tasks (`inspect active`). */
  readonly active = new Set<Request>();
  /** Tasks whose handler returned, their outcome being stored (no slot held). */
  readonly finishing = new Set<Request>();
  /** Set while shutting down: queued tasks stay queued. */
  draining = false;
  readonly #start: (req: Request) => void;
  #queue: Array<Request | undefined> = [];
  #head = 0;
  #idle: Array<() => void> = [];

  constructor(concurrency: number, start: (req: Request) => void) {
    this.concurrency = concurrency;
    this.#start = start;
  }

  /** Tasks waiting for a slot (`inspect reserved`), oldest first. */
  get reserved(): Request[] {
    return this.#queue.slice(this.#head).filter((r): r is Request => r !== undefined);
  }

  /** Runs the request now when a slot is free, else queues it. */
  submit(req: Request): void {
    if (!this.draining && this.active.size < this.concurrency) {
      this.active.add(req);
      this.#start(req);
    } else {
      this.#queue.push(req);
    }
  }

  /** Frees the slot of a request whose handler returned; it stays tracked until {@link release}. */
  detach(req: Request): void {
    if (!this.active.delete(req)) return;
    this.finishing.add(req);
    this.pump();
  }

  /** Forgets the request, freeing its slot if it holds one (a second call does nothing), and starts the next waiting task. */
  release(req: Request): void {
    if (!this.active.delete(req) && !this.finishing.delete(req)) return;
    this.pump();
    if (this.active.size === 0 && this.finishing.size === 0 && this.#idle.length > 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** Starts waiting tasks while slots are free (after a release or a resize). */
  pump(): void {
    while (!this.draining && this.active.size < this.concurrency && this.#head < this.#queue.length) {
      const next = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (next === undefined) continue;
      this.active.add(next);
      this.#start(next);
    }
  }

  /** Removes a waiting task by id (a revoke), or returns undefined. */
  remove(id: string): Request | undefined {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const req = this.#queue[i];
      if (req?.id === id) {
        this.#queue.splice(i, 1);
        return req;
      }
    }
    return undefined;
  }

  /** Empties the wait queue and returns what was in it (shutdown). */
  takeReserved(): Request[] {
    const out = this.reserved;
    this.#queue = [];
    this.#head = 0;
    return out;
  }

  /** Resolves once no task runs and no outcome is being stored. */
  whenIdle(): Promise<void> {
    if (this.active.size === 0 && this.finishing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}
