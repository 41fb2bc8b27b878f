/**
 * Vitest's global setup for the suites that need RabbitMQ or the Python peers (every project
 * but 'unit', see vitest.config.ts): makes `npm test` alone pass on a fresh machine of this
 * kind. See test/setup/environment.ts for what it decides and why.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { BROKER_URL } from '../fixture.js';
import { PYTHON } from '../interop/python.js';
import { PYTHON_MODULES, prepareEnvironment } from './environment.js';
import type { EnvironmentDeps } from './environment.js';

const execFileP = promisify(execFile);

/** Host and port of an amqp:// URL (the first of a failover list). */
function brokerAddress(url: string): { host: string; port: number } {
  const parsed = new URL(url.split(';')[0]!.replace(/^amqps?:/, 'http:'));
  return { host: parsed.hostname || 'localhost', port: Number(parsed.port || 5672) };
}

/** Whether a TCP connection to host:port opens within 2 s. */
function tcpAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function succeeds(command: string, args: string[]): Promise<boolean> {
  return execFileP(command, args, { timeout: 60_000 }).then(
    () => true,
    () => false,
  );
}

async function onPath(command: string): Promise<boolean> {
  for (const dir of (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (dir === '') continue;
    if (
      await access(`${dir}/${command}`).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}

/** The real probes and commands. */
export function realDeps(): EnvironmentDeps {
  const { host, port } = brokerAddress(BROKER_URL === 'off' ? 'amqp://localhost' : BROKER_URL);
  const pythonPeers = (): Promise<boolean> => succeeds(PYTHON, ['-c', `import ${PYTHON_MODULES.join(', ')}`]);
  const brokerAnswers = (): Promise<boolean> => tcpAnswers(host, port);
  return {
    async probe() {
      const brokerOff = BROKER_URL === 'off';
      const brokerLocal = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host);
      const answers = !brokerOff && (await brokerAnswers());
      return {
        brokerAnswers: answers,
        brokerLocal,
        brokerOff,
        nodeRunning: !brokerOff && !answers && brokerLocal && (await succeeds('rabbitmqctl', ['-q', 'ping'])),
        rabbitmqInstalled: await onPath('rabbitmq-server'),
        pythonPeers: await pythonPeers(),
        mayInstall: process.getuid?.() === 0 && (await onPath('apt-get')),
      };
    },
    pythonPeers,
    brokerAnswers,
    async run(command, args, env) {
      try {
        const { stdout } = await execFileP(command, args, {
          env: { ...process.env, ...env },
          timeout: 600_000,
          maxBuffer: 64 * 1024 * 1024,
        });
        return stdout;
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, {
          cause: err,
        });
      }
    },
    sleep: (ms) => sleep(ms),
    log: (line) => process.stderr.write(`test setup: ${line}\n`),
    // Only CI (.ci/run sets CI) may reset a broker full of leftovers.
    allowReset: process.env['CI'] !== undefined && process.env['CI'] !== '' && process.env['CI'] !== 'false',
  };
}

/** Vitest calls this once per project that has test files to run, before any of them. */
export async function setup(): Promise<void> {
  await prepareEnvironment(realDeps());
}
