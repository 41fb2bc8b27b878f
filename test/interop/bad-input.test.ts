/**
 * Bad messages in a result queue on the real RabbitMQ: the queue is declared by the Python
 * peer exactly as Celery does, and the messages are published raw with our kombu Producer.
 * Reading them must fail with a typed error naming the task and the cause, leave the message
 * where polling found it, and leave the backend (and the process) working.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { AsyncResult } from '../../src/celery/result.js';
import { Connection } from '../../src/kombu/connection.js';
import { Exchange } from '../../src/kombu/exchange.js';
import { Producer } from '../../src/kombu/producer.js';
import { ContentDisallowedError, DecodeError } from '../../src/errors.js';
import type { FieldTable } from '../../src/transport/types.js';
import { BROKER_URL, newTaskId } from '../fixture.js';
import { runPeer } from './python.js';
import type { PeerResult } from './python.js';

const used: string[] = [];
let connection: Connection;
let producer: Producer;
let backend: AMQPBackend;

/** A fresh task id whose queue is deleted after the suite. */
function trackedId(): string {
  const id = newTaskId();
  used.push(id);
  return id;
}

function ok(r: PeerResult): PeerResult {
  if (r.code !== 0) throw new Error(`peer exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function messages(id: string): Promise<number | 'missing'> {
  const line = ok(await runPeer(['inspect-queue', id])).lines[0] as { exists: boolean; messages?: number };
  return line.exists ? (line.messages ?? 0) : 'missing';
}

interface Bad {
  name: string;
  body: (id: string) => Buffer | string;
  contentType: string;
  contentEncoding: string;
  headers?: FieldTable;
  /** The error class expected (DecodeError covers ContentDisallowedError). */
  error: typeof DecodeError;
  /** A fragment of the message naming the cause. */
  cause: RegExp;
}

const CASES: Bad[] = [
  {
    name: 'malformed JSON',
    body: (id) => `{"task_id": "${id}", "status": "SUCC`,
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    error: DecodeError,
    cause: /json|parse|unexpected|unterminated/i,
  },
  {
    name: 'pickle content type',
    // pickle.dumps(1, protocol=4): never decoded, whatever it holds.
    body: () => Buffer.from([0x80, 0x04, 0x4b, 0x01, 0x2e]),
    contentType: 'application/x-python-serialize',
    contentEncoding: 'binary',
    error: ContentDisallowedError,
    cause: /untrusted|pickle|x-python-serialize/i,
  },
  {
    name: 'an unknown compression header',
    body: (id) =>
      JSON.stringify({ task_id: id, status: 'SUCCESS', result: 1, traceback: null, children: null }),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { compression: 'application/x-unheard-of' },
    error: DecodeError,
    cause: /compression|x-unheard-of/i,
  },
  {
    name: 'a body without task_id and status',
    body: () => JSON.stringify({ result: 1 }),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    error: DecodeError,
    cause: /task_id/,
  },
  {
    name: 'a JSON body that is not an object',
    body: () => JSON.stringify(['SUCCESS', 1]),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    error: DecodeError,
    cause: /array|object/,
  },
  {
    name: 'YAML with a python tag',
    body: () => '!!python/object/apply:os.system ["echo pwned"]\n',
    contentType: 'application/x-yaml',
    contentEncoding: 'utf-8',
    error: DecodeError,
    cause: /python|tag|yaml/i,
  },
  {
    name: 'corrupt zlib bytes',
    body: () => Buffer.from('78 9c this is not a deflate stream at all', 'latin1'),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { compression: 'application/x-gzip' },
    error: DecodeError,
    cause: /zlib|inflate|header|compress|incorrect/i,
  },
];

/** Declares the task's queue as Celery does, then publishes the raw bad message into it. */
async function publishBad(id: string, bad: Bad): Promise<void> {
  ok(await runPeer(['declare', id]));
  await producer.publish(bad.body(id), {
    routingKey: id.replace(/-/g, ''),
    contentType: bad.contentType,
    contentEncoding: bad.contentEncoding,
    headers: bad.headers ?? {},
    deliveryMode: 2,
  });
}

beforeAll(async () => {
  connection = new Connection(BROKER_URL);
  await connection.connect();
  producer = new Producer(connection, {
    exchange: new Exchange('celeryresults', { type: 'direct', durable: true }),
    autoDeclare: false,
  });
  // YAML is accepted so that the python-tag case reaches the safe loader instead of being
  // refused for its content type.
  backend = new AMQPBackend({ connection: BROKER_URL, accept: ['json', 'yaml'] });
});

afterAll(async () => {
  await backend.close();
  await connection.close();
  for (let i = 0; i < used.length; i += 200) await runPeer(['delete-queue', ...used.slice(i, i + 200)]);
}, 60_000);

describe('bad result messages', () => {
  for (const bad of CASES) {
    it(`${bad.name}: getTaskMeta rejects with a typed error and the message stays queued`, async () => {
      const id = trackedId();
      await publishBad(id, bad);
      const err = await backend.getTaskMeta(id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(bad.error);
      const message = (err as Error).message;
      expect(message).toContain(id);
      expect(message).toMatch(bad.cause);
      // Polling never acks what it could not read: the message is still there to inspect.
      expect(await messages(id)).toBe(1);
      // A second poll sees the same bad message and fails the same way (no silent PENDING).
      await expect(backend.getTaskMeta(id)).rejects.toBeInstanceOf(bad.error);
    });

    it(`${bad.name}: waitFor and AsyncResult.get reject with a typed error`, async () => {
      const id = trackedId();
      await publishBad(id, bad);
      const err = await new AsyncResult(id, backend).get({ timeout: 10_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(bad.error);
      expect((err as Error).message).toContain(id);
      expect((err as Error).message).toMatch(bad.cause);
    });
  }

  it('after every kind of bad message the backend still stores and reads', async () => {
    const id = trackedId();
    await backend.storeResult(id, { fine: true }, 'SUCCESS');
    expect(await backend.getTaskMeta(id)).toMatchObject({
      task_id: id,
      status: 'SUCCESS',
      result: { fine: true },
    });
    expect(await new AsyncResult(id, backend).get({ timeout: 10_000 })).toEqual({ fine: true });
  });

  it('a bad message behind a good one for the same task still fails the poll, naming the task', async () => {
    const id = trackedId();
    await backend.storeResult(id, 'ok', 'STARTED');
    const bad = CASES[0] as Bad;
    await publishBad(id, bad);
    const err = await backend.getTaskMeta(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as Error).message).toContain(id);
    // A failed poll loses nothing: the good state and the bad message are both still queued.
    expect(await messages(id)).toBe(2);
  });
});
