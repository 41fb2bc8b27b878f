/**
 * The cluster bench's pieces that need no cluster: the failover time of one loss (the
 * longest reply gap across it) and the summary of a report. The bench itself runs against
 * the three-node cluster (`npm run bench -- --cluster`, bench/README.md).
 */
import { describe, expect, it } from 'vitest';
import { describeClusterReport, longestGapAcross } from '../../bench/cluster-bench.js';
import type { ClusterBenchReport } from '../../bench/cluster-bench.js';

describe('longestGapAcross', () => {
  it('is the longest gap between consecutive replies that ends after the loss and starts before the restore', () => {
    const arrivals = [0, 500, 510, 520, 700, 710, 2000, 2010, 5000];
    // 0 -> 500 ended before the loss at 515; 710 -> 2000 began before the restore at 1000
    // (the stall lasted until the node came back); 2010 -> 5000 began after it.
    expect(longestGapAcross(arrivals, 515, 1000)).toBe(1290);
    expect(longestGapAcross(arrivals, 515, 705)).toBe(180);
    expect(longestGapAcross([], 0, 10)).toBe(0);
  });
});

describe('describeClusterReport', () => {
  it('shows each queue type on the three brokers with the ratios, and the failover line', () => {
    const rates = (cluster: number, oneNode: number, single: number) => ({
      cluster_per_s: cluster,
      cluster_one_node_per_s: oneNode,
      single_per_s: single,
      ratio: cluster / single,
      one_node_ratio: oneNode / single,
      per_round: [{ cluster, cluster_one_node: oneNode, single }],
    });
    const report: ClusterBenchReport = {
      n: 2000,
      concurrency: 64,
      rounds: 1,
      cluster_started: true,
      round_trips: { classic: rates(1500, 3000, 4000), quorum: rates(1400, 2800, 4000) },
      failover: {
        queue_type: 'quorum',
        losses: [],
        failover_p50_ms: 457,
        failover_p99_ms: 562,
        failover_max_ms: 562,
        tasks: 100,
        completed: 100,
        lost: 0,
        wrong_values: 0,
        duplicates: 7,
        duplicates_sent_once: 2,
        resent: { timeouts: 0, queue_lost: 3, send_failures: 4 },
        errors: { worker: {}, send: {}, other: {} },
        per_s: 1320,
      },
    };
    const text = describeClusterReport(report);
    expect(text).toMatch(/classic\s+1500\/s 0\.38x\s+3000\/s 0\.75x\s+4000\/s/);
    expect(text).toMatch(/quorum\s+1400\/s 0\.35x\s+2800\/s 0\.70x\s+4000\/s/);
    expect(text).toContain('p50 457 ms, p99 562 ms, max 562 ms');
    expect(text).toContain('100 completed, 0 lost, 7 duplicate runs (2 of tasks sent once)');
  });
});
