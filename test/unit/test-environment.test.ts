/**
 * The decisions of the test suites' global setup (test/setup/environment.ts) on a simulated
 * machine: which commands run when the broker is down, its app stopped, the Python peers
 * missing, the process root or not, and when the leftover-queue guard resets the broker. The
 * shared RabbitMQ is never touched: probes and commands are fakes.
 */
import { describe, expect, it } from 'vitest';
import {
  EnvironmentError,
  LEFTOVER_QUEUE_LIMIT,
  PYTHON_PACKAGES,
  leftoverAction,
  planEnvironment,
  prepareEnvironment,
} from '../setup/environment.js';
import type { EnvironmentDeps, EnvironmentState } from '../setup/environment.js';

const READY: EnvironmentState = {
  brokerAnswers: true,
  brokerLocal: true,
  brokerOff: false,
  nodeRunning: true,
  rabbitmqInstalled: true,
  pythonPeers: true,
  mayInstall: true,
};

/** A simulated machine: what the probes see changes as the commands run. */
class FakeMachine {
  readonly commands: string[] = [];
  readonly logs: string[] = [];
  brokerUp: boolean;
  python: boolean;
  queues = 3;
  connections = 0;
  /** await_startup fails this many times before the node is up. */
  bootPolls = 0;
  /** apt-get install works (false: the peers stay missing). */
  installWorks = true;
  time = 0;

  constructor(readonly state: EnvironmentState) {
    this.brokerUp = state.brokerAnswers;
    this.python = state.pythonPeers;
  }

  deps(): EnvironmentDeps {
    return {
      probe: async () => this.state,
      pythonPeers: async () => this.python,
      brokerAnswers: async () => this.brokerUp,
      run: async (command, args) => {
        const line = `${command} ${args.join(' ')}`;
        this.commands.push(line);
        if (line.startsWith('apt-get install') && this.installWorks) this.python = true;
        if (line === 'rabbitmq-server -detached') this.bootPolls = Math.max(this.bootPolls, 2);
        if (line === 'rabbitmqctl -q start_app' || line === 'rabbitmqctl -q reset') this.brokerUp = false;
        if (line === 'rabbitmqctl -q await_startup') {
          if (this.bootPolls > 0) {
            this.bootPolls--;
            throw new Error('node not up yet');
          }
          this.brokerUp = true;
        }
        if (line.endsWith('list_queues name')) return 'q\n'.repeat(this.queues);
        if (line.endsWith('list_connections pid')) return '<pid>\n'.repeat(this.connections);
        return '';
      },
      sleep: async (ms) => {
        this.time += ms;
      },
      now: () => this.time,
      log: (line) => this.logs.push(line),
    };
  }
}

describe('planEnvironment', () => {
  it('does nothing on a ready machine', () => {
    expect(planEnvironment(READY)).toEqual({ steps: [], problems: [] });
  });

  it('starts a stopped node, or only its app when the node runs', () => {
    const down = { ...READY, brokerAnswers: false, nodeRunning: false };
    expect(planEnvironment(down).steps.map((s) => s.kind)).toEqual(['start-broker-node', 'await-broker']);
    const appStopped = { ...READY, brokerAnswers: false, nodeRunning: true };
    expect(planEnvironment(appStopped).steps.map((s) => s.kind)).toEqual([
      'start-broker-app',
      'await-broker',
    ]);
  });

  it('names the commands when RabbitMQ is not installed or the peers cannot be installed here', () => {
    const plan = planEnvironment({
      ...READY,
      brokerAnswers: false,
      nodeRunning: false,
      rabbitmqInstalled: false,
      pythonPeers: false,
      mayInstall: false,
    });
    expect(plan.steps).toEqual([]);
    expect(plan.problems).toHaveLength(2);
    expect(plan.problems[0]).toContain(
      `sudo apt-get update && sudo apt-get install -y ${PYTHON_PACKAGES.join(' ')}`,
    );
    expect(plan.problems[1]).toContain(
      'apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached',
    );
  });

  it('never starts anything for a remote broker or with TEST_BROKER_URL=off', () => {
    expect(planEnvironment({ ...READY, brokerAnswers: false, brokerLocal: false }).problems[0]).toContain(
      'TEST_BROKER_URL',
    );
    expect(planEnvironment({ ...READY, brokerAnswers: false, brokerOff: true })).toEqual({
      steps: [],
      problems: [],
    });
  });
});

describe('prepareEnvironment', () => {
  it('runs only the leftover check on a ready machine', async () => {
    const m = new FakeMachine(READY);
    await prepareEnvironment(m.deps());
    expect(m.commands).toEqual(['rabbitmqctl -q --no-table-headers list_queues name']);
  });

  it('as root, installs the missing Python peers with apt-get', async () => {
    const m = new FakeMachine({ ...READY, pythonPeers: false });
    await prepareEnvironment(m.deps());
    expect(m.commands.slice(0, 2)).toEqual([
      'apt-get update -qq',
      `apt-get install -y -qq ${PYTHON_PACKAGES.join(' ')}`,
    ]);
    expect(m.python).toBe(true);
  });

  it('fails at once, running nothing, when the peers are missing and it may not install', async () => {
    const m = new FakeMachine({ ...READY, pythonPeers: false, mayInstall: false, brokerAnswers: false });
    const err = await prepareEnvironment(m.deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnvironmentError);
    expect((err as Error).message).toContain('sudo apt-get update && sudo apt-get install -y python3-kombu');
    expect(m.commands).toEqual([]);
  });

  it('fails naming the check when the install leaves the peers missing', async () => {
    const m = new FakeMachine({ ...READY, pythonPeers: false });
    m.installWorks = false;
    await expect(prepareEnvironment(m.deps())).rejects.toThrow("/usr/bin/python3 -c 'import kombu");
  });

  it('starts a down broker and polls await_startup until it answers', async () => {
    const m = new FakeMachine({ ...READY, brokerAnswers: false, nodeRunning: false });
    await prepareEnvironment(m.deps());
    expect(m.commands.slice(0, 4)).toEqual([
      'rabbitmq-server -detached',
      'rabbitmqctl -q await_startup',
      'rabbitmqctl -q await_startup',
      'rabbitmqctl -q await_startup',
    ]);
    expect(m.brokerUp).toBe(true);
  });

  it('starts only the app of a running node', async () => {
    const m = new FakeMachine({ ...READY, brokerAnswers: false, nodeRunning: true });
    await prepareEnvironment(m.deps());
    expect(m.commands.slice(0, 2)).toEqual(['rabbitmqctl -q start_app', 'rabbitmqctl -q await_startup']);
  });

  it('gives up after the start timeout with what to check', async () => {
    const m = new FakeMachine({ ...READY, brokerAnswers: false, nodeRunning: false });
    m.bootPolls = Number.POSITIVE_INFINITY;
    await expect(prepareEnvironment(m.deps())).rejects.toThrow('rabbitmqctl status');
    expect(m.time).toBeGreaterThanOrEqual(120_000);
  });

  it('resets a broker full of leftovers only in CI and when no client is connected', async () => {
    const idle = new FakeMachine(READY);
    idle.queues = LEFTOVER_QUEUE_LIMIT + 1;
    await prepareEnvironment({ ...idle.deps(), allowReset: true });
    expect(idle.commands).toContain('rabbitmqctl -q reset');

    const busy = new FakeMachine(READY);
    busy.queues = 4000;
    busy.connections = 3;
    await prepareEnvironment({ ...busy.deps(), allowReset: true });
    expect(busy.commands.some((c) => c.includes('reset') || c.includes('stop_app'))).toBe(false);
    expect(busy.logs.join('\n')).toContain('left as they are');

    const local = new FakeMachine(READY);
    local.queues = 4000;
    await prepareEnvironment(local.deps());
    expect(local.commands.some((c) => c.includes('reset') || c.includes('stop_app'))).toBe(false);
  });

  it('leftoverAction', () => {
    expect(leftoverAction(LEFTOVER_QUEUE_LIMIT, 0, true)).toBe('none');
    expect(leftoverAction(LEFTOVER_QUEUE_LIMIT + 1, 0, true)).toBe('reset');
    expect(leftoverAction(LEFTOVER_QUEUE_LIMIT + 1, 1, true)).toBe('warn');
    // Outside CI the broker is never reset: other runs may connect between two probes.
    expect(leftoverAction(LEFTOVER_QUEUE_LIMIT + 1, 0, false)).toBe('warn');
  });
});
