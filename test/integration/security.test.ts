/**
 * Bad connection input: each failure is a typed error that never contains the password.
 */
import { describe, expect, it } from 'vitest';
import { ArgumentError, ConnectionError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { brokerUrlWith } from '../fixture.js';
import { vhostUrl } from '../rabbitmq-admin.js';

const SECRET = 's3cr3t-Pa55';

async function failure(url: string): Promise<unknown> {
  const conn = new Connection(url, { heartbeat: 0, connectTimeout: 3000, autoReconnect: false });
  try {
    await conn.connect();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await conn.close();
  }
}

function expectNoSecret(err: unknown): void {
  const e = err as Error & { cause?: unknown };
  const text = `${e.message}\n${String(e.stack)}\n${JSON.stringify(e)}\n${String((e.cause as Error | undefined)?.message)}`;
  expect(text).not.toContain(SECRET);
}

describe('connection failures are typed and redacted', () => {
  it('wrong credentials: ACCESS_REFUSED, not recoverable', async () => {
    const err = await failure(brokerUrlWith((u) => (u.password = SECRET)));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'ACCESS_REFUSED', recoverable: false });
    expectNoSecret(err);
  });

  it('unknown vhost: NOT_ALLOWED, not recoverable', async () => {
    const err = await failure(vhostUrl(`no-such-vhost-${SECRET}x`));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ recoverable: false });
    expect(['NOT_ALLOWED', 'ACCESS_REFUSED']).toContain((err as ConnectionError).code);
  });

  it('refused connection: CONNECTION_REFUSED', async () => {
    const err = await failure(
      brokerUrlWith((u) => {
        u.password = SECRET;
        u.port = '1';
      }),
    );
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'CONNECTION_REFUSED' });
    expectNoSecret(err);
  });

  it('a bad URL: ArgumentError INVALID_URL at construction, password absent', () => {
    let caught: unknown;
    try {
      new Connection(`ftp://guest:${SECRET}@127.0.0.1:5672//`); // never reaches the network
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ArgumentError);
    expect(caught).toMatchObject({ code: 'INVALID_URL' });
    expectNoSecret(caught);
  });
});
