import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';

// The package's public surface: a user imports these names from 'celery-amqp-backend'.
describe('public API', () => {
  it('exports the seed classes and the backends', () => {
    for (const name of [
      'Connection',
      'Exchange',
      'Queue',
      'NoCacheQueue',
      'Producer',
      'Consumer',
      'Message',
      'AMQPBackend',
      'RPCBackend',
      'AsyncResult',
      'GroupResult',
      'ResultSet',
      'Celery',
      'Worker',
      'taskTimes',
      'parseIsoDate',
      'BacklogLimitExceeded',
      'TimeoutError',
      'ContentDisallowedError',
      'MessageStateError',
    ]) {
      expect(typeof (api as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('round-trips a result through the embedded broker using only public names', async () => {
    const backend = new api.AMQPBackend({ connection: 'memory://' });
    try {
      const id = crypto.randomUUID();
      await backend.storeResult(id, { answer: 42 }, api.SUCCESS);
      await expect(new api.AsyncResult(id, backend).get({ timeout: 5_000 })).resolves.toEqual({ answer: 42 });
    } finally {
      await backend.close();
    }
  });
});
