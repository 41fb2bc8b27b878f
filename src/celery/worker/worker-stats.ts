/**
 * The `inspect stats` reply, with the fields Celery's worker sends (`total`, `pid`, `clock`,
 * `uptime`, `pool`, `broker`, `prefetch_count`, `rusage`) so Flower's worker page fills in.
 *
 * @module
 */
import type { Connection } from '../../kombu/connection.js';
import type { WorkerState } from './state.js';

/** What the stats need besides the state. */
export interface StatsSource {
  concurrency: number;
  prefetchCount: number;
  /** `[soft, hard]` seconds, null for none. */
  timeLimits: [number | null, number | null];
  connection: Connection;
}

/** Broker fields from the connection's URL (password never included). */
function brokerInfo(connection: Connection): Record<string, unknown> {
  const display = connection.displayUrl;
  try {
    const url = new URL(display);
    const transport = url.protocol.replace(/:$/, '');
    const vhost = url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : '/';
    return {
      hostname: url.hostname,
      userid: decodeURIComponent(url.username) || null,
      virtual_host: vhost,
      port: url.port === '' ? (transport === 'amqps' ? 5671 : 5672) : Number(url.port),
      insist: false,
      ssl: transport === 'amqps',
      transport,
      connect_timeout: 4,
      transport_options: {},
      login_method: 'AMQPLAIN',
      uri_prefix: null,
      heartbeat: 0,
      failover_strategy: 'round-robin',
      alternates: [],
    };
  } catch {
    return { transport: display };
  }
}

/**
 * Celery's `Worker.stats()`.
 *
 * @example
 * ```ts
 * workerStats(state, { concurrency: 4, prefetchCount: 16, timeLimits: [null, null], connection });
 * ```
 */
export function workerStats(state: WorkerState, source: StatsSource): Record<string, unknown> {
  const r = process.resourceUsage();
  return {
    total: Object.fromEntries(state.totals),
    pid: process.pid,
    clock: String(state.clock.value),
    uptime: Math.round((Date.now() - state.startedAt) / 1000),
    pool: {
      'max-concurrency': source.concurrency,
      processes: [process.pid],
      'max-tasks-per-child': 'N/A',
      'put-guarded-by-semaphore': false,
      timeouts: [source.timeLimits[0] ?? 0, source.timeLimits[1] ?? 0],
      implementation: 'celery-amqp-backend:Worker',
    },
    broker: brokerInfo(source.connection),
    prefetch_count: source.prefetchCount,
    rusage: {
      utime: r.userCPUTime / 1e6,
      stime: r.systemCPUTime / 1e6,
      maxrss: r.maxRSS,
      ixrss: r.sharedMemorySize,
      idrss: r.unsharedDataSize,
      isrss: r.unsharedStackSize,
      minflt: r.minorPageFault,
      majflt: r.majorPageFault,
      nswap: r.swappedOut,
      inblock: r.fsRead,
      oublock: r.fsWrite,
      msgsnd: r.ipcSent,
      msgrcv: r.ipcReceived,
      nsignals: r.signalsCount,
      nvcsw: r.voluntaryContextSwitches,
      nivcsw: r.involuntaryContextSwitches,
    },
    counters: { ...state.counters },
  };
}
