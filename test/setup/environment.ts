/**
 * What the broker and interop suites need from the machine, and how `npm test` gets it: a
 * RabbitMQ that answers (started when it is installed but down) and Debian's Python peers
 * (installed with apt-get when missing and the process is root). When neither can be done
 * here, the run fails at once with the exact commands to run, rather than failing suite by
 * suite later.
 *
 * The decisions are plain functions over probes and a command runner, so that a unit test
 * drives every branch without touching the shared broker (test/unit/test-environment.test.ts);
 * test/setup/global-setup.ts wires the real ones.
 *
 * @module
 */

/**
 * Debian's packages the interop suites import from /usr/bin/python3. brotli and zstandard:
 * kombu registers those compressions only when they import.
 */
export const PYTHON_PACKAGES = [
  'python3-kombu',
  'python3-celery',
  'python3-msgpack',
  'python3-yaml',
  'python3-brotli',
  'python3-zstandard',
];

/** The modules {@link PYTHON_PACKAGES} provide, as `import` names. */
export const PYTHON_MODULES = ['kombu', 'celery', 'msgpack', 'yaml', 'brotli', 'zstandard'];

/**
 * More queues than this on the test broker before a run means leftovers of a crashed earlier
 * run: thousands of durable queues make the broker-restart fault test slow to recover and can
 * exhaust the broker's 1,024 file handles.
 */
export const LEFTOVER_QUEUE_LIMIT = 500;

/** How long a starting RabbitMQ gets before the run fails, ms. */
export const BROKER_START_TIMEOUT_MS = 120_000;

/** What the machine looks like before anything is done. */
export interface EnvironmentState {
  /** The broker's AMQP port accepts connections. */
  brokerAnswers: boolean;
  /** The broker is this machine's own (localhost), so rabbitmqctl and rabbitmq-server apply. */
  brokerLocal: boolean;
  /** No broker is wanted (TEST_BROKER_URL=off: the embedded broker only). */
  brokerOff: boolean;
  /** A RabbitMQ node is running (`rabbitmqctl ping`), though its app may be stopped. */
  nodeRunning: boolean;
  /** `rabbitmq-server` is installed. */
  rabbitmqInstalled: boolean;
  /** /usr/bin/python3 imports every module of {@link PYTHON_MODULES}. */
  pythonPeers: boolean;
  /** The process may install packages: root, with apt-get on the PATH. */
  mayInstall: boolean;
}

/** One thing to do to the machine. */
export type SetupStep =
  | { kind: 'install-python-peers' }
  | { kind: 'start-broker-app' }
  | { kind: 'start-broker-node' }
  | { kind: 'await-broker' };

/** What {@link planEnvironment} decided. */
export interface EnvironmentPlan {
  steps: SetupStep[];
  /** What cannot be fixed from here, each with the commands that fix it. Non-empty: fail. */
  problems: string[];
}

/** The commands that install the Python peers, as a user types them. */
export function pythonInstallCommands(sudo: boolean): string {
  const s = sudo ? 'sudo ' : '';
  return `${s}apt-get update && ${s}apt-get install -y ${PYTHON_PACKAGES.join(' ')}`;
}

/**
 * Decides what to do from what the probes found: nothing when everything is there; the
 * steps that bring what is missing when the process may take them; otherwise the problems,
 * each naming the commands to run.
 *
 * @example
 * ```ts
 * planEnvironment({ ...state, pythonPeers: false, mayInstall: true }).steps; // [{ kind: 'install-python-peers' }]
 * ```
 */
export function planEnvironment(state: EnvironmentState): EnvironmentPlan {
  const steps: SetupStep[] = [];
  const problems: string[] = [];
  if (!state.pythonPeers) {
    if (state.mayInstall) steps.push({ kind: 'install-python-peers' });
    else {
      problems.push(
        `The interop suites need Debian's Python peers (kombu 5.2, Celery 5.2) for /usr/bin/python3, ` +
          `and this process may not install them. Run:\n    ${pythonInstallCommands(true)}`,
      );
    }
  }
  if (!state.brokerOff && !state.brokerAnswers) {
    if (!state.brokerLocal) {
      problems.push(
        'The broker named by TEST_BROKER_URL does not answer; start it, or unset TEST_BROKER_URL ' +
          'to use the local RabbitMQ.',
      );
    } else if (state.nodeRunning) {
      // A fault test (or an operator) left the node up with its app stopped.
      steps.push({ kind: 'start-broker-app' }, { kind: 'await-broker' });
    } else if (state.rabbitmqInstalled) {
      steps.push({ kind: 'start-broker-node' }, { kind: 'await-broker' });
    } else {
      problems.push(
        'The integration suites need RabbitMQ on 127.0.0.1:5672 (guest/guest), and it is not ' +
          'installed. Run:\n    sudo apt-get update && sudo apt-get install -y rabbitmq-server && ' +
          'sudo rabbitmq-server -detached',
      );
    }
  }
  return { steps, problems };
}

/**
 * What to do about the queues already on the test broker: `reset` when they are leftovers
 * (too many, no client connected, and resets allowed: in CI, `.ci/run` sets `CI`), `warn`
 * otherwise when there are too many, else `none`. Outside CI a reset is never done: a
 * developer's other runs (or other people's) may connect between two of our probes, and a
 * reset pulls the broker from under them.
 *
 * @example
 * ```ts
 * leftoverAction(4000, 0, true); // 'reset'
 * ```
 */
export function leftoverAction(
  queues: number,
  connections: number,
  allowReset: boolean,
): 'none' | 'warn' | 'reset' {
  if (queues <= LEFTOVER_QUEUE_LIMIT) return 'none';
  return connections === 0 && allowReset ? 'reset' : 'warn';
}

/** The probes and commands {@link prepareEnvironment} uses (injected by tests). */
export interface EnvironmentDeps {
  /** Looks at the machine. */
  probe(): Promise<EnvironmentState>;
  /** Re-checks the Python peers after an install. */
  pythonPeers(): Promise<boolean>;
  /** Whether the broker's AMQP port answers now. */
  brokerAnswers(): Promise<boolean>;
  /** Runs a command to completion; rejects with its output when it fails. */
  run(command: string, args: string[], env?: Record<string, string>): Promise<string>;
  /** Waits `ms` milliseconds (tests make it instant). */
  sleep(ms: number): Promise<void>;
  /** Progress lines for the person running the tests. */
  log(line: string): void;
  /** The current time in ms (tests make it advance with `sleep`). @default Date.now */
  now?(): number;
  /** The leftover-queue guard may reset the broker (CI only). @default false */
  allowReset?: boolean;
}

/** The error a setup that cannot be completed fails with: every problem, with its commands. */
export class EnvironmentError extends Error {
  constructor(problems: readonly string[]) {
    super(`The test environment is not ready:\n\n${problems.map((p) => `- ${p}`).join('\n\n')}\n`);
    this.name = 'EnvironmentError';
  }
}

/**
 * Probes the machine, fails at once (before doing anything) when something cannot be fixed
 * from here, else installs and starts what is missing and checks the result; finally applies
 * the leftover-queue guard on a local broker.
 *
 * @example
 * ```ts
 * await prepareEnvironment(realDeps()); // in vitest's global setup
 * ```
 */
export async function prepareEnvironment(deps: EnvironmentDeps): Promise<void> {
  const state = await deps.probe();
  const plan = planEnvironment(state);
  if (plan.problems.length > 0) throw new EnvironmentError(plan.problems);
  for (const step of plan.steps) await runStep(step, deps);
  const after: string[] = [];
  if (plan.steps.some((s) => s.kind === 'install-python-peers') && !(await deps.pythonPeers())) {
    after.push(
      `apt-get installed ${PYTHON_PACKAGES.join(', ')}, but /usr/bin/python3 still cannot import ` +
        `${PYTHON_MODULES.join(', ')}. Check:\n    /usr/bin/python3 -c 'import ${PYTHON_MODULES.join(', ')}'`,
    );
  }
  if (!state.brokerOff && !(await deps.brokerAnswers())) {
    after.push('RabbitMQ was started but does not answer on its AMQP port. Check:\n    rabbitmqctl status');
  }
  if (after.length > 0) throw new EnvironmentError(after);
  if (!state.brokerOff && state.brokerLocal) await leftoverGuard(deps);
}

async function runStep(step: SetupStep, deps: EnvironmentDeps): Promise<void> {
  switch (step.kind) {
    case 'install-python-peers':
      deps.log(`installing the Python peers: ${pythonInstallCommands(false)}`);
      await deps.run('apt-get', ['update', '-qq'], { DEBIAN_FRONTEND: 'noninteractive' });
      await deps.run('apt-get', ['install', '-y', '-qq', ...PYTHON_PACKAGES], {
        DEBIAN_FRONTEND: 'noninteractive',
      });
      return;
    case 'start-broker-app':
      deps.log('RabbitMQ is running with its app stopped: rabbitmqctl start_app');
      await deps.run('rabbitmqctl', ['-q', 'start_app']);
      return;
    case 'start-broker-node':
      deps.log('RabbitMQ does not answer: rabbitmq-server -detached');
      await deps.run('rabbitmq-server', ['-detached']);
      return;
    case 'await-broker':
      await awaitBroker(deps);
      return;
  }
}

/** Polls `rabbitmqctl await_startup` (it fails at once while the node is still booting). */
async function awaitBroker(deps: EnvironmentDeps): Promise<void> {
  const now = deps.now ?? Date.now;
  const deadline = now() + BROKER_START_TIMEOUT_MS;
  for (;;) {
    const ok = await deps.run('rabbitmqctl', ['-q', 'await_startup']).then(
      () => true,
      () => false,
    );
    if (ok && (await deps.brokerAnswers())) return;
    if (now() >= deadline) return; // prepareEnvironment reports the broker as not answering
    await deps.sleep(2000);
  }
}

async function leftoverGuard(deps: EnvironmentDeps): Promise<void> {
  const count = async (args: string[]): Promise<number> =>
    (await deps.run('rabbitmqctl', ['-q', '--no-table-headers', ...args]))
      .split('\n')
      .filter((l) => l.trim() !== '').length;
  const queues = await count(['list_queues', 'name']);
  const action = leftoverAction(
    queues,
    queues > LEFTOVER_QUEUE_LIMIT ? await count(['list_connections', 'pid']) : 0,
    deps.allowReset ?? false,
  );
  if (action === 'warn') {
    deps.log(
      `${queues} queues on the test broker, left as they are (a reset is only done in CI, with no client connected)`,
    );
  } else if (action === 'reset') {
    deps.log(`${queues} leftover queues on the test broker and no client connected: resetting it`);
    await deps.run('rabbitmqctl', ['-q', 'stop_app']);
    await deps.run('rabbitmqctl', ['-q', 'reset']);
    await deps.run('rabbitmqctl', ['-q', 'start_app']);
    await deps.run('rabbitmqctl', ['-q', 'await_startup']);
  }
}
