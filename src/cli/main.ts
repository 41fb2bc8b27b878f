/**
 * Entry point of the `celery-amqp` command line. `main` never exits the process and never
 * throws: it returns the exit code, so tests drive it with their own streams and
 * `bin/celery-amqp.js` only sets `process.exitCode`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { redact } from '../errors.js';
import { benchCommand } from './bench.js';
import { demoCommand } from './demo.js';
import { getCommand } from './get.js';
import { EXIT, processIo, reportError } from './io.js';
import type { CliIo } from './io.js';
import { storeCommand } from './store.js';
import { waitCommand } from './wait.js';
import { watchCommand } from './watch.js';
import { workerCommand } from './worker.js';

/** The package version, read once from package.json (two levels up from src/cli and dist/cli). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * Builds the program with every command, writing through `io`.
 *
 * @example
 * ```ts
 * const program = buildProgram(processIo());
 * ```
 */
export function buildProgram(io: CliIo): Command {
  const program = new Command('celery-amqp')
    .description("Celery's AMQP result backend from the command line (durations in seconds, as in Celery)")
    .version(packageVersion(), '-V, --version')
    // Set before adding commands: subcommands copy these settings from their parent.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Commander's own messages ("error: unknown option ...") may echo a --broker value.
      // One line per error, as for every other failure.
      outputError: (text, write) =>
        write(redact(`celery-amqp: ${text.trim().replace(/\s*\n\s*/g, ' ')} (see --help)\n`)),
    });
  for (const make of [storeCommand, getCommand, waitCommand, watchCommand, demoCommand, benchCommand]) {
    const cmd = make(io);
    cmd.exitOverride().configureOutput(program.configureOutput());
    program.addCommand(cmd);
  }
  program.addCommand(workerCommand(io).exitOverride().configureOutput(program.configureOutput()));
  return program;
}

/**
 * Runs the CLI on `argv` (the arguments after the program name) and returns the exit code:
 * 0 success, 1 failure, 2 usage error, 3 timeout. Expected failures print one line on stderr.
 *
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(argv: string[], io?: CliIo): Promise<number> {
  const own = io === undefined ? processIo() : undefined;
  const program = buildProgram(io ?? (own as CliIo));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "fail" with code 0; every other commander error is a usage error
      // whose message commander has already written.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    return reportError(io ?? (own as CliIo), err);
  } finally {
    own?.dispose();
  }
}
