import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import type { BrokerAddress } from '../../src/transport/types.js';
import { formatBrokerUrl, parseBrokerUrl, redactUrl } from '../../src/transport/url.js';

function one(url: string): BrokerAddress {
  const list = parseBrokerUrl(url);
  expect(list).toHaveLength(1);
  return list[0]!;
}

function parseError(url: string): ArgumentError {
  try {
    parseBrokerUrl(url);
  } catch (err) {
    expect(err).toBeInstanceOf(ArgumentError);
    expect((err as ArgumentError).code).toBe('INVALID_URL');
    return err as ArgumentError;
  }
  throw new Error(`expected ${url} to be rejected`);
}

describe('parseBrokerUrl examples', () => {
  it('reads a full amqp URL', () => {
    expect(one('amqp://user:pw@rabbit.example:5673/prod?heartbeat=10&frame_max=131072')).toEqual({
      protocol: 'amqp',
      hostname: 'rabbit.example',
      port: 5673,
      username: 'user',
      password: 'pw',
      vhost: 'prod',
      query: { heartbeat: '10', frame_max: '131072' },
    });
  });

  it('applies guest/guest@localhost and the scheme default ports', () => {
    expect(one('amqp://')).toMatchObject({
      hostname: 'localhost',
      port: 5672,
      username: 'guest',
      password: 'guest',
      vhost: '/',
    });
    expect(one('amqps://h').port).toBe(5671);
    expect(one('amqp://u@h')).toMatchObject({ username: 'u', password: 'guest' });
    expect(one('amqp://:@h')).toMatchObject({ username: 'guest', password: 'guest' });
  });

  it('keeps a __proto__ query key as a plain entry (found by the round-trip property)', () => {
    const [a] = parseBrokerUrl('amqp://h/?__proto__=x&heartbeat=5');
    expect(Object.getPrototypeOf(a?.query)).toBe(Object.prototype);
    expect(Object.keys(a?.query ?? {})).toEqual(['__proto__', 'heartbeat']);
    expect(a?.query['__proto__']).toBe('x');
  });

  it('reads kombu aliases as amqp', () => {
    expect(one('pyamqp://h//').protocol).toBe('amqp');
    expect(one('librabbitmq://h//').protocol).toBe('amqp');
    expect(one('AMQP://h//').protocol).toBe('amqp');
  });

  it('maps the vhost path the way kombu does', () => {
    expect(one('amqp://h').vhost).toBe('/');
    expect(one('amqp://h/').vhost).toBe('/');
    expect(one('amqp://h//').vhost).toBe('/');
    expect(one('amqp://h/%2F').vhost).toBe('/');
    expect(one('amqp://h/%2f').vhost).toBe('/');
    expect(one('amqp://h/foo').vhost).toBe('foo');
    expect(one('amqp://h//foo').vhost).toBe('/foo');
    expect(one('amqp://h/a%20b?x=1').vhost).toBe('a b');
  });

  it('percent-decodes user and password', () => {
    expect(one('amqp://us%3Aer:p%40ss%2Fw%3Bd@h//')).toMatchObject({
      username: 'us:er',
      password: 'p@ss/w;d',
    });
  });

  it('splits at the last @ like urlsplit', () => {
    expect(one('amqp://u:p@ss@h//')).toMatchObject({ password: 'p@ss', hostname: 'h' });
  });

  it('reads IPv6 hosts', () => {
    expect(one('amqp://u:p@[::1]:5673//')).toMatchObject({ hostname: '::1', port: 5673 });
    expect(one('amqp://[fe80::1]//')).toMatchObject({ hostname: 'fe80::1', port: 5672 });
  });

  it('reads memory://', () => {
    expect(one('memory://')).toEqual({
      protocol: 'memory',
      hostname: 'localhost',
      port: 0,
      username: 'guest',
      password: 'guest',
      vhost: '/',
      query: {},
    });
  });

  it('reads ;-separated failover lists in order, skipping empty entries', () => {
    const list = parseBrokerUrl(' amqp://a:1@r1// ; amqps://b:2@r2:5999/v ;');
    expect(list.map((a) => [a.protocol, a.hostname, a.port, a.username, a.vhost])).toEqual([
      ['amqp', 'r1', 5672, 'a', '/'],
      ['amqps', 'r2', 5999, 'b', 'v'],
    ]);
  });

  it('keeps query values as strings', () => {
    expect(one('amqp://h//?heartbeat=0&connection_timeout=2.5&flag').query).toEqual({
      heartbeat: '0',
      connection_timeout: '2.5',
      flag: '',
    });
  });

  it('rejects malformed URLs with INVALID_URL', () => {
    parseError('');
    parseError(' ; ');
    parseError('rabbit.example:5672');
    parseError('ftp://h/');
    parseError('amqp://h:port/');
    parseError('amqp://h:70000/');
    parseError('amqp://h:0/');
    parseError('amqp://[::1/');
    parseError('amqp://h/%zz');
    expect(() => parseBrokerUrl(42 as unknown as string)).toThrow(ArgumentError);
  });

  it('never puts the password in an error message', () => {
    expect(parseError('amqp://u:hunter2@h:bad/').message).not.toContain('hunter2');
    expect(parseError('amqp://u:hunter2@h/%zz').message).not.toContain('hunter2');
    expect(parseError('amqp://u:hunt%zzer2@h/').message).not.toContain('hunt');
    expect(parseError('amqp://u:hunter2@h//;ftp://u:hunter3@x/').message).not.toMatch(/hunter[23]/);
    expect(parseError('bogus u:hunter2@h').message).not.toContain('hunter2');
  });
});

describe('formatBrokerUrl / redactUrl examples', () => {
  const address = one('amqp://u:s3cret@h:5673/prod?heartbeat=5');

  it('redacts by default', () => {
    expect(formatBrokerUrl(address)).toBe('amqp://u:****@h:5673/prod?heartbeat=5');
    expect(formatBrokerUrl(address, { redact: false })).toBe('amqp://u:s3cret@h:5673/prod?heartbeat=5');
  });

  it('writes the / vhost as // and brackets IPv6', () => {
    expect(formatBrokerUrl(one('amqp://[::1]//'), { redact: false })).toBe('amqp://guest:guest@[::1]:5672//');
  });

  it('redactUrl masks every password of a list and leaves the rest alone', () => {
    expect(redactUrl('amqp://guest:secret@h//;amqp://u:p@ss@h2/v')).toBe(
      'amqp://guest:****@h//;amqp://u:****@h2/v',
    );
    expect(redactUrl('amqp://h//')).toBe('amqp://h//');
    expect(redactUrl('amqp://user@h//')).toBe('amqp://user@h//');
  });
});

/** Arbitrary text including URL delimiters and non-ASCII, the characters that break naive encoders. */
const text = (minLength: number): fc.Arbitrary<string> =>
  fc.string({
    unit: fc.oneof(
      fc.constantFrom(':', '@', '/', '?', '#', ';', '%', '&', '=', '[', ']', ' ', '+', '\\'),
      fc.constantFrom('a', 'Z', '0', '-', '_', '.', '~'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    ),
    minLength,
    maxLength: 20,
  });

const addressArb: fc.Arbitrary<BrokerAddress> = fc.record({
  protocol: fc.constantFrom('amqp' as const, 'amqps' as const),
  hostname: fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6()),
  port: fc.integer({ min: 1, max: 65535 }),
  username: text(1),
  password: text(1),
  vhost: text(0).map((v) => (v === '' ? '/' : v)),
  query: fc.dictionary(text(1), text(0), { maxKeys: 3 }),
});

describe('properties', () => {
  it('format → parse round-trips any address', () => {
    fc.assert(
      fc.property(addressArb, (address) => {
        expect(parseBrokerUrl(formatBrokerUrl(address, { redact: false }))).toEqual([address]);
      }),
      { numRuns: 500 },
    );
  });

  it('failover lists of formatted addresses round-trip', () => {
    fc.assert(
      fc.property(fc.array(addressArb, { minLength: 1, maxLength: 4 }), (addresses) => {
        const url = addresses.map((a) => formatBrokerUrl(a, { redact: false })).join(';');
        expect(parseBrokerUrl(url)).toEqual(addresses);
      }),
    );
  });

  it('redacting never leaks the password', () => {
    fc.assert(
      fc.property(addressArb, (address) => {
        const raw = formatBrokerUrl(address, { redact: false });
        const masked = formatBrokerUrl(address);
        expect(redactUrl(raw)).toBe(masked);
        // The masked URL still parses to the same address, save the password.
        expect(parseBrokerUrl(masked)).toEqual([{ ...address, password: '****' }]);
        // The password field itself is the mask: checked exactly, since a password such as
        // '*' is also a substring of the mask (a false alarm of the earlier contains-check).
        const afterScheme = masked.slice(masked.indexOf('://') + 3);
        const userinfo = afterScheme.slice(0, afterScheme.indexOf('@'));
        expect(userinfo.slice(userinfo.indexOf(':') + 1)).toBe('****');
      }),
      { numRuns: 500 },
    );
  });

  it('masks a password that is itself a piece of the mask (fast-check counterexample)', () => {
    const address = {
      protocol: 'amqp',
      hostname: 'a.aa',
      port: 1,
      username: ' ',
      password: '*',
      vhost: '/',
      query: {},
    } as const;
    expect(formatBrokerUrl(address)).toBe('amqp://%20:****@a.aa:1//');
    expect(parseBrokerUrl(formatBrokerUrl(address))).toEqual([{ ...address, password: '****' }]);
  });

  it('a rejected URL never quotes its password', () => {
    // A unique marker password in an otherwise broken URL (bad port / bad escape / bad scheme).
    const marker = fc.stringMatching(/^[A-Za-z0-9]{12}$/).map((s) => `PW${s}`);
    fc.assert(
      fc.property(
        marker,
        fc.constantFrom('amqp://u:%s@h:xx/', 'amqp://u:%s@h/%zz', 'nope://u:%s@h/'),
        (pw, shape) => {
          const url = shape.replace('%s', pw);
          expect(() => parseBrokerUrl(url)).toThrow(ArgumentError);
          try {
            parseBrokerUrl(url);
          } catch (err) {
            expect((err as Error).message).not.toContain(pw);
          }
        },
      ),
    );
  });
});
