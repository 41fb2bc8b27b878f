/**
 * Tasks held for their eta (Celery's timer `call_at` with `qos.increment_eventually`): the
 * message stays unacked and the prefetch window grows by one while it waits, so other
 * tasks keep flowing. A hold dies with the channel its message came on: the broker has
 * requeued that message and will deliver it again.
 *
 * @module
 */
import type { Request } from './request.js';

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); a longer one would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** A task waiting for its eta. */
interface Held {
  readonly req: Request;
  readonly eta: number;
  timer: NodeJS.Timeout | undefined;
  /** Stops watching the message's channel. */
  unwatch: () => void;
}

/** What an {@link EtaSchedule} calls back. */
export interface EtaHooks {
  /** The worker's clock, ms since the epoch. */
  now(): number;
  /** A request whose eta came, its channel still open. */
  due(req: Request): void;
  /** A request dropped because its channel closed (the broker will deliver it again). */
  dropped(req: Request): void;
  /** The number held changed (to update the prefetch window). */
  changed(): void;
}

/** Holds requests until their eta, then hands them to `due`. */
export class EtaSchedule {
  readonly #held = new Map<Request, Held>();
  readonly #hooks: EtaHooks;

  constructor(hooks: EtaHooks) {
    this.#hooks = hooks;
  }

  /** Tasks held. */
  get size(): number {
    return this.#held.size;
  }

  /** The held requests (`inspect scheduled`). */
  requests(): Request[] {
    return [...this.#held.keys()];
  }

  /**
   * Holds a request until `req.eta`, watching the channel its message came on.
   *
   * @returns false when that channel is already gone (the broker requeued the message).
   */
  hold(req: Request): boolean {
    if (!req.message.channelOpen) return false;
    const held: Held = { req, eta: req.eta ?? 0, timer: undefined, unwatch: () => undefined };
    this.#held.set(req, held);
    held.unwatch = req.message.onChannelClose(() => this.#channelClosed(held));
    this.#arm(held);
    this.#hooks.changed();
    return true;
  }

  /** Stops holding a request (a revoke) and returns it, or undefined when not held. */
  remove(id: string): Request | undefined {
    for (const held of this.#held.values()) {
      if (held.req.id !== id) continue;
      this.#release(held);
      this.#hooks.changed();
      return held.req;
    }
    return undefined;
  }

  /** Stops holding everything (shutdown) and returns the requests whose channel is still open. */
  takeAll(): Request[] {
    const out: Request[] = [];
    for (const held of this.#held.values()) {
      this.#release(held);
      if (held.req.message.channelOpen) out.push(held.req);
    }
    if (out.length > 0) this.#hooks.changed();
    return out;
  }

  #arm(held: Held): void {
    // Clamped: setTimeout fires at once for delays past MAX_TIMER_MS; the clock is checked again on firing.
    const delay = Math.min(Math.max(0, Math.ceil(held.eta - this.#hooks.now())), MAX_TIMER_MS);
    held.timer = setTimeout(() => this.#fire(held), delay);
  }

  #fire(held: Held): void {
    if (this.#held.get(held.req) !== held) return;
    // Timers may fire a little early against the wall clock, and a long eta takes several.
    if (held.eta > this.#hooks.now()) {
      this.#arm(held);
      return;
    }
    this.#release(held);
    this.#hooks.changed();
    if (!held.req.message.channelOpen) this.#hooks.dropped(held.req);
    else this.#hooks.due(held.req);
  }

  #release(held: Held): void {
    clearTimeout(held.timer);
    held.timer = undefined;
    held.unwatch();
    this.#held.delete(held.req);
  }

  /**
   * Once the message's channel closes (lost connection, channel error) it is back in the
   * queue and will be redelivered: the hold is dropped, or the task would run twice. Celery
   * clears its timer on connection loss for the same reason.
   */
  #channelClosed(held: Held): void {
    if (this.#held.get(held.req) !== held) return;
    this.#release(held);
    this.#hooks.dropped(held.req);
    this.#hooks.changed();
  }
}
