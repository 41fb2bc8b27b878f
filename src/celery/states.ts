/**
 * Celery task states (`celery.states`): the built-in names, the state sets the backend
 * relies on, and precedence, which decides which of two states is "further along".
 *
 * @module
 */

/** A task state: one of the built-ins below, or any custom state name a task sets. */
export type State = string;

/** Task state is unknown (assumed pending since the id is known). Never published. */
export const PENDING = 'PENDING';
/** Task was received by a worker (events only). */
export const RECEIVED = 'RECEIVED';
/** Task was started by a worker (with `task_track_started`). */
export const STARTED = 'STARTED';
/** Task succeeded. */
export const SUCCESS = 'SUCCESS';
/** Task failed. */
export const FAILURE = 'FAILURE';
/** Task was revoked. */
export const REVOKED = 'REVOKED';
/** Task is waiting for retry. */
export const RETRY = 'RETRY';
/** Task's result is ignored. */
export const IGNORED = 'IGNORED';
/** Task was rejected (events only). */
export const REJECTED = 'REJECTED';

/** States meaning the result is ready. */
export const READY_STATES: ReadonlySet<State> = new Set([SUCCESS, FAILURE, REVOKED]);
/** States meaning the result is not ready yet. */
export const UNREADY_STATES: ReadonlySet<State> = new Set([PENDING, RECEIVED, STARTED, RETRY, REJECTED]);
/** States whose result is an exception. */
export const EXCEPTION_STATES: ReadonlySet<State> = new Set([RETRY, FAILURE, REVOKED]);
/** Exception states that `get()` re-raises. */
export const PROPAGATE_STATES: ReadonlySet<State> = new Set([FAILURE, REVOKED]);
/** Every built-in state. */
export const ALL_STATES: ReadonlySet<State> = new Set([
  PENDING,
  RECEIVED,
  STARTED,
  SUCCESS,
  FAILURE,
  REVOKED,
  RETRY,
  IGNORED,
  REJECTED,
]);

/**
 * Precedence from highest to lowest; `null` is the slot of every state not listed (custom
 * states and IGNORED). docs/wire.md §5 gives Celery 3.1's list; Celery 4.x/5.x (the Python peers
 * users run today: `celery.states.PRECEDENCE` in 5.2) also rank REJECTED between RECEIVED
 * and RETRY, and we follow them so both sides agree on which state wins.
 */
export const PRECEDENCE: readonly (State | null)[] = Object.freeze([
  SUCCESS,
  FAILURE,
  null,
  REVOKED,
  STARTED,
  RECEIVED,
  REJECTED,
  RETRY,
  PENDING,
]);

const LOOKUP = new Map<State | null, number>(PRECEDENCE.map((s, i) => [s, i]));
const UNKNOWN_RANK = LOOKUP.get(null) ?? 2;

/**
 * A state's index in {@link PRECEDENCE}: lower means higher precedence. Unlisted states
 * get the custom slot, like Celery's `precedence()`.
 *
 * @example
 * ```ts
 * precedence('SUCCESS'); // 0
 * precedence('PROGRESS'); // 2, the custom slot
 * precedence('PENDING'); // 8
 * ```
 */
export function precedence(state: State): number {
  return LOOKUP.get(state) ?? UNKNOWN_RANK;
}

/**
 * Compares two states by precedence: positive when `a` outranks `b`, negative when `b`
 * outranks `a`, 0 when equal. Sorting with `(a, b) => compareStates(b, a)` puts the most
 * advanced state first.
 *
 * @example
 * ```ts
 * compareStates('SUCCESS', 'STARTED') > 0; // true
 * ```
 */
export function compareStates(a: State, b: State): number {
  return precedence(b) - precedence(a);
}

/**
 * Celery's `state(a) > state(b)`: true when `a` has higher precedence than `b`.
 *
 * @example
 * ```ts
 * stateGreaterThan('FAILURE', 'RETRY'); // true
 * stateGreaterThan('PENDING', 'STARTED'); // false
 * ```
 */
export function stateGreaterThan(a: State, b: State): boolean {
  return precedence(a) < precedence(b);
}

/**
 * Celery's `state(a) < state(b)`: true when `a` has lower precedence than `b`.
 *
 * @example
 * ```ts
 * stateLessThan('PENDING', 'SUCCESS'); // true
 * ```
 */
export function stateLessThan(a: State, b: State): boolean {
  return precedence(a) > precedence(b);
}

/**
 * True for the ready states (SUCCESS, FAILURE, REVOKED).
 *
 * @example
 * ```ts
 * isReady('FAILURE'); // true
 * isReady('RETRY'); // false
 * ```
 */
export function isReady(state: State): boolean {
  return READY_STATES.has(state);
}

/**
 * True for the states whose exception `get()` re-raises (FAILURE, REVOKED).
 *
 * @example
 * ```ts
 * isPropagated('REVOKED'); // true
 * ```
 */
export function isPropagated(state: State): boolean {
  return PROPAGATE_STATES.has(state);
}
