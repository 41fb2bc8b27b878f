/**
 * The backends the shared conformance suite runs on: for each, a client (that waits and
 * reads) and a worker (that stores) on one transport, and the request a worker stores with,
 * so one test body covers AMQPBackend and RPCBackend alike.
 *
 * @module
 */
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import type { TaskRequest } from '../../src/celery/backend-types.js';
import type { BaseBackend } from '../../src/celery/base-backend.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import type { RPCBackendOptions } from '../../src/celery/rpc-backend.js';
import { Connection } from '../../src/kombu/connection.js';
import type { Cleanups } from '../fixture.js';
import { uid } from '../fixture.js';

/** Options either backend takes (the shared ones, plus each kind's own). */
export type AnyBackendOptions = AMQPBackendOptions & RPCBackendOptions;

/** A client and a worker backend of one kind. */
export interface BackendPair {
  /** Reads and waits. */
  readonly client: BaseBackend;
  /** Stores (on rpc:// to the client's reply queue). */
  readonly worker: BaseBackend;
  /** The request a worker stores a result for `id` with. */
  request(id: string): TaskRequest;
}

/** One backend class under test. */
export interface BackendKind {
  /** Label shown by `describe.each`. */
  readonly name: 'AMQPBackend' | 'RPCBackend';
  /** A backend of this kind on `url` (for option tests: nothing is declared). */
  make(url: string | Connection, options?: AnyBackendOptions): BaseBackend;
  /**
   * A client and a worker on a fresh Connection to `url`, closed (and their result queues
   * deleted) by `cleanups` after the test. Results are transient and expire after a minute.
   */
  pair(url: string, cleanups: Cleanups, options?: AnyBackendOptions): Promise<BackendPair>;
}

/** Test results: transient, a minute of x-expires, their own exchange. */
function testOptions(options: AnyBackendOptions): AnyBackendOptions {
  return { persistent: false, expires: 60, ...options };
}

const amqp: BackendKind = {
  name: 'AMQPBackend',
  make: (connection, options = {}) => new AMQPBackend({ connection, persistent: false, ...options }),
  pair: async (url, cleanups, options = {}) => {
    const connection = new Connection(url);
    const exchange = uid('conformance-results');
    const opts = { connection, exchange, ...testOptions(options) };
    const client = new AMQPBackend(opts);
    const worker = new AMQPBackend(opts);
    const ids = new Set<string>();
    cleanups.push(async () => {
      await client.close();
      await worker.close();
      const ch = await connection.channel();
      for (const id of ids) await ch.deleteQueue({ queue: id.replaceAll('-', '') }).catch(() => undefined);
      await ch.deleteExchange({ exchange }).catch(() => undefined);
      await connection.close();
    });
    return {
      client,
      worker,
      request: (id) => {
        ids.add(id);
        return { id, correlation_id: id };
      },
    };
  },
};

const rpc: BackendKind = {
  name: 'RPCBackend',
  make: (connection, options = {}) => new RPCBackend({ connection, ...options }),
  pair: async (url, cleanups, options = {}) => {
    const connection = new Connection(url);
    const client = new RPCBackend({ connection, ...testOptions(options) });
    const worker = new RPCBackend({ connection, ...testOptions(options) });
    cleanups.push(async () => {
      await client.close();
      await worker.close();
      await connection.close();
    });
    await client.ensureReplyQueue();
    return { client, worker, request: (id) => ({ id, reply_to: client.oid, correlation_id: id }) };
  },
};

/**
 * Every backend kind of the shared suite.
 *
 * @example
 * ```ts
 * describe.each(backendKinds)('$name', (kind) => { ... });
 * ```
 */
export const backendKinds: readonly BackendKind[] = [amqp, rpc];
