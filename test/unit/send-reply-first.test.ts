/**
 * `sendTask` on rpc:// resolves on the publisher confirm or the task's first reply, whichever
 * comes first (memory://, Node worker): the confirm of a task message is held back or failed
 * here by wrapping Producer.publish for task messages only (the message itself still goes
 * out), so the reply is the only thing that can resolve the send.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChannelError } from '../../src/errors.js';
import { Producer } from '../../src/kombu/producer.js';
import type { PublishOptions } from '../../src/kombu/producer.js';
import { cleanupStack, newTaskId, waitUntil } from '../fixture.js';
import { send, startWorker } from '../worker-fixture.js';

/** The confirm each task publish gets, in place of the broker's (the message is still sent). */
type Confirm = (delivered: Promise<void>) => Promise<void>;

/** Wraps Producer.publish: task messages (a `task` header) get `confirm`'s promise. */
function holdTaskConfirms(confirm: Confirm): void {
  const original = Producer.prototype.publish;
  vi.spyOn(Producer.prototype, 'publish').mockImplementation(function (
    this: Producer,
    body: unknown,
    options: PublishOptions = {},
  ) {
    const delivered = original.call(this, body, options);
    return options.headers?.['task'] === undefined ? delivered : confirm(delivered);
  });
}

describe('sendTask on rpc:// (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(async () => {
    vi.restoreAllMocks();
    await cleanups.run();
  });

  it('resolves on the first reply when the confirm has not come, and get() still reads that reply', async () => {
    const { client } = await startWorker(cleanups, { add: (a) => Number(a[0]) + Number(a[1]) });
    // A confirm that never comes: only the reply can resolve the send.
    holdTaskConfirms(async (delivered) => {
      await delivered;
      return new Promise<void>(() => undefined);
    });
    const r = await send(client, 'add', [2, 3]);
    expect(await r.get()).toBe(5);
  });

  it('a confirm failing after the reply neither rejects the send nor goes unhandled', async () => {
    const { client } = await startWorker(cleanups, { add: (a) => Number(a[0]) + Number(a[1]) });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    cleanups.push(() => process.off('unhandledRejection', onUnhandled));
    let failConfirm: ((err: Error) => void) | undefined;
    holdTaskConfirms(async (delivered) => {
      await delivered;
      return new Promise<void>((_, reject) => {
        failConfirm = reject;
      });
    });
    const r = await send(client, 'add', [4, 5]);
    await waitUntil(() => failConfirm !== undefined);
    failConfirm?.(new ChannelError('channel closed before the confirm', { code: 'CHANNEL_CLOSED' }));
    expect(await r.get()).toBe(9);
    // Unhandled rejections are reported after the microtask queue drains: one macrotask later.
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it('a publish failing before any reply still rejects the send with its error', async () => {
    const { client } = await startWorker(cleanups, { add: (a) => Number(a[0]) + Number(a[1]) });
    holdTaskConfirms(() =>
      Promise.reject(new ChannelError('the broker nacked the message', { code: 'PUBLISH_NACKED' })),
    );
    await expect(client.sendTask('add', [1, 1], {}, { taskId: newTaskId() })).rejects.toMatchObject({
      code: 'PUBLISH_NACKED',
    });
  });

  it('without a result (ignoreResult) the send still resolves on the confirm', async () => {
    const { client } = await startWorker(cleanups, { add: (a) => Number(a[0]) + Number(a[1]) });
    let confirmed = false;
    holdTaskConfirms(async (delivered) => {
      await delivered;
      confirmed = true;
    });
    await send(client, 'add', [1, 2], {}, { ignoreResult: true });
    expect(confirmed).toBe(true);
  });
});
