/**
 * The worker's heartbeat (Celery's `worker.heartbeat.Heart`): `worker-online` when it
 * starts, `worker-heartbeat` every `interval`, `worker-offline` when it stops, each with
 * `freq` (seconds), `active`, `processed`, `loadavg` and the software fields. Monitors
 * (Flower, `State().alive_workers()`) count a worker alive while heartbeats keep coming.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { loadavg, type as osType } from 'node:os';
import type { EventDispatcher } from '../events.js';

/** The `sw_ident` this worker reports (Celery's is `py-celery`). */
export const SW_IDENT = 'celery-amqp-backend';

let swVersion: string | undefined;

/** This package's version (`sw_ver`), read once from package.json (three levels up in src/ and dist/). */
function packageVersion(): string {
  if (swVersion === undefined) {
    try {
      const pkg: unknown = JSON.parse(
        readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
      );
      const v = pkg !== null && typeof pkg === 'object' && 'version' in pkg ? pkg.version : undefined;
      swVersion = typeof v === 'string' ? v : '0.0.0';
    } catch {
      swVersion = '0.0.0';
    }
  }
  return swVersion;
}

/** The software fields of worker events (Celery's `SOFTWARE_INFO`). */
export function softwareInfo(): { sw_ident: string; sw_ver: string; sw_sys: string } {
  return { sw_ident: SW_IDENT, sw_ver: packageVersion(), sw_sys: osType() };
}

/** Celery's `load_average()`: the three load averages rounded to 2 decimals. */
function loadAverage(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = loadavg();
  return [Math.round(a * 100) / 100, Math.round(b * 100) / 100, Math.round(c * 100) / 100];
}

/** What a heartbeat reports about the worker. */
export interface HeartSource {
  /** Tasks running now. */
  active(): number;
  /** Tasks started since the worker started. */
  processed(): number;
}

/** Sends worker-online, periodic worker-heartbeat and worker-offline. */
export class Heart {
  /** Seconds between heartbeats. */
  readonly interval: number;
  readonly #events: EventDispatcher;
  readonly #source: HeartSource;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param interval - Seconds between heartbeats (Celery's default 2.0).
   */
  constructor(events: EventDispatcher, source: HeartSource, interval = 2) {
    this.#events = events;
    this.#source = source;
    this.interval = interval;
  }

  /** Sends one worker event of `type` now. */
  send(type: string, freq = this.interval): void {
    this.#events.send(type, {
      freq,
      active: this.#source.active(),
      processed: this.#source.processed(),
      loadavg: loadAverage(),
      ...softwareInfo(),
    });
  }

  /** worker-online, then a heartbeat every interval. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.send('worker-online');
    this.#timer = setInterval(() => this.send('worker-heartbeat'), this.interval * 1000);
    // Heartbeats alone must not keep a process alive once everything else is closed.
    this.#timer.unref();
  }

  /** Stops the heartbeats and sends worker-offline. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.send('worker-offline');
  }
}
