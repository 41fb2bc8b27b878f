/**
 * Python peers that run alongside a test: the `celery` command (`inspect`, `control`) and
 * the event monitor, with their stdout JSON lines readable while they run.
 */
import { spawn } from 'node:child_process';
import { PEERS_DIR, PYTHON, assertPythonPeers, peerEnv } from './python.js';
import type { PeerResult } from './python.js';

/** A Python process started by {@link spawnPython}. */
export interface PythonProcess {
  /** stdout lines so far, each parsed as JSON when it is JSON. */
  readonly lines: unknown[];
  /** Resolves with the first line `match` accepts (rejects after `timeoutMs` or when the process ends). */
  until(match: (line: unknown) => boolean, timeoutMs?: number): Promise<unknown>;
  /** Settles when the process exits. */
  readonly done: Promise<PeerResult>;
}

/** Starts `/usr/bin/python3 args...` in the peers folder; killed after `timeoutMs`. */
export async function spawnPython(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<PythonProcess> {
  await assertPythonPeers();
  const child = spawn(PYTHON, args, {
    cwd: PEERS_DIR,
    env: peerEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: unknown[] = [];
  const waiters = new Set<() => void>();
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const raw of parts) {
      const line = raw.trim();
      if (line === '') continue;
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push(line);
      }
    }
    for (const w of waiters) w();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<PeerResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      for (const w of waiters) w();
      resolve({ code: code ?? -1, stdout, stderr, lines });
    });
  });
  let exited = false;
  void done.then(() => (exited = true));
  return {
    lines,
    done,
    until: (match, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = lines.find(match);
          if (found !== undefined) {
            cleanup();
            resolve(found);
          } else if (exited) {
            cleanup();
            reject(new Error(`python ${args.join(' ')} ended first:\n${stdout}\n${stderr}`));
          }
        };
        const t = setTimeout(() => {
          cleanup();
          reject(
            new Error(`python ${args.join(' ')}: no such line in ${timeoutMs} ms:\n${stdout}\n${stderr}`),
          );
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(t);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}

/** Runs the `celery` command of python3-celery on the peers' `celery_app` (`-A celery_app ...`). */
export async function celery(args: string[], env: Record<string, string> = {}): Promise<PeerResult> {
  const p = await spawnPython(['-m', 'celery', '-A', 'celery_app', ...args], { env, timeoutMs: 60_000 });
  return p.done;
}

/**
 * The replies a `celery inspect|control ... --json` run printed, as one object by node name
 * (`inspect` prints one object, `control` a list of one-node objects), or undefined.
 */
export function jsonReply(result: PeerResult): Record<string, unknown> | undefined {
  for (const line of result.lines) {
    if (Array.isArray(line))
      return Object.assign({}, ...line.filter((x) => typeof x === 'object' && x !== null));
    if (typeof line === 'object' && line !== null) return line as Record<string, unknown>;
  }
  return undefined;
}
