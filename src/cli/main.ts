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
import { DEFAULT_BROKER_URL } from '../transport/url.js';
import { demoCommand } from './demo.js';
import { getCommand } from './get.js';
import { EXIT, processIo, reportError } from './io.js';
import type { CliIo } from './io.js';
import { DEFAULT_RETRIES } from './options.js';
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
  const program = configureProgram(
    new Command('celery-amqp')
      .description("Celery's AMQP result backend from the command line (durations in seconds, as in Celery)")
      .version(packageVersion(), '-V, --version'),
    io,
  );
  for (const make of [storeCommand, getCommand, waitCommand, watchCommand, demoCommand, workerCommand]) {
    const cmd = make(io);
    cmd.exitOverride().configureOutput(program.configureOutput());
    program.addCommand(cmd);
  }
  return program.addHelpText(
    'after',
    `
Reading results: \`get\` leaves the result on the broker (repeatable). \`wait\` and \`watch\`
consume the result messages, as Celery's wait_for and get_many do: afterwards another \`wait\`
times out and \`get\` shows PENDING. \`wait --keep\` polls as \`get\` does and leaves the result.

Broker: --broker, else $CELERY_BROKER_URL, else ${DEFAULT_BROKER_URL}.
Connection failures are retried (--retries, default ${DEFAULT_RETRIES}), each retry announced on
stderr. Durations in seconds. Exit codes: 0 ok, 1 error, 2 usage, 3 timeout, 130 interrupted.`,
  );
}

/**
 * Makes `program` write through `io`, throw instead of exiting, and print commander's own
 * errors as one redacted line. Call before adding subcommands: they copy these settings.
 *
 * @example
 * ```ts
 * const program = configureProgram(new Command('bench'), io);
 * ```
 */
export function configureProgram(program: Command, io: CliIo): Command {
  return program.exitOverride().configureOutput({
    writeOut: (text) => io.stdout.write(text),
    writeErr: (text) => io.stderr.write(text),
    // Commander's own messages ("error: unknown option ...") may echo a --broker value.
    // One line per error, as for every other failure.
    outputError: (text, write) =>
      write(redact(`${program.name()}: ${text.trim().replace(/\s*\n\s*/g, ' ')} (see --help)\n`)),
  });
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
  return runProgram(buildProgram, argv, io);
}

/**
 * Parses `argv` with the program `build` makes and returns the exit code, as {@link main}
 * does (the bench's own command line runs through here too).
 *
 * @example
 * ```ts
 * process.exitCode = await runProgram((io) => configureProgram(new Command('x'), io), argv);
 * ```
 */
export async function runProgram(build: (io: CliIo) => Command, argv: string[], io?: CliIo): Promise<number> {
  const own = io === undefined ? processIo() : undefined;
  const program = build(io ?? (own as CliIo));
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
