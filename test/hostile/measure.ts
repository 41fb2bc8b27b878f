/**
 * Runs a command as a child process and measures it from outside: exit code, wall time and
 * peak resident memory (GNU time's maximum RSS when /usr/bin/time is installed, else the
 * child's VmHWM from /proc, polled).
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What {@link runMeasured} reports. */
export interface Measured {
  /** Exit code (null when killed by a signal). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit, ms. */
  readonly ms: number;
  /** Peak resident set size of the child, bytes. */
  readonly peakRss: number;
  /** How the peak was read. */
  readonly rssSource: 'gnu-time' | 'proc-vmhwm';
}

const GNU_TIME = '/usr/bin/time';

/** VmHWM (peak RSS) of a process in bytes, or 0 once it is gone. */
async function vmHwm(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/**
 * Runs `command args` and measures it; the child is killed after `killAfterMs`.
 *
 * @example
 * ```ts
 * const r = await runMeasured(process.execPath, [launcher, 'get', id]);
 * r.peakRss < 300 * 1024 * 1024;
 * ```
 */
export async function runMeasured(
  command: string,
  args: readonly string[],
  options: { killAfterMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Measured> {
  const useTime = existsSync(GNU_TIME);
  const dir = useTime ? await mkdtemp(join(tmpdir(), 'measure-')) : '';
  const timeFile = join(dir, 'time.txt');
  const [cmd, argv] = useTime
    ? [GNU_TIME, ['-o', timeFile, '-f', '%M', command, ...args]]
    : [command, [...args]];
  const started = performance.now();
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let polled = 0;
  const poll = useTime
    ? undefined
    : setInterval(() => {
        if (child.pid !== undefined) void vmHwm(child.pid).then((v) => (polled = Math.max(polled, v)));
      }, 10);
  const killer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const ms = performance.now() - started;
  clearTimeout(killer);
  if (poll !== undefined) clearInterval(poll);
  let peakRss = polled;
  if (useTime) {
    const text = await readFile(timeFile, 'utf8').catch(() => '');
    peakRss = Number(text.trim().split('\n').pop() ?? '0') * 1024;
    await rm(dir, { recursive: true, force: true });
  }
  return { code, stdout, stderr, ms, peakRss, rssSource: useTime ? 'gnu-time' : 'proc-vmhwm' };
}
