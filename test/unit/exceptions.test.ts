import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BacklogLimitExceeded,
  TaskError,
  TaskRevokedError,
  exceptionFromMeta,
  exceptionToMeta,
  pythonExceptionStr,
  pythonRepr,
} from '../../src/celery/exceptions.js';
import { CeleryAmqpError } from '../../src/errors.js';

describe('exceptionFromMeta', () => {
  it('reads the Celery 4.x form', () => {
    const err = exceptionFromMeta(
      { exc_type: 'ValueError', exc_message: ['bad'], exc_module: 'builtins' },
      'Traceback (most recent call last):\n  ...\nValueError: bad\n',
    );
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toBeInstanceOf(CeleryAmqpError);
    expect(err.code).toBe('TASK_FAILED');
    expect(err.name).toBe('ValueError');
    expect(err.message).toBe('bad');
    expect(String(err)).toBe('ValueError: bad');
    expect(err.excArgs).toEqual(['bad']);
    expect(err.excModule).toBe('builtins');
    expect(err.pythonType).toBe('builtins.ValueError');
    expect(err.traceback).toContain('ValueError: bad');
    expect(err.state).toBe('FAILURE');
  });

  it('reads the Celery 3.1 form', () => {
    const err = exceptionFromMeta({ exc_type: 'KeyError', exc_message: "'x'" });
    expect(err.name).toBe('KeyError');
    expect(err.message).toBe("'x'");
    expect(err.excArgs).toEqual(["'x'"]);
    expect(err.excModule).toBeNull();
    expect(err.traceback).toBeNull();
  });

  it("formats args like Python's str(exc)", () => {
    expect(
      exceptionFromMeta({ exc_type: 'KeyError', exc_message: ['x'], exc_module: 'builtins' }).message,
    ).toBe("'x'");
    expect(
      exceptionFromMeta({ exc_type: 'ValueError', exc_message: ['a', 1, null, true], exc_module: 'builtins' })
        .message,
    ).toBe("('a', 1, None, True)");
    expect(
      exceptionFromMeta({ exc_type: 'RuntimeError', exc_message: [], exc_module: 'builtins' }).message,
    ).toBe('');
    expect(
      exceptionFromMeta({
        exc_type: 'MyError',
        exc_message: [{ a: [1.5, "it's"] }],
        exc_module: 'proj.tasks',
      }).message,
    ).toBe(`{'a': [1.5, "it's"]}`);
  });

  it('reads a revoked task as TaskRevokedError', () => {
    // Celery 4.4 on revoke: mark_as_revoked stores TaskRevokedError('revoked') (or 'expired').
    const meta = { exc_type: 'TaskRevokedError', exc_message: ['revoked'], exc_module: 'celery.exceptions' };
    const err = exceptionFromMeta(meta, null, 'REVOKED');
    expect(err).toBeInstanceOf(TaskRevokedError);
    expect(err.state).toBe('REVOKED');
    expect(err.message).toBe('revoked');
    expect(exceptionFromMeta(meta)).toBeInstanceOf(TaskRevokedError);
    expect(exceptionFromMeta(null, null, 'REVOKED')).toBeInstanceOf(TaskRevokedError);
  });

  it('is robust to anything else', () => {
    expect(exceptionFromMeta('boom').message).toBe('boom');
    expect(exceptionFromMeta('boom').name).toBe('Exception');
    expect(exceptionFromMeta(null).message).toBe('');
    expect(exceptionFromMeta(42).message).toBe('42');
    expect(exceptionFromMeta({ foo: 1 }).message).toBe("{'foo': 1}");
    expect(exceptionFromMeta({ exc_type: 7, exc_message: 'x' }).name).toBe('Exception');
    expect(exceptionFromMeta({ exc_type: 'E', exc_message: 5 }).excArgs).toEqual([5]);
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
      },
    );
    expect(exceptionFromMeta(hostile)).toBeInstanceOf(TaskError);
    fc.assert(
      fc.property(fc.anything(), fc.option(fc.string(), { nil: undefined }), (value, state) => {
        const err = exceptionFromMeta(value, undefined, state);
        expect(err).toBeInstanceOf(TaskError);
        expect(typeof err.message).toBe('string');
      }),
    );
  });
});

describe('exceptionToMeta', () => {
  it('maps JS errors to Python builtins', () => {
    expect(exceptionToMeta(new TypeError('t'))).toEqual({
      exc_type: 'TypeError',
      exc_message: ['t'],
      exc_module: 'builtins',
    });
    expect(exceptionToMeta(new RangeError('r')).exc_type).toBe('ValueError');
    expect(exceptionToMeta(new SyntaxError('s')).exc_type).toBe('ValueError');
    expect(exceptionToMeta(new ReferenceError('x')).exc_type).toBe('NameError');
    expect(exceptionToMeta(new Error())).toEqual({
      exc_type: 'Exception',
      exc_message: [],
      exc_module: 'builtins',
    });
    class MyError extends Error {
      override name = 'MyError';
    }
    expect(exceptionToMeta(new MyError('m'))).toEqual({
      exc_type: 'MyError',
      exc_message: ['m'],
      exc_module: 'nodejs',
    });
    expect(exceptionToMeta('oops')).toEqual({
      exc_type: 'Exception',
      exc_message: ['oops'],
      exc_module: 'builtins',
    });
  });

  it('round-trips a TaskError to the same Python type, module and args', () => {
    const arg = fc.jsonValue();
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Z][A-Za-z]{0,12}$/),
        fc.stringMatching(/^[a-z][a-z.]{0,12}$/),
        fc.array(arg, { maxLength: 4 }),
        (type, module, args) => {
          const meta = { exc_type: type, exc_message: args, exc_module: module };
          const err = exceptionFromMeta(JSON.parse(JSON.stringify(meta)));
          expect(exceptionToMeta(err)).toEqual(JSON.parse(JSON.stringify(meta)));
          expect(exceptionFromMeta(exceptionToMeta(err)).message).toBe(err.message);
        },
      ),
    );
    expect(exceptionToMeta(exceptionFromMeta({ exc_type: 'KeyError', exc_message: "'x'" })).exc_module).toBe(
      'builtins',
    );
  });
});

describe('python repr and str', () => {
  it('matches CPython on examples', () => {
    expect(pythonRepr("a'b")).toBe(`"a'b"`);
    expect(pythonRepr(`a'b"c`)).toBe(`'a\\'b"c'`);
    expect(pythonRepr('a\nb\\')).toBe("'a\\nb\\\\'");
    expect(pythonRepr(2.7786292648607114e-5)).toBe('2.7786292648607114e-05');
    expect(pythonRepr(1e22)).toBe('1e+22');
    expect(pythonRepr(0.0001)).toBe('0.0001');
    expect(pythonRepr(NaN)).toBe('nan');
    expect(pythonRepr(-Infinity)).toBe('-inf');
    expect(pythonRepr(Buffer.from("a'\x00"))).toBe("b'a\\'\\x00'");
    expect(pythonExceptionStr('ValueError', ['one'])).toBe('one');
    expect(pythonExceptionStr('ValueError', [['one']])).toBe("['one']");
  });
});

describe('BacklogLimitExceeded', () => {
  it("names the task with Celery's wording", () => {
    const err = new BacklogLimitExceeded('abc');
    expect(err.code).toBe('BACKLOG_LIMIT_EXCEEDED');
    expect(err.message).toBe('Too much state history to fast-forward: abc');
    expect(err.taskId).toBe('abc');
    expect(err.name).toBe('BacklogLimitExceeded');
  });
});
