/**
 * Helpers that drive the Python peers in `test/interop/peers/` from the interop suites.
 *
 * The peers need Debian's `/usr/bin/python3` with python3-kombu and python3-celery. When
 * they are missing every helper rejects with a descriptive error: interop suites fail loudly
 * instead of skipping.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { BROKER_URL } from '../fixture.js';

/** The Python interpreter that has kombu and celery (another `python3` may be first on PATH). */
export const PYTHON = '/usr/bin/python3';

/** Folder holding the Python peers (`amqp_backend_peer.py`, `celery_app.py`, `celery_client.py`). */
export const PEERS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'peers');

/** Path of the Celery 4.4 AMQPBackend peer script. */
export const AMQP_PEER = join(PEERS_DIR, 'amqp_backend_peer.py');

/** Path of the Celery 5 `rpc://` client peer script. */
export const CELERY_CLIENT = join(PEERS_DIR, 'celery_client.py');

/**
 * The environment of every peer process: the suites' broker (test/fixture.ts) under both
 * names the peers read (`AMQP_URL` for amqp_backend_peer.py, `CELERY_BROKER_URL` for the
 * Celery apps), then `extra`.
 */
export function peerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONUNBUFFERED: '1',
    AMQP_URL: BROKER_URL,
    CELERY_BROKER_URL: BROKER_URL,
    ...extra,
  };
}

/** Outcome of one peer process. */
export interface PeerResult {
  /** Exit code (`null` is reported as -1 when killed by a signal). */
  code: number;
  /** Raw stdout. */
  stdout: string;
  /** Raw stderr. */
  stderr: string;
  /** Every non-empty stdout line parsed as JSON (a line that is not JSON is kept as a string). */
  lines: unknown[];
}

/** Options of {@link runPeer} and {@link runCeleryClient}. */
export interface RunOptions {
  /** Written to the process's stdin, which is then closed. */
  input?: string;
  /** Kill the process and reject after this many ms (default 30 000). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

let pythonCheck: Promise<void> | undefined;

/**
 * Checks once per test process that {@link PYTHON} exists and imports kombu and celery.
 * Rejects with an explanatory error otherwise.
 */
export function assertPythonPeers(): Promise<void> {
  pythonCheck ??= runRaw(
    ['-c', 'import kombu, celery, msgpack, yaml; print(kombu.__version__, celery.__version__)'],
    {
      timeoutMs: 30_000,
    },
  ).then(
    (r) => {
      if (r.code !== 0) {
        throw new Error(
          `${PYTHON} cannot import kombu/celery/msgpack/yaml (exit ${r.code}); install ` +
            `python3-kombu python3-celery python3-msgpack python3-yaml.\n${r.stderr}`,
        );
      }
    },
    (err: unknown) => {
      throw new Error(`cannot run ${PYTHON}: ${String(err)}`);
    },
  );
  return pythonCheck;
}

function parseLines(stdout: string): unknown[] {
  const out: unknown[] = [];
  for (const line of stdout.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    try {
      out.push(JSON.parse(trimmed));
    } catch {
      out.push(trimmed);
    }
  }
  return out;
}

function runRaw(args: string[], opts: RunOptions = {}): Promise<PeerResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      cwd: PEERS_DIR,
      env: peerEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(
        new Error(
          `python ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, lines: parseLines(stdout) });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Runs `amqp_backend_peer.py` with `args` (e.g. `['store', id, 'SUCCESS', '42']`).
 * Resolves with the exit code and the parsed JSON lines whatever the exit code.
 */
export async function runPeer(args: string[], opts: RunOptions = {}): Promise<PeerResult> {
  await assertPythonPeers();
  return runRaw([AMQP_PEER, ...args], opts);
}

/**
 * Runs `celery_client.py` with `args` (e.g. `['send', 'add', '[2,3]', '--queue', q]`).
 */
export async function runCeleryClient(args: string[], opts: RunOptions = {}): Promise<PeerResult> {
  await assertPythonPeers();
  return runRaw([CELERY_CLIENT, ...args], opts);
}

/**
 * Runs another peer script of `test/interop/peers/` (e.g. `rpc_reply_queue.py`) with `args`.
 */
export async function runPeerScript(
  script: string,
  args: string[],
  opts: RunOptions = {},
): Promise<PeerResult> {
  await assertPythonPeers();
  return runRaw([join(PEERS_DIR, script), ...args], opts);
}

/** Options of {@link startCeleryWorker}. */
export interface CeleryWorkerOptions {
  /** Task queue the worker consumes (also exported as CELERY_QUEUE). */
  queue: string;
  /** Thread pool size (default 4). */
  concurrency?: number;
  /** Extra environment (e.g. CELERY_BROKER_URL, CELERY_PREFETCH). */
  env?: Record<string, string>;
  /** Ms to wait for "ready" (default 30 000). */
  readyTimeoutMs?: number;
  /** The tasks module (`-A`), imported from `cwd`. @default 'celery_app' */
  app?: string;
  /** Working directory of the worker. @default {@link PEERS_DIR} */
  cwd?: string;
  /**
   * A script run in place of `python3 -m celery`, taking the same arguments (e.g.
   * {@link CELERY4_LAUNCHER}). @default undefined
   */
  launcher?: string;
}

/** `celery` with Celery 4's `amqp://` result backend put back (see the script's docstring). */
export const CELERY4_LAUNCHER = join(PEERS_DIR, 'celery4_amqp.py');

/** A running Python Celery worker. */
export interface CeleryWorker {
  /** Warm shutdown (SIGTERM), then SIGKILL after 10 s; resolves when the process has exited. */
  stop(): Promise<void>;
  /** Everything the worker has logged so far (stdout and stderr). */
  logs(): string;
  /** The worker's process id. */
  readonly pid: number | undefined;
}

/**
 * Starts a real Celery 5 worker on `celery_app` (or `options.app`) consuming `queue` and
 * resolves once it logs that it is ready. Rejects with its logs if it exits first or is not
 * ready in time.
 */
export async function startCeleryWorker(options: CeleryWorkerOptions): Promise<CeleryWorker> {
  await assertPythonPeers();
  const concurrency = options.concurrency ?? 4;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const nodeName = `peer-${options.queue.replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}@%h`;
  const child = spawn(
    PYTHON,
    [
      ...(options.launcher === undefined ? ['-m', 'celery'] : [options.launcher]),
      '-A',
      options.app ?? 'celery_app',
      'worker',
      '-Q',
      options.queue,
      '-P',
      'threads',
      '-c',
      String(concurrency),
      '-n',
      nodeName,
      '--without-gossip',
      '--without-mingle',
      '--without-heartbeat',
      '-l',
      'info',
    ],
    {
      cwd: options.cwd ?? PEERS_DIR,
      env: peerEnv({ CELERY_QUEUE: options.queue, ...options.env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve();
    });
  });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');

  const worker: CeleryWorker = {
    pid: child.pid,
    logs: () => log,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, 10_000);
      await exitPromise;
      clearTimeout(killTimer);
    },
  };

  await new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const onData = (d: string): void => {
      log += d;
      if (/\bready\.?\s*$/m.test(log)) finish();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => finish(new Error(`celery worker failed to spawn: ${err.message}`)));
    child.on('close', (code, signal) =>
      finish(new Error(`celery worker exited before ready (code ${code}, signal ${signal}):\n${log}`)),
    );
    const timer = setTimeout(() => {
      void worker.stop();
      finish(new Error(`celery worker not ready after ${readyTimeoutMs} ms:\n${log}`));
    }, readyTimeoutMs);
  });
  return worker;
}
