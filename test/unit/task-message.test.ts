import { describe, expect, it } from 'vitest';
import { DecodeError, ArgumentError } from '../../src/errors.js';
import {
  decodeTaskMessage,
  encodeTaskMessage,
  encodeTaskMessageV1,
  isoformat,
  parseIsoDate,
  taskTimes,
} from '../../src/celery/task-message.js';

/** Header keys of a message captured from Celery 5.2.6's `send_task` (as_task_v2). */
const CELERY_5_HEADER_KEYS = [
  'argsrepr',
  'eta',
  'expires',
  'group',
  'group_index',
  'id',
  'ignore_result',
  'kwargsrepr',
  'lang',
  'origin',
  'parent_id',
  'retries',
  'root_id',
  'shadow',
  'task',
  'timelimit',
];

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

describe('encodeTaskMessage', () => {
  it('has exactly the header keys Celery 5.2 sends, with its defaults', () => {
    const m = encodeTaskMessage({ id: 'abc', task: 'tasks.add', args: [2, 3], replyTo: 'reply-q' });
    expect(Object.keys(m.headers).sort()).toEqual(CELERY_5_HEADER_KEYS);
    expect(m.headers).toMatchObject({
      lang: 'py',
      task: 'tasks.add',
      id: 'abc',
      root_id: 'abc',
      parent_id: null,
      group: null,
      group_index: null,
      eta: null,
      expires: null,
      retries: 0,
      timelimit: [null, null],
      argsrepr: '[2, 3]',
      kwargsrepr: '{}',
      shadow: null,
      ignore_result: false,
    });
    expect(m.headers['origin']).toMatch(/^gen\d+@/);
    expect(m.body).toEqual([[2, 3], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    expect(m.properties).toEqual({ correlationId: 'abc', replyTo: 'reply-q' });
  });

  it('takes countdown/expires/time limits in seconds, as apply_async, and writes Celery forms', () => {
    const m = encodeTaskMessage({
      task: 't',
      countdown: 5,
      expires: 60,
      timeLimit: 10,
      softTimeLimit: 5,
      kwargs: { a: 'x' },
      now: NOW,
    });
    expect(m.headers['eta']).toBe('2026-01-02T03:04:10.678000+00:00');
    expect(m.headers['expires']).toBe('2026-01-02T03:05:05.678000+00:00');
    // Celery's order: [hard, soft], seconds.
    expect(m.headers['timelimit']).toEqual([10, 5]);
    expect(m.headers['kwargsrepr']).toBe("{'a': 'x'}");
    expect(m.properties.expiration).toBe('60000');
  });

  it('takes an eta Date, an expires Date and extra headers', () => {
    const m = encodeTaskMessage({
      task: 't',
      eta: new Date(NOW),
      expires: new Date(NOW - 1000),
      headers: { custom: 1 },
      now: NOW,
    });
    expect(m.headers['eta']).toBe(isoformat(new Date(NOW)));
    expect(m.properties.expiration).toBe('0');
    expect(m.headers['custom']).toBe(1);
  });

  it('cuts long reprs like saferepr', () => {
    const m = encodeTaskMessage({ task: 't', args: ['x'.repeat(5000)] });
    expect((m.headers['argsrepr'] as string).length).toBe(1024);
    expect(m.headers['argsrepr']).toMatch(/\.\.\.$/);
  });

  it('rejects bad input', () => {
    expect(() => encodeTaskMessage({ task: '' })).toThrow(ArgumentError);
    expect(() => encodeTaskMessage({ task: 't', args: {} as unknown as unknown[] })).toThrow(ArgumentError);
    expect(() => encodeTaskMessage({ task: 't', kwargs: [] as unknown as Record<string, unknown> })).toThrow(
      ArgumentError,
    );
    expect(() => encodeTaskMessage({ task: 't', countdown: -1 })).toThrow(ArgumentError);
  });
});

/** The body keys of Celery 3.1.26's `TaskProducer.publish_task`. */
const CELERY_31_BODY_KEYS = [
  'args',
  'callbacks',
  'chord',
  'errbacks',
  'eta',
  'expires',
  'id',
  'kwargs',
  'retries',
  'task',
  'taskset',
  'timelimit',
  'utc',
];
/** Celery 4.4.7 / 5.2.6 `as_task_v1` adds these two. */
const CELERY_4_V1_EXTRA = ['group', 'group_index'];

describe('encodeTaskMessageV1 (Celery 3.1)', () => {
  it('has the body keys 3.1 sends (and 4/5’s group), empty headers, no expiration property', () => {
    const m = encodeTaskMessageV1({ id: 'abc', task: 'tasks.add', args: [2, 3], replyTo: 'reply-q' });
    expect(Object.keys(m.body).sort()).toEqual([...CELERY_31_BODY_KEYS, ...CELERY_4_V1_EXTRA].sort());
    expect(m.body).toEqual({
      task: 'tasks.add',
      id: 'abc',
      args: [2, 3],
      kwargs: {},
      retries: 0,
      eta: null,
      expires: null,
      utc: true,
      callbacks: null,
      errbacks: null,
      timelimit: [null, null],
      taskset: null,
      chord: null,
      group: null,
      group_index: null,
    });
    expect(m.headers).toEqual({});
    expect(m.properties).toEqual({ correlationId: 'abc', replyTo: 'reply-q' });
  });

  it('puts countdown, expires, limits, the group and the canvas in the body, in Celery units', () => {
    const m = encodeTaskMessageV1({
      task: 't',
      countdown: 5,
      expires: 60,
      timeLimit: 10,
      softTimeLimit: 5,
      groupId: 'g1',
      retries: 2,
      embed: { callbacks: [{ task: 'cb' }], errbacks: [{ task: 'eb' }], chord: { task: 'ch' } },
      headers: { extra: 1 },
      now: NOW,
    });
    expect(m.body).toMatchObject({
      eta: '2026-01-02T03:04:10.678000+00:00',
      expires: '2026-01-02T03:05:05.678000+00:00',
      timelimit: [10, 5],
      taskset: 'g1',
      group: 'g1',
      retries: 2,
      callbacks: [{ task: 'cb' }],
      errbacks: [{ task: 'eb' }],
      chord: { task: 'ch' },
    });
    expect(m.headers).toEqual({ extra: 1 });
    expect('expiration' in m.properties).toBe(false);
  });

  it('decodes back as a v1 message, the taskset as the group (Celery 5’s proto1_to_proto2)', () => {
    const m = encodeTaskMessageV1({ id: 'i9', task: 'add', args: [1], groupId: 'g', replyTo: 'q' });
    const d = decodeTaskMessage({
      payload: JSON.parse(JSON.stringify(m.body)) as unknown,
      properties: { headers: {}, correlationId: 'i9', replyTo: 'q' },
    });
    expect(d).toMatchObject({ id: 'i9', task: 'add', args: [1], protocol: 1, replyTo: 'q' });
    expect(d.headers['group']).toBe('g');
  });

  it('rejects bad input as v2 does', () => {
    expect(() => encodeTaskMessageV1({ task: '' })).toThrow(ArgumentError);
    expect(() => encodeTaskMessageV1({ task: 't', countdown: -1 })).toThrow(ArgumentError);
  });
});

describe('Celery 5.3/5.4 headers', () => {
  it('are absent by default (a 5.2 message) and sent when given', () => {
    expect(encodeTaskMessage({ task: 't' }).headers).not.toHaveProperty('stamps');
    const m = encodeTaskMessage({ task: 't', stamps: { tenant: 'a', run: [1, 2] }, replacedTaskNesting: 1 });
    expect(m.headers['stamped_headers']).toEqual(['tenant', 'run']);
    expect(m.headers['stamps']).toEqual({ tenant: 'a', run: [1, 2] });
    expect(m.headers['replaced_task_nesting']).toBe(1);
  });

  it('refuses bad stamps and nesting', () => {
    expect(() => encodeTaskMessage({ task: 't', stamps: [] as unknown as Record<string, unknown> })).toThrow(
      ArgumentError,
    );
    expect(() => encodeTaskMessage({ task: 't', replacedTaskNesting: -1 })).toThrow(ArgumentError);
  });
});

describe('decodeTaskMessage', () => {
  it('round-trips a v2 message', () => {
    const m = encodeTaskMessage({
      id: 'i1',
      task: 'echo',
      args: [1],
      kwargs: { k: true },
      replyTo: 'q',
      embed: { callbacks: [{ task: 'cb' }] },
    });
    const d = decodeTaskMessage({
      payload: JSON.parse(JSON.stringify(m.body)) as unknown,
      properties: { headers: m.headers as never, correlationId: 'i1', replyTo: 'q' },
    });
    expect(d).toMatchObject({
      id: 'i1',
      task: 'echo',
      args: [1],
      kwargs: { k: true },
      replyTo: 'q',
      correlationId: 'i1',
      protocol: 2,
    });
    expect(d.embed.callbacks).toEqual([{ task: 'cb' }]);
  });

  it('decodes a v1 (Celery 3.1) body and treats an empty reply_to as none', () => {
    const d = decodeTaskMessage({
      payload: { task: 'add', id: 'i2', args: [1, 2], kwargs: {}, callbacks: null, chord: null },
      properties: { replyTo: '', correlationId: 'i2' },
    });
    expect(d).toMatchObject({ id: 'i2', task: 'add', args: [1, 2], protocol: 1, replyTo: null });
  });

  it('rejects what is not a task message', () => {
    expect(() => decodeTaskMessage({ payload: { x: 1 }, properties: {} })).toThrow(DecodeError);
    expect(() =>
      decodeTaskMessage({ payload: { a: 1 }, properties: { headers: { task: 't', id: 'i' } } }),
    ).toThrow(DecodeError);
    expect(() =>
      decodeTaskMessage({ payload: [[], 'no'], properties: { headers: { task: 't', id: 'i' } } }),
    ).toThrow(DecodeError);
  });
});

describe('taskTimes / parseIsoDate', () => {
  it('reads back the eta and expires encodeTaskMessage writes, to the microsecond', () => {
    const m = encodeTaskMessage({ task: 't', countdown: 1.5, expires: 60, now: NOW });
    expect(taskTimes({ headers: m.headers })).toEqual({ eta: NOW + 1500, expires: NOW + 60_000 });
    expect(taskTimes({ headers: { eta: null, expires: null } })).toEqual({ eta: null, expires: null });
    expect(parseIsoDate('1970-01-01T00:00:01.000500+00:00')).toBe(1000.5);
  });

  it('applies the offset, and takes a date without one as UTC (enable_utc)', () => {
    expect(parseIsoDate('2026-01-02T05:04:05.678000+02:00')).toBe(NOW);
    expect(parseIsoDate('2026-01-01T22:04:05.678-05:00')).toBe(NOW);
    expect(parseIsoDate('2026-01-02T03:04:05.678Z')).toBe(NOW);
    expect(parseIsoDate('2026-01-02T03:04:05.678')).toBe(NOW);
    expect(parseIsoDate('2026-01-02 03:04:05.678')).toBe(NOW);
    expect(parseIsoDate('2026-01-02')).toBe(Date.UTC(2026, 0, 2));
  });

  it('treats an empty value as none and refuses what Celery refuses (InvalidTaskError)', () => {
    expect(taskTimes({ headers: { eta: '', expires: 0 } })).toEqual({ eta: null, expires: null });
    expect(() => taskTimes({ headers: { eta: 'tomorrow' } })).toThrow(DecodeError);
    expect(() => taskTimes({ headers: { expires: 12 } })).toThrow(/invalid expires value 12/);
    expect(() => parseIsoDate('2026-02-30T00:00:00')).toThrow(DecodeError);
    expect(() => parseIsoDate('2026-01-01T24:00:00')).toThrow(DecodeError);
  });
});
