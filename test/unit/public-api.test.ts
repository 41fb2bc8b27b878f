/**
 * The package's public surface: what a user imports from 'celery-amqp-backend' (the main
 * entry) and from 'celery-amqp-backend/transport' (the layer under kombu). The export lists
 * are read from the entry modules' source too, so type-only exports are checked as well.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';
import * as transport from '../../src/transport/index.js';
import { newTaskId } from '../fixture.js';

/** One name of an `export { ... } from '...'` clause, with the module it comes from (a URL). */
interface ExportClause {
  name: string;
  exportedAs: string;
  from: string;
}

/** Every `export { ... }` / `export type { ... }` clause of a module, name by name. */
function exportClauses(file: string): ExportClause[] {
  const url = new URL(file, import.meta.url);
  const text = readFileSync(url, 'utf8');
  const out: ExportClause[] = [];
  for (const match of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
    const from = new URL(match[2]!, url).href;
    for (const item of match[1]!.split(',')) {
      const parts = item.trim().split(/\s+as\s+/);
      if (parts[0] === '') continue;
      out.push({ name: parts[0]!, exportedAs: parts[1] ?? parts[0]!, from });
    }
  }
  return out;
}

const MAIN = exportClauses('../../src/index.ts');
const TRANSPORT = exportClauses('../../src/transport/index.ts');

describe('main entry point', () => {
  it('exports the backends, the app, the worker, results, kombu entities and errors', () => {
    for (const name of [
      'Connection',
      'Channel',
      'Exchange',
      'Queue',
      'NoCacheQueue',
      'Binding',
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
      'BacklogLimitExceeded',
      'TaskError',
      'CeleryAmqpError',
      'TimeoutError',
      'ContentDisallowedError',
      'MessageStateError',
      'registerSerializer',
      'registerCompression',
    ]) {
      expect(typeof (api as Record<string, unknown>)[name], name).toBe('function');
    }
    // The loggers the `logger` options take (silentLogger quiets a Worker's task lines).
    expect(typeof api.silentLogger.info).toBe('function');
    expect(typeof api.consoleLogger.error).toBe('function');
    expect(api.SUCCESS).toBe('SUCCESS');
    expect(api.READY_STATES.has(api.FAILURE)).toBe(true);
  });

  it('exports the option, settings and result types users write down', () => {
    const names = new Set(MAIN.map((e) => e.exportedAs));
    for (const name of [
      'AMQPBackendOptions',
      'RPCBackendOptions',
      'CeleryOptions',
      'CelerySettings',
      'SendTaskOptions',
      'WorkerOptions',
      'TaskHandler',
      'TaskContext',
      'TaskMessage',
      'TaskMeta',
      'WaitOptions',
      'WaitForOptions',
      'ResultWaitOptions',
      'ReadOptions',
      'GetOptions',
      'DecodeOptions',
      'ErrorCode',
      'State',
      'FieldTable',
      'MessageProperties',
      'TlsOptions',
      'Logger',
    ]) {
      expect(names.has(name), name).toBe(true);
    }
  });

  it('does not export the transport layer or internals', () => {
    const names = new Set(MAIN.map((e) => e.exportedAs));
    for (const name of [
      'Transport',
      'TransportChannel',
      'TransportConnection',
      'Delivery',
      'MemoryBroker',
      'resolveBroker',
      'transportFor',
      'parseBrokerUrl',
      'ResultCache',
      'encodeTaskMessage',
      'decodeTaskMessage',
      'taskTimes',
      'parseIsoDate',
    ]) {
      expect(names.has(name), name).toBe(false);
      expect((api as Record<string, unknown>)[name], name).toBeUndefined();
    }
  });

  it('round-trips a result through the embedded broker using only public names', async () => {
    const backend = new api.AMQPBackend({ connection: 'memory://' });
    try {
      const id = newTaskId();
      await backend.storeResult(id, { answer: 42 }, api.SUCCESS);
      await expect(new api.AsyncResult(id, backend).get({ timeout: 5_000 })).resolves.toEqual({ answer: 42 });
    } finally {
      await backend.close();
    }
  });
});

describe('transport entry point', () => {
  it('exports the Transport interface, the embedded broker and the URL helpers', () => {
    const names = new Set(TRANSPORT.map((e) => e.exportedAs));
    for (const name of [
      'Transport',
      'TransportChannel',
      'TransportConnection',
      'Delivery',
      'TransportFactory',
    ]) {
      expect(names.has(name), name).toBe(true);
    }
    for (const name of [
      'MemoryBroker',
      'resolveBroker',
      'transportFor',
      'parseBrokerUrl',
      'formatBrokerUrl',
      'resolveBrokerUrl',
      'registerTransport',
    ]) {
      expect(typeof (transport as Record<string, unknown>)[name], name).toBe('function');
    }
    expect(transport.parseBrokerUrl('amqp://u:p@h:5673/v')[0]).toMatchObject({ hostname: 'h', port: 5673 });
  });
});

describe('both entry points', () => {
  it('export every name under its own name, once', () => {
    for (const [entry, clauses] of [
      ['src/index.ts', MAIN],
      ['src/transport/index.ts', TRANSPORT],
    ] as const) {
      expect(
        clauses.filter((e) => e.name !== e.exportedAs).map((e) => `${e.name} as ${e.exportedAs}`),
        entry,
      ).toEqual([]);
      const seen = clauses.map((e) => e.exportedAs);
      expect(
        seen.filter((n, i) => seen.indexOf(n) !== i),
        entry,
      ).toEqual([]);
    }
  });

  it('a name both export is one declaration (kombu and the transport had two ChannelOptions)', () => {
    const transportFrom = new Map(TRANSPORT.map((e) => [e.exportedAs, e.from]));
    const clashes = MAIN.filter(
      (e) => transportFrom.has(e.exportedAs) && transportFrom.get(e.exportedAs) !== e.from,
    );
    expect(clashes.map((e) => e.exportedAs)).toEqual([]);
  });
});
