/**
 * Which setting compresses what, as in Celery's code: `task_compression` (Celery 3.1 name
 * `CELERY_MESSAGE_COMPRESSION`) compresses task messages; `result_compression` (old name
 * `CELERY_RESULT_COMPRESSION`) compresses results; `CELERY_MESSAGE_COMPRESSION`, 3.1's one
 * setting, also compresses results when result_compression is not given, as 3.1 did.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import type { CeleryAppSettings } from '../../src/celery/app.js';
import { resolveSettings } from '../../src/celery/settings.js';
import { ArgumentError } from '../../src/errors.js';
import { Consumer } from '../../src/kombu/consumer.js';
import type { Message } from '../../src/kombu/message.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { dropQueue } from '../worker-fixture.js';

const cleanups = cleanupStack();
afterEach(() => cleanups.run());

/** The headers of the task message an app with `settings` sends (read raw on memory://). */
async function sentHeaders(settings: Partial<CeleryAppSettings>): Promise<Message> {
  const queue = uid('compr');
  const app = new Celery({ broker: 'memory://', settings: { task_default_queue: queue, ...settings } });
  cleanups.push(() => dropQueue('memory://', queue));
  cleanups.push(() => app.close());
  await app.taskQueue(queue).bind(app.connection).declare();
  const ch = await app.connection.channel();
  cleanups.push(() => ch.close());
  const got: Message[] = [];
  await new Consumer(ch, { queues: [app.taskQueue(queue)], onMessage: (m) => void got.push(m) }).consume();
  await app.sendTask('t', [1], {}, { ignoreResult: true });
  const m = await waitUntil(() => got[0], { what: 'the task message' });
  expect(m.payload).toEqual([[1], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
  return m;
}

describe('compression settings', () => {
  it('task_compression and its 3.1 name CELERY_MESSAGE_COMPRESSION compress task messages', async () => {
    expect((await sentHeaders({ task_compression: 'zlib' })).properties.headers?.['compression']).toBe(
      'application/x-gzip',
    );
    const legacy = await sentHeaders({ CELERY_MESSAGE_COMPRESSION: 'bzip2' });
    expect(legacy.properties.headers?.['compression']).toBe('application/x-bz2');
  });

  it('result_compression does not compress task messages (Celery 4.0-5.2 did, by mistake)', async () => {
    const m = await sentHeaders({ result_compression: 'zlib' });
    expect(m.properties.headers?.['compression']).toBeUndefined();
  });

  it('results: result_compression or CELERY_RESULT_COMPRESSION; else 3.1’s CELERY_MESSAGE_COMPRESSION', () => {
    expect(resolveSettings({ result_compression: 'zlib' }).compression).toBe('application/x-gzip');
    expect(resolveSettings({ CELERY_RESULT_COMPRESSION: 'bzip2' }).compression).toBe('application/x-bz2');
    expect(resolveSettings({ CELERY_MESSAGE_COMPRESSION: 'bzip2' }).compression).toBe('application/x-bz2');
    expect(
      resolveSettings({ CELERY_MESSAGE_COMPRESSION: 'bzip2', result_compression: 'zlib' }).compression,
    ).toBe('application/x-gzip');
    expect(
      resolveSettings({ CELERY_MESSAGE_COMPRESSION: 'zlib', result_compression: null }).compression,
    ).toBeNull();
    const app = new Celery({ broker: 'memory://', settings: { CELERY_MESSAGE_COMPRESSION: 'zlib' } });
    cleanups.push(() => app.close());
    expect(app.conf.task_compression).toBe('zlib');
    expect((app.backend as { compression?: unknown }).compression).toBe('application/x-gzip');
    const modern = new Celery({ broker: 'memory://', settings: { task_compression: 'zlib' } });
    cleanups.push(() => modern.close());
    expect((modern.backend as { compression?: unknown }).compression).toBeNull();
  });

  it('refuses conflicts and unknown methods, naming the setting', () => {
    expect(() => resolveSettings({ result_compression: 'zlib', CELERY_RESULT_COMPRESSION: 'bzip2' })).toThrow(
      /result_compression.*CELERY_RESULT_COMPRESSION/,
    );
    expect(() => resolveSettings({ CELERY_MESSAGE_COMPRESSION: 'snappy' })).toThrow(
      /^CELERY_MESSAGE_COMPRESSION: unknown compression "snappy"/,
    );
    expect(
      () =>
        new Celery({
          broker: 'memory://',
          settings: { task_compression: 'zlib', CELERY_MESSAGE_COMPRESSION: 'bzip2' },
        }),
    ).toThrow(ArgumentError);
    expect(() => new Celery({ broker: 'memory://', settings: { task_compression: 'snappy' } })).toThrow(
      /^task_compression: unknown compression/,
    );
  });
});
