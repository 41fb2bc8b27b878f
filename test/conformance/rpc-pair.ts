/**
 * A client and a worker RPCBackend on one fresh Connection, the client's reply queue
 * declared: the shape of every rpc:// store-and-receive test.
 *
 * @module
 */
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { Connection } from '../../src/kombu/connection.js';

/**
 * Opens the pair and registers their closing (backends first, then the connection) on
 * `cleanup`, which the caller runs newest first after the test.
 *
 * @example
 * ```ts
 * const { client, worker } = await rpcPair(t.url, cleanup);
 * ```
 */
export async function rpcPair(
  url: string,
  cleanup: Array<() => Promise<unknown>>,
): Promise<{ client: RPCBackend; worker: RPCBackend }> {
  const conn = new Connection(url);
  cleanup.push(() => conn.close());
  const client = new RPCBackend({ connection: conn });
  const worker = new RPCBackend({ connection: conn });
  cleanup.push(() => client.close());
  cleanup.push(() => worker.close());
  await client.ensureReplyQueue();
  return { client, worker };
}
