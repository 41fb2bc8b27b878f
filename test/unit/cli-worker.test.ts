/**
 * `celery-amqp worker` in process on memory://: the tasks module, settings from the module
 * and the environment, Celery-style log lines, signals and exit codes, --help.
 */
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { loadTaskModule, resolveModuleSettings } from '../../src/celery/worker/task-module.js';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { celeryLogger, expandNodeName, workerCommand } from '../../src/cli/worker.js';
import type { SignalSource } from '../../src/cli/worker.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { dropQueue, send } from '../worker-fixture.js';

const TASKS = fileURLToPath(new URL('./fixtures/worker-tasks.mjs', import.meta.url));

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

function io(env: Record<string, string> = {}): CliIo & { out: Sink; err: Sink } {
  const out = new Sink();
  const err = new Sink();
  return { stdout: out, stderr: err, env, isTTY: { stdout: false, stderr: false }, out, err };
}

/** Runs `worker ...args` in process with fake signals; resolves with the exit code when it ends. */
function runWorker(args: string[], cli: CliIo, signals: SignalSource) {
  const cmd = workerCommand(cli, signals).exitOverride();
  return cmd.parseAsync(args, { from: 'user' }).then(
    () => 0,
    (err: unknown) => (err as { exitCode?: number }).exitCode ?? -1,
  );
}

describe('celery-amqp worker', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('loads named exports as <module>.<name>, a definition under its name, the default object as is', async () => {
    const mod = await loadTaskModule(TASKS);
    expect(Object.keys(mod.tasks).sort()).toEqual(['custom.slow', 'proj.echo', 'worker-tasks.add']);
    expect(mod.name).toBe('worker-tasks');
    expect(mod.settings).toMatchObject({ worker_concurrency: 3 });
  });

  it('CELERY_<NAME> variables override the module settings, typed as the setting', () => {
    const s = resolveModuleSettings(
      { worker_concurrency: 3, task_acks_late: true, timezone: 'UTC' },
      {
        CELERY_WORKER_CONCURRENCY: '8',
        CELERY_TASK_ACKS_LATE: 'false',
        CELERY_TASK_CREATE_MISSING_QUEUE_TYPE: 'quorum',
        CELERY_TASK_TIME_LIMIT: 'None',
        CELERY_ACCEPT_CONTENT: 'json, msgpack',
        CELERY_BROKER_URL: 'memory://x',
        CELERY_QUEUE: 'not a setting',
      },
    );
    expect(s.worker).toEqual({
      worker_concurrency: 8,
      task_acks_late: false,
      task_time_limit: null,
    });
    // A queue declaration setting: the app's, as in Celery.
    expect(s.app).toEqual({ accept_content: ['json', 'msgpack'], task_create_missing_queue_type: 'quorum' });
    expect(s.brokerUrl).toBe('memory://x');
    expect(s.unused).toEqual(['timezone']);
    expect(() => resolveModuleSettings({}, { CELERY_WORKER_CONCURRENCY: 'many' })).toThrow(
      /CELERY_WORKER_CONCURRENCY/,
    );
  });

  it('names inherited Object members (constructor, toString, __proto__) in a settings module as unused, not as settings', () => {
    const settings = JSON.parse(
      '{"__proto__": {"x": 1}, "constructor": 2, "toString": 3, "worker_concurrency": 4}',
    );
    const s = resolveModuleSettings(settings, {});
    expect(s.worker).toEqual({ worker_concurrency: 4 });
    expect(Object.getPrototypeOf(s.worker)).toBe(Object.prototype);
    expect(s.app).toEqual({});
    expect(s.unused.sort()).toEqual(['__proto__', 'constructor', 'toString']);
  });

  it('joins info lines of several turns into one stderr write; a warning writes them and itself at once', async () => {
    const writes: string[] = [];
    const err = new Writable({
      write(chunk: Buffer, _enc, cb) {
        writes.push(chunk.toString());
        cb();
      },
    });
    const logger = celeryLogger({ ...io(), stderr: err }, 'info');
    logger.debug('not at info');
    logger.info('Task a[1] received');
    await new Promise((r) => setImmediate(r));
    logger.info('Task a[1] succeeded in 0.001s: 2');
    expect(writes).toEqual([]);
    await waitUntil(() => writes.length > 0, { what: 'the flush' });
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(
      /INFO\/MainProcess\] Task a\[1\] received\n.*INFO\/MainProcess\] Task a\[1\] succeeded/,
    );
    logger.info('Task a[2] received');
    logger.warn('Soft time limit (1s) exceeded for a[2]');
    expect(writes).toHaveLength(2);
    expect(writes[1]).toMatch(/received\n.*WARNING\/MainProcess\] Soft time limit/);
  });

  it('expands %h, %n and %d in the node name', () => {
    expect(expandNodeName('w1@%h', 'box.example.com')).toBe('w1@box.example.com');
    expect(expandNodeName('%n-worker@%d', 'box.example.com')).toBe('box-worker@example.com');
  });

  it('serves the module on the queues given, logging Celery lines; SIGTERM: warm shutdown, exit 0', async () => {
    const queue = uid('cliq');
    cleanups.push(() => dropQueue('memory://', queue));
    const cli = io({ CELERY_WORKER_CONCURRENCY: '2' });
    const signals = new EventEmitter();
    const done = runWorker(
      ['-A', TASKS, '-b', 'memory://', '-Q', queue, '-l', 'info', '-n', 'cli1@%h'],
      cli,
      signals,
    );
    await waitUntil(() => cli.err.text.includes('ready.'), { what: 'ready' });
    expect(cli.out.text).toContain('[tasks]');
    expect(cli.out.text).toContain('  . worker-tasks.add');
    expect(cli.out.text).toContain(`.> ${queue}`);
    expect(cli.out.text).toContain('concurrency: 2');
    const client = new Celery({ broker: 'memory://', settings: { task_default_queue: queue } });
    cleanups.push(() => client.close());
    const r = await send(client, 'worker-tasks.add', [2, 3]);
    expect(await r.get()).toBe(5);
    await waitUntil(() => cli.err.text.includes('succeeded in'));
    expect(cli.err.text).toMatch(
      new RegExp(`\\[[-0-9 :,]+: INFO/MainProcess\\] Task worker-tasks\\.add\\[${r.id}\\] received`),
    );
    expect(cli.err.text).toMatch(
      new RegExp(`Task worker-tasks\\.add\\[${r.id}\\] succeeded in \\d+(\\.\\d+)?(e-\\d+)?s: 5`),
    );
    signals.emit('SIGTERM');
    expect(await done).toBe(0);
    expect(cli.err.text).toContain('worker: Warm shutdown (MainProcess)');
  });

  it('--max-depth and the other limit flags bound the task messages (rejected, logged, still serving)', async () => {
    const queue = uid('cliq');
    cleanups.push(() => dropQueue('memory://', queue));
    const cli = io();
    const signals = new EventEmitter();
    const done = runWorker(
      [
        '-A',
        TASKS,
        '-b',
        'memory://',
        '-Q',
        queue,
        '-l',
        'info',
        '--max-depth',
        '3',
        '--max-pickle-memo',
        '10',
      ],
      cli,
      signals,
    );
    await waitUntil(() => cli.err.text.includes('ready.'), { what: 'ready' });
    const client = new Celery({ broker: 'memory://', settings: { task_default_queue: queue } });
    cleanups.push(() => client.close());
    // [args, kwargs, embed] and args are two levels: a list argument makes three, a nested one four.
    const deep = await send(client, 'worker-tasks.add', [[[1]], 2]);
    await waitUntil(() => cli.err.text.includes('Received invalid task message'), { what: 'the rejection' });
    expect(cli.err.text).toMatch(new RegExp(`task ${deep.id}: .*limit maxDepth = 3`));
    expect(await (await send(client, 'worker-tasks.add', [2, 3])).get()).toBe(5);
    signals.emit('SIGTERM');
    expect(await done).toBe(0);
  });

  it('SIGTERM twice: cold, exit 1; SIGQUIT: cold, exit 1; SIGINT: exit 1', async () => {
    for (const sequence of [['SIGTERM', 'SIGTERM'], ['SIGQUIT'], ['SIGINT']] as const) {
      const queue = uid('cliq');
      cleanups.push(() => dropQueue('memory://', queue));
      const cli = io();
      const signals = new EventEmitter();
      const done = runWorker(['-A', TASKS, '-b', 'memory://', '-Q', queue, '-l', 'info'], cli, signals);
      await waitUntil(() => cli.err.text.includes('ready.'));
      for (const s of sequence) signals.emit(s);
      expect(await done, sequence.join(' ')).toBe(1);
      expect(cli.err.text).toContain(
        sequence.length === 2 || sequence[0] === 'SIGQUIT' ? 'Cold shutdown' : 'Warm shutdown',
      );
    }
  });

  it('a module that cannot be loaded is a usage error (exit 2, one line)', async () => {
    const cli = io();
    const code = await main(['worker', '-A', './no/such/tasks.js', '-b', 'memory://'], cli);
    expect(code).toBe(2);
    expect(cli.err.text.trim().split('\n')).toHaveLength(1);
    expect(cli.err.text).toContain("Invalid value for '-A' / '--app'");
  });

  it('--help describes the options, as celery worker --help does', async () => {
    const cli = io();
    expect(await main(['worker', '--help'], cli)).toBe(0);
    for (const flag of [
      '-A, --app',
      '-Q, --queues',
      '-c, --concurrency',
      '-E, --task-events',
      '-n, --hostname',
      '-l, --loglevel',
      '--broker',
      '--time-limit',
      '--soft-time-limit',
      '--prefetch-multiplier',
      '--without-heartbeat',
      '--max-depth',
      '--max-decoded-bytes',
      '--max-pickle-memo',
    ]) {
      expect(cli.out.text).toContain(flag);
    }
    expect(await main(['worker'], io())).toBe(2);
  });
});
