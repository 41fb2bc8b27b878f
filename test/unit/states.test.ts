import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALL_STATES,
  EXCEPTION_STATES,
  FAILURE,
  IGNORED,
  PENDING,
  PROPAGATE_STATES,
  READY_STATES,
  RECEIVED,
  REJECTED,
  RETRY,
  REVOKED,
  STARTED,
  SUCCESS,
  UNREADY_STATES,
  compareStates,
  isPropagated,
  isReady,
  precedence,
  stateGreaterThan,
  stateLessThan,
} from '../../src/celery/states.js';

describe('states', () => {
  it('has the wire names', () => {
    expect([PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, REVOKED, RETRY, IGNORED, REJECTED]).toEqual([
      'PENDING',
      'RECEIVED',
      'STARTED',
      'SUCCESS',
      'FAILURE',
      'REVOKED',
      'RETRY',
      'IGNORED',
      'REJECTED',
    ]);
    expect(ALL_STATES.size).toBe(9);
  });

  it('has the docs/wire.md §5 sets', () => {
    expect([...READY_STATES].sort()).toEqual(['FAILURE', 'REVOKED', 'SUCCESS']);
    expect([...UNREADY_STATES].sort()).toEqual(['PENDING', 'RECEIVED', 'REJECTED', 'RETRY', 'STARTED']);
    expect([...EXCEPTION_STATES].sort()).toEqual(['FAILURE', 'RETRY', 'REVOKED']);
    expect([...PROPAGATE_STATES].sort()).toEqual(['FAILURE', 'REVOKED']);
    expect(isReady('SUCCESS') && isReady('FAILURE') && isReady('REVOKED')).toBe(true);
    expect(isReady('STARTED') || isReady('PENDING') || isReady('PROGRESS')).toBe(false);
    expect(isPropagated('FAILURE') && !isPropagated('RETRY')).toBe(true);
  });

  it('orders by precedence: SUCCESS, FAILURE, custom, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING (Celery 5.2)', () => {
    const ordered = ['SUCCESS', 'FAILURE', 'PROGRESS', 'REVOKED', 'STARTED', 'RECEIVED', 'RETRY', 'PENDING'];
    const shuffled = [...ordered].reverse();
    expect(shuffled.sort((a, b) => compareStates(b, a))).toEqual(ordered);
    expect(precedence('SUCCESS')).toBe(0);
    expect(precedence('PENDING')).toBe(8);
    expect(precedence('PROGRESS')).toBe(precedence('MY_STATE'));
    expect(precedence(REJECTED)).toBe(6);
    expect(precedence(IGNORED)).toBe(precedence('PROGRESS'));
    expect(stateGreaterThan('FAILURE', 'PROGRESS')).toBe(true);
    expect(stateGreaterThan('PROGRESS', 'REVOKED')).toBe(true);
    expect(stateLessThan('PENDING', 'SUCCESS')).toBe(true);
    expect(stateGreaterThan('PENDING', 'STARTED')).toBe(false);
  });

  it('comparison is a consistent total preorder', () => {
    const state = fc.oneof(fc.constantFrom(...ALL_STATES), fc.string());
    fc.assert(
      fc.property(state, state, (a, b) => {
        expect(Math.sign(compareStates(a, b)) + Math.sign(compareStates(b, a))).toBe(0);
        expect(stateGreaterThan(a, b)).toBe(stateLessThan(b, a));
        expect(stateGreaterThan(a, b) && stateLessThan(a, b)).toBe(false);
      }),
    );
  });
});
