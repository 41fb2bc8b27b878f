/**
 * `celery-amqp worker -A ./tasks.js -Q math,default -c 8 -E -n node1@%h --loglevel info`:
 * serves Celery queues with the handlers of a JS module, as `celery worker` does for a
 * Python one: Celery-style log lines, remote control, events with `-E`, and Celery's
 * signals (SIGTERM/SIGINT: warm shutdown, again: cold; SIGQUIT: cold) and exit codes
 * (0 after a warm SIGTERM or a remote shutdown, 1 after a cold one, SIGINT or an error,
 * 2 for a usage error such as a module that cannot be loaded).
 *
 * @module
 */
import { hostname as osHostname } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Celery } from '../celery/app.js';
import { Worker } from '../celery/worker.js';
import type { LogLevel, WorkerOptions } from '../celery/worker.js';
import { loadTaskModule, resolveModuleSettings } from '../celery/worker/task-module.js';
import { ArgumentError, redact } from '../errors.js';
import type { Logger } from '../logger.js';
import { resolveBrokerUrl } from '../transport/url.js';
import { CliError, EXIT } from './io.js';
import type { CliIo } from './io.js';
import { addLimitOptions, decodeLimitsFrom, parseCount } from './options.js';
import type { LimitOptions } from './options.js';

/** Signals the command handles, and how it listens to them (the process, or a test's emitter). */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT' | 'SIGQUIT', listener: () => void): unknown;
  off(signal: 'SIGTERM' | 'SIGINT' | 'SIGQUIT', listener: () => void): unknown;
}

interface WorkerCliOptions extends LimitOptions {
  app: string;
  broker?: string;
  resultBackend?: string;
  queues?: string[];
  concurrency?: number;
  prefetchMultiplier?: number;
  events?: boolean;
  taskEvents?: boolean;
  hostname: string;
  loglevel: LogLevel;
  timeLimit?: number;
  softTimeLimit?: number;
  heartbeat: boolean;
  heartbeatInterval?: number;
  gossip?: boolean;
  mingle?: boolean;
}

const LEVELS: Record<string, LogLevel> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warning',
  WARN: 'warning',
  ERROR: 'error',
  CRITICAL: 'critical',
  FATAL: 'critical',
};

function parseLevel(value: string): LogLevel {
  const level = LEVELS[value.toUpperCase()];
  if (level === undefined) {
    throw new InvalidArgumentError(`'${value}' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL, FATAL`);
  }
  return level;
}

function parseList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ];
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`expected a number of seconds, got '${value}'`);
  }
  return n;
}

/** Celery's node name expansion: %h host name, %n its first label, %d the rest (domain). */
export function expandNodeName(name: string, host = osHostname()): string {
  const dot = host.indexOf('.');
  const short = dot < 0 ? host : host.slice(0, dot);
  const domain = dot < 0 ? '' : host.slice(dot + 1);
  return name
    .replace(/%%/g, '\0')
    .replace(/%h/g, host)
    .replace(/%n/g, short)
    .replace(/%d/g, domain)
    .replace(/\0/g, '%');
}

/** Celery's log line: `[2026-01-01 10:00:00,123: INFO/MainProcess] message`. */
function logLine(level: string, message: string): string {
  const d = new Date();
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const stamp =
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`;
  return `[${stamp}: ${level}/MainProcess] ${message}\n`;
}

/** Buffered text is written once it reaches this many characters, without waiting for the flush timer. */
const LOG_BUFFER_CHARS = 65_536;
/** Longest wait of a buffered debug or info line, ms. */
const LOG_FLUSH_MS = 100;

/**
 * A logger writing Celery's format to stderr, from `level` up, with {@link flush}. Debug and
 * info lines (two per task at INFO) wait up to 100 ms and are written together, one write
 * for many lines instead of one each (stderr on a file or a pipe costs a system call per
 * write, and tasks arriving one by one would each pay two); a warning or an error writes
 * what is buffered and itself at once, so lines keep their order and a failure is never
 * held back. The worker command flushes when it ends.
 *
 * @example
 * ```ts
 * const logger = celeryLogger(io, 'info');
 * logger.info('Task add[1] received'); // written within 100 ms
 * logger.flush(); // or now
 * ```
 */
export function celeryLogger(io: CliIo, level: LogLevel): Logger & { flush(): void } {
  const rank = ['debug', 'info', 'warning', 'error', 'critical'].indexOf(level);
  let pending = '';
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending === '') return;
    const text = pending;
    pending = '';
    io.stderr.write(text);
  };
  const write = (min: number, name: string, now: boolean) => (message: string) => {
    if (rank > min) return;
    pending += logLine(name, redact(message));
    if (now || pending.length >= LOG_BUFFER_CHARS) flush();
    else if (!scheduled) {
      scheduled = true;
      setTimeout(flush, LOG_FLUSH_MS).unref();
    }
  };
  return {
    debug: write(0, 'DEBUG', false),
    info: write(1, 'INFO', false),
    warn: write(2, 'WARNING', true),
    error: write(3, 'ERROR', true),
    flush,
  };
}

/** The startup banner, as Celery prints one (to stdout). */
function banner(worker: Worker, brokerUrl: string, backend: string, moduleName: string): string {
  const o = worker.options;
  const tasks = [...worker.tasks.keys()].sort().map((t) => `  . ${t}`);
  return [
    ` -------------- ${worker.hostname} (celery-amqp-backend)`,
    `--- ***** ----- .> app:         ${moduleName}`,
    `-- ******* ---- .> transport:   ${redact(brokerUrl)}`,
    `- *** --- * --- .> results:     ${redact(backend)}`,
    `- ** ---------- .> concurrency: ${o.concurrency} (node)`,
    `- ** ---------- .> task events: ${o.sendTaskEvents ? 'ON' : 'OFF (enable -E to monitor tasks in this worker)'}`,
    `- ** ----------`,
    ` -------------- [queues]`,
    ...o.queues.map((q) => `                .> ${q}`),
    '',
    '[tasks]',
    ...tasks,
    '',
  ].join('\n');
}

/**
 * Builds the `worker` command.
 *
 * @param signals - Where SIGTERM/SIGINT/SIGQUIT come from. @default process
 * @example
 * ```ts
 * program.addCommand(workerCommand(io));
 * ```
 */
export function workerCommand(io: CliIo, signals: SignalSource = process): Command {
  const cmd = new Command('worker')
    .description(
      'Start a worker serving Celery queues with the task handlers of a JS module ' +
        '(SIGTERM/SIGINT: warm shutdown, twice: cold; SIGQUIT: cold)',
    )
    .requiredOption(
      '-A, --app <module>',
      'the tasks module: named exports or a default object of handlers, and `settings`',
    )
    .option(
      '-b, --broker <url>',
      'broker URL (default: settings broker_url, $CELERY_BROKER_URL, amqp://guest:guest@localhost:5672//)',
    )
    .option(
      '--result-backend <url>',
      "result backend: 'rpc://' or 'amqp://...' (default: settings result_backend, rpc://)",
    )
    .option(
      '-Q, --queues <list>',
      'comma-separated queues to consume (default: task_default_queue)',
      parseList,
    )
    .option('-c, --concurrency <n>', 'tasks run at once (default: the number of CPUs)', parseCount)
    .option('--prefetch-multiplier <n>', 'prefetch = concurrency x this (default: 4)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0)
        throw new InvalidArgumentError(`expected an integer >= 0, got '${v}'`);
      return n;
    })
    .option('-E, --task-events', 'send task events (celery events, Flower); also --events')
    .addOption(new Option('--events').hideHelp())
    .option(
      '-n, --hostname <name>',
      'node name; %h, %n and %d expand to the host name, its first label and domain',
      'celery@%h',
    )
    .addOption(
      new Option('-l, --loglevel <level>', 'DEBUG, INFO, WARNING, ERROR, CRITICAL or FATAL')
        .default('warning', 'WARNING')
        .argParser(parseLevel),
    )
    .option('--time-limit <seconds>', 'hard time limit for tasks', parseSeconds)
    .option('--soft-time-limit <seconds>', 'soft time limit for tasks', parseSeconds)
    .option('--without-heartbeat', 'send no worker heartbeats')
    .option('--heartbeat-interval <seconds>', 'seconds between heartbeats (default: 2)', parseSeconds)
    .option('--without-gossip', 'accepted for compatibility (the Node worker does not gossip)')
    .option('--without-mingle', 'accepted for compatibility (the Node worker does not mingle)');
  addLimitOptions(cmd, { pickle: true }).addHelpText(
    'after',
    `
Settings (Celery names) come from the module's \`settings\` export and from CELERY_<NAME>
environment variables, which win (e.g. CELERY_WORKER_CONCURRENCY=8,
CELERY_TASK_CREATE_MISSING_QUEUE_TYPE=quorum); options given here win over both.

Examples:
  $ celery-amqp worker -A ./tasks.js -l INFO
  $ celery-amqp worker -A ./tasks.js -Q math,default -c 8 -E -n node1@%h --broker amqp://h//

Exit codes: 0 after a warm SIGTERM or a remote shutdown; 1 after SIGINT, a cold shutdown
(a second SIGTERM/SIGINT, or SIGQUIT) or an error; 2 for a usage error.`,
  );
  cmd.action(async (opts: WorkerCliOptions) => {
    const ending = await runWorker(opts, io, signals);
    if (ending !== null) throw ending;
  });
  return cmd;
}

/**
 * Loads the module, starts the worker and waits for its shutdown; resolves with null for a
 * clean exit, else with the CliError that gives the exit code (printed as one line by main).
 */
async function runWorker(opts: WorkerCliOptions, io: CliIo, signals: SignalSource): Promise<CliError | null> {
  const logger = celeryLogger(io, opts.loglevel);
  let mod;
  let settings;
  try {
    mod = await loadTaskModule(opts.app);
    settings = resolveModuleSettings(mod.settings, io.env);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return new CliError(`Invalid value for '-A' / '--app': ${why}`, EXIT.USAGE, { cause: err });
  }
  for (const name of settings.unused) logger.debug(`setting ${name} is not used by the Node worker`);
  const brokerUrl = resolveBrokerUrl(opts.broker ?? settings.brokerUrl, io.env);
  const backend = opts.resultBackend ?? settings.resultBackend ?? 'rpc://';
  let app: Celery;
  let worker: Worker;
  try {
    app = new Celery({ broker: brokerUrl, backend, settings: settings.app });
    const options: WorkerOptions = {
      tasks: mod.tasks,
      hostname: expandNodeName(opts.hostname),
      logger,
      loglevel: opts.loglevel,
      settings: settings.worker,
      heartbeat: opts.heartbeat,
      ...(opts.queues === undefined ? {} : { queues: opts.queues }),
      ...(opts.concurrency === undefined ? {} : { concurrency: opts.concurrency }),
      ...(opts.prefetchMultiplier === undefined ? {} : { prefetchMultiplier: opts.prefetchMultiplier }),
      ...(opts.events === true || opts.taskEvents === true ? { sendTaskEvents: true } : {}),
      ...(opts.timeLimit === undefined ? {} : { timeLimit: opts.timeLimit }),
      ...(opts.softTimeLimit === undefined ? {} : { softTimeLimit: opts.softTimeLimit }),
      ...(opts.heartbeatInterval === undefined ? {} : { heartbeatInterval: opts.heartbeatInterval * 1000 }),
      decodeLimits: decodeLimitsFrom(opts),
    };
    worker = new Worker(app, options);
  } catch (err) {
    if (err instanceof ArgumentError) return new CliError(err.message, EXIT.USAGE, { cause: err });
    throw err;
  }
  worker.on('error', (err) => logger.error(err.message));
  let ending: CliError | null = null;
  let presses = 0;
  const shutdown = (how: 'Warm' | 'Cold', failed: string | null): void => {
    logger.flush();
    io.stderr.write(`\nworker: ${how} shutdown (MainProcess)\n`);
    // Celery exits 0 after a warm SIGTERM, 1 (EX_FAILURE) after SIGINT or a cold shutdown.
    if (failed !== null && ending === null) ending = new CliError(failed, EXIT.ERROR);
    worker.close(how === 'Cold' ? { cold: true } : {}).catch((err: unknown) => logger.error(String(err)));
  };
  const COLD = 'cold shutdown: unfinished tasks were given back to the broker';
  const onTerm = (): void => (presses++ === 0 ? shutdown('Warm', null) : shutdown('Cold', COLD));
  const onInt = (): void => {
    logger.flush();
    if (presses === 0) io.stderr.write('worker: Hitting Ctrl+C again will terminate all running tasks!\n');
    if (presses++ === 0) shutdown('Warm', 'interrupted (SIGINT)');
    else shutdown('Cold', COLD);
  };
  const onQuit = (): void => {
    presses++;
    shutdown('Cold', COLD);
  };
  // The worker owns these signals while it runs (the CLI's own Ctrl-C handler would exit).
  const previous = signals === process ? process.listeners('SIGINT') : [];
  for (const l of previous) process.off('SIGINT', l);
  signals.on('SIGTERM', onTerm);
  signals.on('SIGINT', onInt);
  signals.on('SIGQUIT', onQuit);
  const closed = new Promise<void>((resolve) => worker.once('shutdown', () => resolve()));
  try {
    try {
      await worker.start();
    } catch (err) {
      await worker.close({ cold: true }).catch(() => undefined);
      const why = err instanceof Error ? err.message : String(err);
      return new CliError(`consumer: Cannot connect to ${redact(brokerUrl)}: ${why}`, EXIT.ERROR, {
        cause: err,
      });
    }
    io.stdout.write(`${banner(worker, brokerUrl, backend, mod.name)}\n`);
    logger.info(`${worker.hostname} ready.`);
    await closed;
    await worker.close();
    const abandoned = worker.counters.abandoned;
    if (abandoned > 0 && signals === process) {
      // Handlers JS could not stop (past a hard limit, terminated, or left by a cold
      // shutdown) may keep the event loop busy for ever: leave once main has returned.
      logger.warn(`${abandoned} abandoned task handler(s) still running: exiting anyway`);
      setTimeout(() => process.exit(), 200).unref();
    }
    return ending;
  } finally {
    logger.flush();
    signals.off('SIGTERM', onTerm);
    signals.off('SIGINT', onInt);
    signals.off('SIGQUIT', onQuit);
    for (const l of previous) process.on('SIGINT', l);
    await app.close().catch(() => undefined);
  }
}
