/**
 * `celery-amqp worker` as a child process on RabbitMQ, stopped the way an operator or a
 * process manager stops a Celery worker: SIGTERM during 50 running tasks lets all 50 finish
 * and store their results, gives the held eta tasks back to the queue, exits 0, and loses
 * nothing; a second SIGTERM is cold: what is still running goes back to the queue, exit 1.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { Connection } from '../../src/kombu/connection.js';
import { BROKER_URL, cleanupStack, uid, waitUntil } from '../fixture.js';
import { dropQueue, send } from '../worker-fixture.js';
import { buildCli } from './cli-build.js';
import type { CliBuild } from './cli-build.js';

let build: CliBuild;
let tasksModule: string;

beforeAll(async () => {
  build = await buildCli();
  tasksModule = join(build.dir, 'tasks.mjs');
  await writeFile(
    tasksModule,
    [
      'export function sleep([ms, tag]) {',
      '  return new Promise((resolve) => setTimeout(() => resolve(tag), Number(ms)));',
      '}',
      '',
    ].join('\n'),
  );
}, 60_000);

afterAll(() => build?.remove());

/** A running `celery-amqp worker` child; its stderr collected. */
interface Child {
  readonly process: ChildProcess;
  readonly stderr: () => string;
  readonly exit: Promise<number | null>;
}

function startCli(queue: string, ...extra: string[]): Child {
  const child = spawn(
    process.execPath,
    [
      build.launcher,
      'worker',
      '-A',
      tasksModule,
      '-Q',
      queue,
      '-l',
      'info',
      '--broker',
      BROKER_URL,
      '-n',
      `${uid('cli')}@%h`,
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout?.resume();
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { process: child, stderr: () => stderr, exit };
}

/** Messages ready in a queue (unacked ones are not counted). */
async function ready(queue: string): Promise<number | undefined> {
  const conn = new Connection(BROKER_URL);
  try {
    const ch = await conn.channel();
    return (await ch.declareQueue({ queue: queue, passive: true }))?.messageCount;
  } finally {
    await conn.close();
  }
}

const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern, 'g'))?.length ?? 0;

describe('celery-amqp worker, a child process stopped by signals (RabbitMQ)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('SIGTERM during 50 running tasks: all 50 finish and are stored, held eta tasks go back, exit 0', async () => {
    const queue = uid('cli-term');
    cleanups.push(() => dropQueue(BROKER_URL, queue));
    const child = startCli(queue, '-c', '60');
    cleanups.push(() => child.process.kill('SIGKILL'));
    await waitUntil(() => child.stderr().includes('ready.'), { timeout: 30_000, what: 'the worker ready' });
    const client = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
    cleanups.push(() => client.close());
    const running = await Promise.all(
      Array.from({ length: 50 }, (_, i) => send(client, 'tasks.sleep', [1500, i])),
    );
    const held = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        send(client, 'tasks.sleep', [0, `eta${i}`], {}, { countdown: 120 }),
      ),
    );
    await waitUntil(() => count(child.stderr(), /Task tasks\.sleep\[[^\]]+\] received/) === 55, {
      timeout: 20_000,
      what: '55 tasks received',
    });
    child.process.kill('SIGTERM');
    expect(await child.exit).toBe(0);
    expect(child.stderr()).toContain('worker: Warm shutdown (MainProcess)');
    expect(await Promise.all(running.map((r) => r.get(20_000)))).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
    expect(count(child.stderr(), /succeeded in/)).toBe(50);
    // The eta tasks are back in the queue, unstarted: nothing lost.
    expect(await ready(queue)).toBe(held.length);
  });

  it('a second SIGTERM is cold: the tasks still running go back to the queue, exit 1', async () => {
    const queue = uid('cli-cold');
    cleanups.push(() => dropQueue(BROKER_URL, queue));
    const child = startCli(queue, '-c', '10');
    cleanups.push(() => child.process.kill('SIGKILL'));
    await waitUntil(() => child.stderr().includes('ready.'), { timeout: 30_000, what: 'the worker ready' });
    const client = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
    cleanups.push(() => client.close());
    await Promise.all(Array.from({ length: 10 }, (_, i) => send(client, 'tasks.sleep', [60_000, i])));
    await waitUntil(() => count(child.stderr(), /received/) === 10, {
      timeout: 20_000,
      what: '10 tasks received',
    });
    child.process.kill('SIGTERM');
    await waitUntil(() => child.stderr().includes('Warm shutdown'));
    child.process.kill('SIGTERM');
    expect(await child.exit).toBe(1);
    expect(child.stderr()).toContain('worker: Cold shutdown (MainProcess)');
    await waitUntil(async () => (await ready(queue)) === 10, { what: 'the 10 tasks back in the queue' });
  });
});
