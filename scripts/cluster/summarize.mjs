// Summarizes the JSON lines test/cluster/round-trips.test.ts appends (CLUSTER_REPORT): per
// scenario, queue type and loss mode, p50/p99 of the failover time and the counts.
// Usage: node scripts/cluster/summarize.mjs REPORT
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (file === undefined) {
  console.error('usage: node scripts/cluster/summarize.mjs REPORT');
  process.exit(2);
}
const runs = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l));

/** Nearest-rank percentile. */
function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

const groups = new Map();
for (const r of runs) {
  for (const key of [`${r.scenario} | ${r.queueType} | ${r.mode}`, `${r.scenario} | ${r.queueType} | both`]) {
    const g = groups.get(key) ?? [];
    g.push(r);
    groups.set(key, g);
  }
}
const sum = (g, f) => g.reduce((n, r) => n + f(r), 0);
console.log(
  '| scenario | queue | loss | runs | failover p50 | failover p99 | max | failed waits (QueueLost) | failed sends | timed out | duplicate runs |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const [key, g] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
  const gaps = g.map((r) => r.failoverMs);
  const [scenario, type, mode] = key.split(' | ');
  console.log(
    `| ${scenario} | ${type} | ${mode} | ${g.length} | ${percentile(gaps, 50)} ms | ${percentile(gaps, 99)} ms | ${Math.max(...gaps)} ms | ` +
      `${sum(g, (r) => r.stats.queueLost)} | ${sum(g, (r) => r.stats.sendFailures)} | ${sum(g, (r) => r.stats.timeouts)} | ` +
      `${sum(g, (r) => r.duplicates)} (${(sum(g, (r) => r.duplicates) / g.length).toFixed(1)}/run) |`,
  );
}
