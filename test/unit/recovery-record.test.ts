import { describe, expect, it } from 'vitest';
import { ChannelError, ConnectionError } from '../../src/errors.js';
import { RecoveryRecord } from '../../src/kombu/recovery-record.js';
import type { RecordedOp } from '../../src/kombu/recovery-record.js';
import type { QueueDeclareOk, TransportChannel } from '../../src/transport/types.js';

/**
 * A transport channel that records the declarations replayed on it, as `method name` lines,
 * and fails those `fail` says to. The record only calls these four methods and reads `closed`.
 */
class ReplayTarget {
  closed = false;
  readonly calls: string[] = [];
  constructor(readonly fail: (line: string) => Error | undefined = () => undefined) {}
  #call(line: string): Promise<void> {
    this.calls.push(line);
    const err = this.fail(line);
    return err === undefined ? Promise.resolve() : Promise.reject(err);
  }
  declareExchange(p: { exchange: string }): Promise<void> {
    return this.#call(`declareExchange ${p.exchange}`);
  }
  bindExchange(p: { destination: string; source: string; routingKey?: string }): Promise<void> {
    return this.#call(`bindExchange ${p.destination}<-${p.source}:${p.routingKey ?? ''}`);
  }
  bindQueue(p: { queue: string; exchange: string; routingKey?: string }): Promise<void> {
    return this.#call(`bindQueue ${p.queue}<-${p.exchange}:${p.routingKey ?? ''}`);
  }
  async declareQueue(p: { queue: string }): Promise<QueueDeclareOk> {
    await this.#call(`declareQueue ${p.queue}`);
    return {
      queue: p.queue === '' ? `amq.gen-${this.calls.length}` : p.queue,
      messageCount: 0,
      consumerCount: 0,
    };
  }
  get channel(): TransportChannel {
    return this as unknown as TransportChannel;
  }
}

const exchange = (name: string): RecordedOp => ({
  method: 'declareExchange',
  params: { exchange: name, type: 'direct' },
});
const queue = (name: string): RecordedOp => ({ method: 'declareQueue', params: { queue: name } });
const qbind = (q: string, x: string, rk: string): RecordedOp => ({
  method: 'bindQueue',
  params: { queue: q, exchange: x, routingKey: rk },
});
const xbind = (d: string, s: string, rk: string): RecordedOp => ({
  method: 'bindExchange',
  params: { destination: d, source: s, routingKey: rk },
});

async function replayOn(record: RecoveryRecord, target = new ReplayTarget()): Promise<string[]> {
  await record.replay(target.channel, {
    create: () => Promise.resolve(target.channel),
    report: () => undefined,
  });
  return target.calls;
}

describe('RecoveryRecord', () => {
  it('evicts the oldest unpinned declaration and keeps those of consumed queues', () => {
    const record = new RecoveryRecord(2);
    record.remember(queue('a'));
    record.remember(qbind('a', 'ex', 'a'));
    record.pin('a');
    record.remember(exchange('x'));
    record.remember(exchange('y'));
    record.remember(exchange('z'));
    // Pinned declarations do not count against the limit: two exchanges are kept besides them.
    expect(record.size).toBe(4);
    expect(record.has(queue('a'))).toBe(true);
    expect(record.has(qbind('a', 'ex', 'a'))).toBe(true);
    expect(record.has(exchange('x'))).toBe(false);
    expect(record.has(exchange('z'))).toBe(true);
  });

  it('counts a queue against the limit again once its last consumer ends', () => {
    const record = new RecoveryRecord(1);
    record.remember(queue('a'));
    record.pin('a');
    record.pin('a');
    record.remember(exchange('x'));
    record.unpin('a');
    record.remember(exchange('y'));
    expect(record.has(queue('a'))).toBe(true);
    record.unpin('a');
    // One eviction per remembered declaration, oldest unpinned first.
    record.remember(exchange('z'));
    expect(record.has(exchange('y'))).toBe(false);
    record.remember(exchange('w'));
    expect(record.has(queue('a'))).toBe(false);
    expect(record.has(exchange('w'))).toBe(true);
  });

  it('keys by what is declared: a redeclaration replaces, unbind and delete forget exactly theirs', async () => {
    const record = new RecoveryRecord(10);
    record.remember({ method: 'declareQueue', params: { queue: 'a', durable: false } });
    record.remember({ method: 'declareQueue', params: { queue: 'a', durable: true } });
    record.remember(qbind('a', 'ex', 'k1'));
    record.remember(qbind('a', 'ex', 'k2'));
    record.remember(xbind('d', 's', 'k'));
    expect(record.size).toBe(4);
    record.forget({ method: 'bindQueue', params: { queue: 'a', exchange: 'ex', routingKey: 'k1' } });
    record.forget({ method: 'bindExchange', params: { destination: 'd', source: 's', routingKey: 'k' } });
    expect(await replayOn(record)).toEqual(['declareQueue a', 'bindQueue a<-ex:k2']);
  });

  it('forgetQueue drops the bindings of the deleted queue too, so a replay binds nothing to it', async () => {
    const record = new RecoveryRecord(10);
    for (const op of [exchange('ex'), queue('a'), qbind('a', 'ex', 'a'), qbind('a', 'ex', 'b'), queue('c')])
      record.remember(op);
    record.remember(qbind('c', 'ex', 'c'));
    record.pin('a');
    record.forgetQueue('a');
    expect(record.size).toBe(3);
    expect(await replayOn(record)).toEqual(['declareExchange ex', 'declareQueue c', 'bindQueue c<-ex:c']);
    // The pin count followed: with a's declarations gone, the limit counts c's again.
    record.unpin('a');
    for (let i = 0; i < 10; i += 1) record.remember(exchange(`x${i}`));
    expect(record.size).toBe(10);
  });

  it("forgetQueue drops the queue's declaration, under its current or original name", () => {
    const record = new RecoveryRecord(10);
    record.remember(queue('a'));
    record.remember(queue('amq.gen-1'), { serverNamed: true });
    record.forgetQueue('a');
    expect(record.has(queue('a'))).toBe(false);
    record.rename('amq.gen-1', 'amq.gen-2');
    record.forgetQueue('amq.gen-2');
    expect(record.has(queue('amq.gen-1'))).toBe(false);
    expect(record.currentName('amq.gen-1')).toBe('amq.gen-1');
    expect(record.size).toBe(0);
  });

  it('moves the declarations and consumer count of a renamed queue to its new name', () => {
    const record = new RecoveryRecord(0);
    record.pin('amq.gen-1');
    record.remember(queue('amq.gen-1'));
    record.remember(qbind('amq.gen-1', 'ex', 'rk'));
    expect(record.rename('amq.gen-1', 'amq.gen-2')).toBe('amq.gen-1');
    expect(record.rename('amq.gen-1', 'amq.gen-2')).toBeUndefined();
    expect(record.currentName('amq.gen-1')).toBe('amq.gen-2');
    // Still pinned under the new name: with a limit of 0 only the exchange is evicted.
    record.remember(exchange('x'));
    expect(record.has(exchange('x'))).toBe(false);
    expect(record.size).toBe(2);
    record.unpin('amq.gen-1');
    record.remember(exchange('y'));
    expect(record.has(queue('amq.gen-1'))).toBe(false);
  });

  it('replays by kind (exchanges, exchange bindings, queues, queue bindings), not by age', async () => {
    const record = new RecoveryRecord(10);
    for (const op of [qbind('q', 'ex', 'rk'), queue('q'), xbind('d', 's', 'rk'), exchange('ex')])
      record.remember(op);
    const target = new ReplayTarget();
    await expect(
      record.replay(target.channel, { create: () => Promise.reject(new Error('unused')), report: () => {} }),
    ).resolves.toBe(target.channel);
    expect(target.calls).toEqual([
      'declareExchange ex',
      'bindExchange d<-s:rk',
      'declareQueue q',
      'bindQueue q<-ex:rk',
    ]);
  });

  it('replays a server-named queue as "" and reports its new name; its bindings follow', async () => {
    const record = new RecoveryRecord(10);
    record.remember(queue('amq.gen-old'), { serverNamed: true });
    record.remember(qbind('amq.gen-old', 'ex', 'k'));
    const target = new ReplayTarget();
    const renamed: Array<[string, string]> = [];
    await record.replay(target.channel, {
      create: () => Promise.resolve(target.channel),
      report: () => undefined,
      renamed: (from, to) => {
        renamed.push([from, to]);
        record.rename(from, to);
      },
    });
    expect(renamed).toEqual([['amq.gen-old', 'amq.gen-1']]);
    expect(target.calls).toEqual(['declareQueue ', 'bindQueue amq.gen-1<-ex:k']);
  });

  it('forgets and reports a declaration that fails, replaying the rest again', async () => {
    const record = new RecoveryRecord(10);
    const bad = new ChannelError('PRECONDITION_FAILED');
    record.remember(exchange('good'));
    record.remember(exchange('bad'));
    const reported: unknown[] = [];
    const target = new ReplayTarget((line) => (line === 'declareExchange bad' ? bad : undefined));
    await record.replay(target.channel, {
      create: () => Promise.resolve(target.channel),
      report: (err) => reported.push(err),
    });
    expect(reported).toEqual([bad]);
    expect(record.has(exchange('bad'))).toBe(false);
    expect(record.has(exchange('good'))).toBe(true);
    expect(target.calls.filter((c) => c === 'declareExchange good')).toHaveLength(2);
  });

  it('rejects on a recoverable (connection) error and keeps the record', async () => {
    const record = new RecoveryRecord(10);
    const lost = new ConnectionError('connection lost');
    record.remember(queue('a'));
    const target = new ReplayTarget(() => lost);
    await expect(
      record.replay(target.channel, { create: () => Promise.resolve(target.channel), report: () => {} }),
    ).rejects.toBe(lost);
    expect(record.has(queue('a'))).toBe(true);
  });

  it('clear forgets declarations, consumers and renames', () => {
    const record = new RecoveryRecord(10);
    record.remember(queue('amq.gen-1'));
    record.pin('amq.gen-1');
    record.rename('amq.gen-1', 'amq.gen-2');
    record.clear();
    expect(record.size).toBe(0);
    expect(record.currentName('amq.gen-1')).toBe('amq.gen-1');
  });
});
