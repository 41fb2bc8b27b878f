/**
 * The getMany memory phase of `bench`, run in a process of its own so that its peak RSS is
 * getMany's and not what the parent's earlier phases (tens of thousands of stores) left in
 * the heap and in malloc's arenas. Reads one JSON {@link GetManyChildInput} on stdin, writes
 * one JSON {@link GetManyChildOutput} line on stdout.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AMQPBackend } from '../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../src/celery/backend-options.js';
import { collectAll } from './backend-runner.js';
import { RssSampler } from './stats.js';

/** What the child is asked to do: plain JSON, so only a broker URL, not a Connection. */
export interface GetManyChildInput {
  /** Backend options with `connection` as a URL string. */
  options: AMQPBackendOptions & { connection: string };
  ids: string[];
  timeoutMs: number;
}

/** What the child reports. */
export interface GetManyChildOutput {
  /** From the getMany call to the last result, ms. */
  ms: number;
  received: number;
  /** Peak RSS of the child while it ran getMany, MB. */
  peakRssMb: number;
}

/**
 * Runs getMany over `input.ids` in a fresh Node process (this module's compiled file) and
 * returns its report; `undefined` when there is no compiled file to run (under a TS test
 * runner), in which case the caller measures in-process.
 *
 * @example
 * ```ts
 * const out = await runGetManyChild({ options: { connection: url }, ids, timeoutMs: 600_000 });
 * ```
 */
export async function runGetManyChild(input: GetManyChildInput): Promise<GetManyChildOutput | undefined> {
  const script = fileURLToPath(import.meta.url);
  if (!script.endsWith('.js') || !existsSync(script)) return undefined;
  const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdin.end(JSON.stringify(input));
  const code = await exited;
  if (code !== 0) throw new Error(`getMany child process exited with ${String(code)}`);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as GetManyChildOutput;
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as GetManyChildInput;
  const rss = new RssSampler();
  const backend = new AMQPBackend(input.options);
  try {
    rss.reset();
    // No verification map: the phase measures what a plain getMany caller holds.
    const collected = await collectAll(backend, input.ids, input.timeoutMs, () => {}, false);
    const out: GetManyChildOutput = { ms: collected.ms, received: collected.received, peakRssMb: rss.peakMb };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    rss.stop();
    await backend.close();
  }
}

// Run as a script (not when imported by the parent).
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`getMany child: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
