/**
 * Failover lists (kombu's `;` string or an array), the walk over them (`round-robin`,
 * `shuffle`), and the Connection moving to the next node at once, backing off only after
 * a whole pass. The RabbitMQ cluster side of this is in test/cluster/.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { FailoverCycle, parseBrokerUrl, parseFailoverStrategy } from '../../src/transport/url.js';
import { uid, waitUntil } from '../fixture.js';

/** Addresses nothing listens on: connecting is refused at once. */
const DEAD_1 = 'amqp://guest:guest@127.0.0.1:1//';
const DEAD_2 = 'amqp://guest:guest@127.0.0.1:2//';

/** The next `n` indices of a cycle, and whether each step completed a pass. */
function walk(cycle: FailoverCycle, n: number): Array<[number, boolean]> {
  const out: Array<[number, boolean]> = [];
  for (let i = 0; i < n; i++) {
    const passDone = cycle.advance();
    out.push([cycle.current, passDone]);
  }
  return out;
}

describe('failover lists', () => {
  it('an array of URLs parses like the ;-separated string kombu writes', () => {
    const joined = parseBrokerUrl('amqp://u:p@h1:5681//;amqp://u:p@h2:5682//;amqp://u:p@h3:5683/v');
    expect(parseBrokerUrl(['amqp://u:p@h1:5681//', 'amqp://u:p@h2:5682//;amqp://u:p@h3:5683/v'])).toEqual(
      joined,
    );
    expect(joined.map((a) => [a.hostname, a.port, a.vhost])).toEqual([
      ['h1', 5681, '/'],
      ['h2', 5682, '/'],
      ['h3', 5683, 'v'],
    ]);
  });

  it('an empty array, or one that is not all strings, is a typed INVALID_URL', () => {
    expect(() => parseBrokerUrl([])).toThrow(ArgumentError);
    expect(() => parseBrokerUrl([''])).toThrow(/empty/);
    // @ts-expect-error a wrong element type, as plain JS could pass it
    expect(() => parseBrokerUrl(['amqp://h', 5672])).toThrow(/array of strings/);
  });

  it('strategies by kombu name; anything else is refused', () => {
    expect(parseFailoverStrategy(undefined)).toBe('round-robin');
    expect(parseFailoverStrategy('shuffle')).toBe('shuffle');
    expect(() => parseFailoverStrategy('random')).toThrow(/round-robin, shuffle/);
    expect(() => new Connection({ url: 'memory://', failoverStrategy: 'nope' as 'shuffle' })).toThrow(
      ArgumentError,
    );
  });
});

describe('FailoverCycle', () => {
  it('round-robin: list order, a pass complete after every address was tried once', () => {
    const cycle = new FailoverCycle(3);
    expect(cycle.current).toBe(0);
    expect(walk(cycle, 6)).toEqual([
      [1, false],
      [2, false],
      [0, true],
      [1, false],
      [2, false],
      [0, true],
    ]);
  });

  it('moveOn (a lost connection) goes to the next address and starts a new pass there', () => {
    const cycle = new FailoverCycle(3);
    cycle.moveOn();
    expect(cycle.current).toBe(1);
    // The node just lost (0) comes last in the pass.
    expect(walk(cycle, 3)).toEqual([
      [2, false],
      [0, false],
      [1, true],
    ]);
  });

  it('a connection resets the pass: the next failure starts counting again', () => {
    const cycle = new FailoverCycle(2);
    expect(cycle.advance()).toBe(false);
    cycle.connected();
    expect(cycle.advance()).toBe(false);
    expect(cycle.advance()).toBe(true);
  });

  it('one address: every failure completes a pass (backoff after each, as before)', () => {
    const cycle = new FailoverCycle(1);
    expect(walk(cycle, 3)).toEqual([
      [0, true],
      [0, true],
      [0, true],
    ]);
  });

  it('shuffle: every pass tries each address once, and never starts with the one just tried', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 7 }), fc.integer({ min: 1, max: 2 ** 31 }), (size, seed) => {
        let s = seed;
        // A small deterministic generator, so that a failure can be replayed.
        const random = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        const cycle = new FailoverCycle(size, 'shuffle', random);
        let pass = [cycle.current];
        for (let i = 0; i < size * 5; i++) {
          const last = cycle.current;
          const passDone = cycle.advance();
          if (passDone) {
            expect([...pass].sort()).toEqual(Array.from({ length: size }, (_, k) => k));
            expect(cycle.current).not.toBe(last);
            pass = [];
          }
          pass.push(cycle.current);
        }
      }),
    );
  });

  it('shuffle spreads first connections over the list', () => {
    const firsts = new Set<number>();
    for (let i = 0; i < 200; i++) firsts.add(new FailoverCycle(3, 'shuffle').current);
    expect([...firsts].sort()).toEqual([0, 1, 2]);
  });
});

describe('Connection failover', () => {
  const opened: Connection[] = [];
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
  });
  function open(
    url: string | string[],
    options: ConstructorParameters<typeof Connection>[1] = {},
  ): Connection {
    const c = new Connection(url, { heartbeat: 0, ...options });
    opened.push(c);
    return c;
  }

  it('connects to the first address that answers; connectedTo and the connect event name it, redacted', async () => {
    const host = uid('fo');
    const conn = open([DEAD_1, `memory://user:secret@${host}`]);
    const seen: string[] = [];
    conn.on('connect', (url) => seen.push(url));
    expect(conn.connectedTo).toBeUndefined();
    await conn.connect({ timeout: 10_000 });
    expect(conn.connectedTo).toBe(`memory://${host}/%2F`);
    expect(seen).toEqual([conn.connectedTo]);
    expect(String(conn.connectedTo)).not.toContain('secret');
  });

  it('after a loss it moves to the next node at once; the lost one is tried last', async () => {
    const a = uid('fo-a');
    const b = uid('fo-b');
    const conn = open([`memory://${a}`, `memory://${b}`], { retryPolicy: { intervalStart: 60_000 } });
    await conn.connect();
    expect(conn.connectedTo).toBe(`memory://${a}/%2F`);
    const seen: string[] = [];
    conn.on('connect', (url) => seen.push(url));
    MemoryBroker.get(a).disconnectAll('node lost');
    await waitUntil(() => conn.connected, { what: 'the reconnect' });
    expect(seen).toEqual([`memory://${b}/%2F`]);
    MemoryBroker.get(b).disconnectAll('node lost');
    await waitUntil(() => seen.length === 2, { what: 'the second reconnect' });
    expect(seen[1]).toBe(`memory://${a}/%2F`);
  });

  it('dead nodes within a pass cost no backoff: only a whole failed pass sleeps', async () => {
    const live = uid('fo-live');
    // A 60 s backoff: any sleep inside the pass would outlast the wait below.
    const conn = open([`memory://${live}`, DEAD_1, DEAD_2], { retryPolicy: { intervalStart: 60_000 } });
    await conn.connect();
    const seen: string[] = [];
    conn.on('connect', (url) => seen.push(url));
    MemoryBroker.get(live).disconnectAll('node lost');
    // DEAD_1 and DEAD_2 are refused in turn, then the live node (tried last) takes it.
    await waitUntil(() => seen.length === 1, { what: 'the reconnect after two refusals', timeout: 20_000 });
    expect(seen).toEqual([`memory://${live}/%2F`]);
  });

  it('a whole failed pass sleeps the policy backoff before the next', async () => {
    const conn = open([DEAD_1, DEAD_2]);
    const started = Date.now();
    const err = await conn
      .connect({ retryPolicy: { maxRetries: 3, intervalStart: 400, intervalStep: 0, intervalMax: 0 } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONNECTION_REFUSED' });
    // Four attempts: two passes of two, one 400 ms sleep between them (none inside a pass).
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });
});
