/**
 * What a worker knows about itself at run time (Celery's `worker.state`): counters, tasks
 * by id, the revoked set, the Lamport clock, and the defaults tasks fall back on.
 *
 * @module
 */
import { LamportClock } from '../clock.js';
import type { Request } from './request.js';
import { RevokedSet } from './revoked-set.js';

/**
 * Counts since the worker started (bounded: numbers, never lists).
 *
 * @example
 * ```ts
 * worker.counters.succeeded; // tasks stored SUCCESS
 * ```
 */
export interface WorkerCounters {
  /** Valid task messages received for a registered task. */
  received: number;
  /** Tasks that started running (Celery's `processed` in heartbeats). */
  started: number;
  /** Tasks settled after running, retried, revoked or found unregistered. */
  processed: number;
  /** Stored SUCCESS. */
  succeeded: number;
  /** Stored FAILURE (a hard time limit and an unregistered task included). */
  failed: number;
  /** Sent again by a retry. */
  retried: number;
  /** Stored REVOKED: expired, revoked before running, or terminated. */
  revoked: number;
  /** Messages rejected: unregistered tasks and invalid messages. */
  rejected: number;
  /** Invalid messages (rejected at the door, each one an 'invalid' event). */
  invalid: number;
  /** Tasks abandoned past their hard time limit or by a terminate whose handler has not settled yet. */
  abandoned: number;
  /** Operational errors (a store or publish that failed), each one an 'error' event. */
  errors: number;
}

/** Defaults a task falls back on when neither its message nor its options say. */
export interface TaskDefaults {
  /** Ack after storing (true) or when starting (false). */
  acksLate: boolean;
  /** Requeue an acks-late task a cold shutdown abandons (else store WorkerLostError). */
  rejectOnWorkerLost: boolean;
  /** Store STARTED before running. */
  trackStarted: boolean;
  /** Hard time limit, seconds, or null. */
  timeLimit: number | null;
  /** Soft time limit, seconds, or null. */
  softTimeLimit: number | null;
}

/** The shared run-time state of one worker. */
export class WorkerState {
  /** This node's name. */
  readonly hostname: string;
  readonly counters: WorkerCounters = {
    received: 0,
    started: 0,
    processed: 0,
    succeeded: 0,
    failed: 0,
    retried: 0,
    revoked: 0,
    rejected: 0,
    invalid: 0,
    abandoned: 0,
    errors: 0,
  };
  /** Tasks started, by name (`inspect stats` total). */
  readonly totals = new Map<string, number>();
  /** Every task the worker holds (waiting for eta, rate limit or a slot, or running), by id. */
  readonly requests = new Map<string, Request>();
  readonly revoked = new RevokedSet();
  readonly clock = new LamportClock();
  readonly startedAt = Date.now();
  readonly defaults: TaskDefaults;
  /** Clock for eta and expires, ms since the epoch. */
  readonly now: () => number;

  constructor(hostname: string, defaults: TaskDefaults, now: () => number) {
    this.hostname = hostname;
    this.defaults = defaults;
    this.now = now;
  }
}
