import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { DEFAULT_SETTINGS, resolveSettings } from '../../src/celery/settings.js';
import type { CelerySettings } from '../../src/celery/settings.js';
import { ArgumentError } from '../../src/errors.js';

describe('resolveSettings', () => {
  it('fills in Celery 4.x defaults, except a bounded result cache', () => {
    expect(resolveSettings()).toEqual({
      exchange: 'celeryresults',
      exchangeType: 'direct',
      persistent: true,
      expiresMs: 86_400_000,
      serializer: 'json',
      accept: ['json'],
      cacheMax: 10_000,
      compression: null,
      extended: false,
    });
    expect(resolveSettings({})).toEqual(DEFAULT_SETTINGS);
  });

  it('reads 4.x names', () => {
    expect(
      resolveSettings({
        result_exchange: 'res',
        result_exchange_type: 'topic',
        result_persistent: false,
        result_expires: 3600,
        result_serializer: 'msgpack',
        accept_content: ['json', 'application/x-msgpack'],
        result_cache_max: 100,
        result_compression: 'zlib',
        result_extended: true,
      }),
    ).toEqual({
      exchange: 'res',
      exchangeType: 'topic',
      persistent: false,
      expiresMs: 3_600_000,
      serializer: 'msgpack',
      accept: ['json', 'application/x-msgpack'],
      cacheMax: 100,
      compression: 'application/x-gzip',
      extended: true,
    });
  });

  it('reads 3.1 (and Celery 4 old-style) names', () => {
    expect(
      resolveSettings({
        CELERY_RESULT_EXCHANGE: 'old',
        CELERY_RESULT_EXCHANGE_TYPE: 'fanout',
        CELERY_RESULT_PERSISTENT: false,
        CELERY_TASK_RESULT_EXPIRES: 1.5,
        CELERY_RESULT_SERIALIZER: 'yaml',
        CELERY_ACCEPT_CONTENT: ['json', 'yaml'],
        CELERY_MAX_CACHED_RESULTS: 0,
        CELERY_RESULT_COMPRESSION: 'application/x-brotli',
        CELERY_RESULT_EXTENDED: true,
      }),
    ).toEqual({
      exchange: 'old',
      exchangeType: 'fanout',
      persistent: false,
      expiresMs: 1500,
      serializer: 'yaml',
      accept: ['json', 'yaml'],
      cacheMax: 0,
      compression: 'application/x-brotli',
      extended: true,
    });
  });

  it('treats a null expiry as none, and converts seconds to whole ms', () => {
    expect(resolveSettings({ result_expires: null }).expiresMs).toBeNull();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2_147_483 }), (s) => {
        expect(resolveSettings({ result_expires: s }).expiresMs).toBe(s * 1000);
      }),
    );
    expect(resolveSettings({ result_expires: 0.0015 }).expiresMs).toBe(1);
    for (const bad of [-1, NaN, Infinity, '60', 3_000_000, 0.0001]) {
      expect(() => resolveSettings({ result_expires: bad as number })).toThrow(ArgumentError);
    }
  });

  it('refuses a 0 expiry up front, naming the setting, Celery’s wire and the fix', () => {
    for (const settings of [{ result_expires: 0 }, { CELERY_TASK_RESULT_EXPIRES: 0 }]) {
      expect(() => resolveSettings(settings)).toThrow(ArgumentError);
    }
    expect(() => resolveSettings({ result_expires: 0 })).toThrow(
      /^result_expires\/CELERY_TASK_RESULT_EXPIRES: 0 is refused\. Celery sends it as the queue argument x-expires 0, which RabbitMQ refuses \(406 PRECONDITION_FAILED.*use null/,
    );
    expect(() => new RPCBackend({ connection: 'memory://', expires: 0 })).toThrow(/^expires: 0 is refused/);
    expect(() => new AMQPBackend({ connection: 'memory://', settings: { result_expires: 0 } })).toThrow(
      /result_expires.*0 is refused/,
    );
  });

  it('refuses conflicting old and new names, naming both', () => {
    expect(() => resolveSettings({ result_expires: 10, CELERY_TASK_RESULT_EXPIRES: 20 })).toThrow(
      /result_expires.*CELERY_TASK_RESULT_EXPIRES/,
    );
    expect(() => resolveSettings({ accept_content: ['json'], CELERY_ACCEPT_CONTENT: ['yaml'] })).toThrow(
      ArgumentError,
    );
    // The same value under both names is not a conflict.
    expect(resolveSettings({ result_cache_max: 5, CELERY_MAX_CACHED_RESULTS: 5 }).cacheMax).toBe(5);
    expect(resolveSettings({ accept_content: ['json'], CELERY_ACCEPT_CONTENT: ['json'] }).accept).toEqual([
      'json',
    ]);
  });

  it('refuses unknown keys and bad values', () => {
    expect(() => resolveSettings({ result_expire: 10 } as unknown as Partial<CelerySettings>)).toThrow(
      /unknown setting "result_expire"/,
    );
    const bad: Array<Partial<CelerySettings>> = [
      { result_exchange: '' },
      { result_exchange_type: 'x-weird' },
      { result_persistent: 'yes' as unknown as boolean },
      { result_serializer: 'pickle' },
      { result_serializer: 'bson' },
      { accept_content: ['jsn'] },
      { accept_content: [''] },
      { accept_content: 42 as unknown as string[] },
      { result_cache_max: -2 },
      { result_cache_max: 1.5 },
      { result_compression: 'snappy' },
    ];
    for (const input of bad) {
      expect(() => resolveSettings(input), JSON.stringify(input)).toThrow(ArgumentError);
    }
  });

  it('accepts a comma-separated accept string and pickle in accept', () => {
    expect(resolveSettings({ accept_content: 'json, msgpack' as unknown as string[] }).accept).toEqual([
      'json',
      'msgpack',
    ]);
    expect(resolveSettings({ CELERY_ACCEPT_CONTENT: ['json', 'pickle'] }).accept).toEqual(['json', 'pickle']);
  });

  it('returns a frozen object', () => {
    const s = resolveSettings();
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.accept)).toBe(true);
  });
});
