import { describe, expect, it } from 'vitest';
import { ChannelError, ConnectionError } from '../../src/errors.js';
import { RecoveryRecord } from '../../src/kombu/recovery-record.js';
import type { Replay } from '../../src/kombu/recovery-record.js';
import type { TransportChannel } from '../../src/transport/types.js';

const noop: Replay = () => Promise.resolve();

/** A stand-in transport channel: the record only reads `closed` and hands it to replays. */
function fakeChannel(): TransportChannel {
  return { closed: false } as unknown as TransportChannel;
}

describe('RecoveryRecord', () => {
  it('evicts the oldest unpinned declaration and keeps those of consumed queues', () => {
    const record = new RecoveryRecord(2);
    record.remember('q\0a', noop);
    record.remember('qb\0a\0ex\0a', noop);
    record.pin('a');
    record.remember('e\0x', noop);
    record.remember('e\0y', noop);
    record.remember('e\0z', noop);
    // Pinned keys do not count against the limit: two exchanges are kept besides them.
    expect(record.size).toBe(4);
    expect(record.has('q\0a')).toBe(true);
    expect(record.has('qb\0a\0ex\0a')).toBe(true);
    expect(record.has('e\0x')).toBe(false);
    expect(record.has('e\0z')).toBe(true);
  });

  it('counts a queue against the limit again once its last consumer ends', () => {
    const record = new RecoveryRecord(1);
    record.remember('q\0a', noop);
    record.pin('a');
    record.pin('a');
    record.remember('e\0x', noop);
    record.unpin('a');
    record.remember('e\0y', noop);
    expect(record.has('q\0a')).toBe(true);
    record.unpin('a');
    // One eviction per remembered declaration, oldest unpinned first.
    record.remember('e\0z', noop);
    expect(record.has('e\0y')).toBe(false);
    record.remember('e\0w', noop);
    expect(record.has('q\0a')).toBe(false);
    expect(record.has('e\0w')).toBe(true);
  });

  it('forgetQueue drops the bindings of the deleted queue too, so a replay binds nothing to it', async () => {
    const record = new RecoveryRecord(10);
    const replayed: string[] = [];
    const replay =
      (key: string): Replay =>
      () => {
        replayed.push(key);
        return Promise.resolve();
      };
    for (const key of ['e\0ex', 'q\0a', 'qb\0a\0ex\0a', 'qb\0a\0ex\0b', 'q\0c', 'qb\0c\0ex\0c'])
      record.remember(key, replay(key));
    record.pin('a');
    record.forgetQueue('a');
    expect(record.size).toBe(3);
    await record.replay(
      fakeChannel(),
      () => Promise.resolve(fakeChannel()),
      () => undefined,
    );
    expect(replayed).toEqual(['e\0ex', 'q\0c', 'qb\0c\0ex\0c']);
    // The pin count followed: with a's keys gone, the limit counts c's again.
    record.unpin('a');
    for (let i = 0; i < 10; i += 1) record.remember(`e\0x${i}`, noop);
    expect(record.size).toBe(10);
  });

  it("forgetQueue drops the queue's declaration, under its current or original name", () => {
    const record = new RecoveryRecord(10);
    record.remember('q\0a', noop);
    record.remember('q\0amq.gen-1', noop);
    record.forgetQueue('a');
    expect(record.has('q\0a')).toBe(false);
    record.rename('amq.gen-1', 'amq.gen-2');
    record.forgetQueue('amq.gen-2');
    expect(record.has('q\0amq.gen-1')).toBe(false);
    expect(record.currentName('amq.gen-1')).toBe('amq.gen-1');
    expect(record.size).toBe(0);
  });

  it('moves the keys and consumer count of a renamed queue to its new name', () => {
    const record = new RecoveryRecord(0);
    record.pin('amq.gen-1');
    record.remember('q\0amq.gen-1', noop);
    record.remember('qb\0amq.gen-1\0ex\0rk', noop);
    expect(record.rename('amq.gen-1', 'amq.gen-2')).toBe('amq.gen-1');
    expect(record.rename('amq.gen-1', 'amq.gen-2')).toBeUndefined();
    expect(record.currentName('amq.gen-1')).toBe('amq.gen-2');
    // Still pinned under the new name: with a limit of 0 only the exchange is evicted.
    record.remember('e\0x', noop);
    expect(record.has('e\0x')).toBe(false);
    expect(record.size).toBe(2);
    record.unpin('amq.gen-1');
    record.remember('e\0y', noop);
    expect(record.has('q\0amq.gen-1')).toBe(false);
  });

  it('replays by kind (exchanges, exchange bindings, queues, queue bindings), not by age', async () => {
    const record = new RecoveryRecord(10);
    const order: string[] = [];
    for (const key of ['qb\0q\0ex\0rk', 'q\0q', 'eb\0d\0s\0rk', 'e\0ex']) {
      record.remember(key, () => {
        order.push(key.slice(0, key.indexOf('\0')));
        return Promise.resolve();
      });
    }
    const ch = fakeChannel();
    await expect(
      record.replay(
        ch,
        () => Promise.reject(new Error('unused')),
        () => {},
      ),
    ).resolves.toBe(ch);
    expect(order).toEqual(['e', 'eb', 'q', 'qb']);
  });

  it('forgets and reports a declaration that fails, replaying the rest again', async () => {
    const record = new RecoveryRecord(10);
    const bad = new ChannelError('PRECONDITION_FAILED');
    let good = 0;
    record.remember('e\0good', () => Promise.resolve(++good));
    record.remember('e\0bad', () => Promise.reject(bad));
    const reported: unknown[] = [];
    await record.replay(
      fakeChannel(),
      () => Promise.resolve(fakeChannel()),
      (err) => reported.push(err),
    );
    expect(reported).toEqual([bad]);
    expect(record.has('e\0bad')).toBe(false);
    expect(record.has('e\0good')).toBe(true);
    expect(good).toBe(2);
  });

  it('rejects on a recoverable (connection) error and keeps the record', async () => {
    const record = new RecoveryRecord(10);
    const lost = new ConnectionError('connection lost');
    record.remember('q\0a', () => Promise.reject(lost));
    await expect(
      record.replay(
        fakeChannel(),
        () => Promise.resolve(fakeChannel()),
        () => {},
      ),
    ).rejects.toBe(lost);
    expect(record.has('q\0a')).toBe(true);
  });

  it('clear forgets declarations, consumers and renames', () => {
    const record = new RecoveryRecord(10);
    record.remember('q\0amq.gen-1', noop);
    record.pin('amq.gen-1');
    record.rename('amq.gen-1', 'amq.gen-2');
    record.clear();
    expect(record.size).toBe(0);
    expect(record.currentName('amq.gen-1')).toBe('amq.gen-1');
  });
});
