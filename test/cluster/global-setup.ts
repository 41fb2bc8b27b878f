/**
 * globalSetup of the 'cluster' vitest project: starts the three-node RabbitMQ cluster in the
 * background (the project's files wait for it through ensureCluster(), so other projects'
 * tests are not held up by its boot), and tears it down after the run.
 *
 * It also checks that the broker on 5672 came through untouched: the same node name and OS
 * process, still running (its uptime only grew), and still alone in its cluster. Teardown
 * fails the run when it did not. Only read-only rabbitmqctl calls go to that node.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { CLUSTER_SCRIPT } from './cluster.js';

const run = promisify(execFile);

/** What identifies the 5672 broker: node, OS pid, uptime (ms), cluster members, queue count. */
interface BrokerIdentity {
  node: string;
  pid: string;
  uptimeMs: number;
  members: string[];
  queues: string[];
}

/** One read-only eval on the default node (rabbit@localhost, the 5672 broker). */
async function mainBroker(): Promise<BrokerIdentity> {
  const { stdout } = await run(
    'rabbitmqctl',
    [
      '-q',
      'eval',
      'io:format("~s ~s ~b ~s~n", [node(), os:getpid(), element(1, erlang:statistics(wall_clock)), ' +
        'lists:join(",", [atom_to_list(N) || N <- lists:sort(rabbit_nodes:all())])]).',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  const line = stdout.split('\n').find((l) => l.trim() !== '' && !l.startsWith('ok')) ?? '';
  const [node = '', pid = '', uptime = 'NaN', members = ''] = line.trim().split(' ');
  const listed = await run('rabbitmqctl', ['-q', 'list_queues', 'name'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const queues = listed.stdout.split('\n').filter((q) => q.trim() !== '' && q !== 'name');
  return { node, pid, uptimeMs: Number(uptime), members: members.split(',').filter((m) => m !== ''), queues };
}

let before: BrokerIdentity | undefined;
let started: Promise<number | null> | undefined;
let output = '';

/** Records the 5672 broker and starts the cluster in the background. */
export async function setup(): Promise<void> {
  before = await mainBroker().catch((err: unknown) => {
    console.warn(`[cluster] the 5672 broker cannot be inspected (${String(err)}); its check is skipped`);
    return undefined;
  });
  const child = spawn(CLUSTER_SCRIPT, ['start'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  started = new Promise<number | null>((resolve) => {
    child.on('close', resolve);
    child.on('error', () => resolve(-1));
  });
}

/** Stops the cluster (unless CLUSTER_KEEP=1) and checks the 5672 broker. */
export async function teardown(): Promise<void> {
  const code = await started;
  if (code !== 0) console.warn(`[cluster] background start exited ${String(code)}:\n${output}`);
  if (process.env['CLUSTER_KEEP'] !== '1') await run(CLUSTER_SCRIPT, ['stop'], { timeout: 300_000 });
  if (before === undefined) return;
  const after = await mainBroker();
  const problems: string[] = [];
  if (after.node !== before.node) problems.push(`node ${before.node} -> ${after.node}`);
  if (after.pid !== before.pid) problems.push(`OS process ${before.pid} -> ${after.pid} (restarted)`);
  if (!(after.uptimeMs > before.uptimeMs)) problems.push(`uptime ${before.uptimeMs} -> ${after.uptimeMs} ms`);
  if (after.members.join(',') !== before.members.join(',')) {
    problems.push(`cluster members ${before.members.join(',')} -> ${after.members.join(',')}`);
  }
  // The cluster suite never connects to 5672: none of its queues (named clu-*) may be there.
  // Other suites create and delete their own queues there meanwhile, so counts only inform.
  const ours = after.queues.filter((q) => q.startsWith('clu-'));
  if (ours.length > 0) problems.push(`cluster-suite queues on it: ${ours.slice(0, 5).join(', ')}`);
  console.info(
    `[cluster] 5672 broker: ${before.queues.length} queues before the suite, ${after.queues.length} after`,
  );
  if (problems.length > 0)
    throw new Error(`the 5672 broker changed during the cluster suite: ${problems.join('; ')}`);
}
