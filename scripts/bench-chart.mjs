#!/usr/bin/env node
// Draws docs/bench-chart.svg (the README's chart, shipped with the package's docs) from
// bench/results/latest.json (written by `npm run bench -- --json --out bench/results/latest.json`)
// and, when present,
// bench/results/python-baseline.json (bench/python/celery44_amqp_loop.py's output).
// Plain hand-written SVG: no dependency, so the chart can be redrawn anywhere Node runs.
//
// Usage: node scripts/bench-chart.mjs [latest.json] [python-baseline.json] [chart.svg]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const [
  latestPath = `${root}bench/results/latest.json`,
  pythonPath = `${root}bench/results/python-baseline.json`,
  svgPath = `${root}docs/bench-chart.svg`,
] = process.argv.slice(2);

/** A finite number or null: missing figures draw no bar rather than a zero one. */
function num(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function readJson(path, required) {
  if (!existsSync(path)) {
    if (required) {
      process.stderr.write(`bench-chart: ${path} not found; run: npm run bench -- --json --out ${path}\n`);
      process.exit(1);
    }
    return null;
  }
  // The Python script prints one JSON object, possibly after other lines: take the last one.
  const text = readFileSync(path, 'utf8').trim();
  try {
    return JSON.parse(text);
  } catch {
    const last = text
      .split('\n')
      .filter((l) => l.trim().startsWith('{'))
      .pop();
    return last === undefined ? null : JSON.parse(last);
  }
}

const latest = readJson(latestPath, true);
const python = readJson(pythonPath, false);

const series = [
  {
    name: 'celery-amqp-backend (Node)',
    color: '#2f6fdf',
    store: num(latest.store_per_s),
    collect: num(latest.collect_per_s),
  },
  {
    name: 'bare amqplib',
    color: '#9aa5b1',
    store: num(latest.raw_store_per_s),
    collect: num(latest.raw_collect_per_s),
  },
];
if (python !== null) {
  series.push({
    name: 'Python Celery 4.4 AMQPBackend',
    color: '#e0a030',
    store: num(python.store_per_s),
    collect: num(python.collect_per_s),
  });
}
const groups = [
  { key: 'store', label: 'store (results/s)' },
  { key: 'collect', label: 'collect (results/s)' },
];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n) => Math.round(n).toLocaleString('en-US');

// Layout: a fixed canvas, bars scaled to a "nice" axis maximum.
const width = 720;
const height = 420;
const margin = { top: 56, right: 24, bottom: 96, left: 72 };
const plotW = width - margin.left - margin.right;
const plotH = height - margin.top - margin.bottom;
const max = Math.max(1, ...series.flatMap((s) => groups.map((g) => s[g.key] ?? 0)));
const step = 10 ** Math.floor(Math.log10(max));
const axisMax = Math.ceil(max / step) * step;
const y = (v) => margin.top + plotH - (v / axisMax) * plotH;

const out = [];
out.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
  `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="600">AMQP result backend throughput (N = ${esc(latest.n ?? '?')}, concurrency ${esc(latest.concurrency ?? '?')})</text>`,
  `<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">waitFor p50 ${esc(latest.waitfor_p50_ms ?? '?')} ms, p99 ${esc(latest.waitfor_p99_ms ?? '?')} ms; peak RSS ${esc(latest.rss_mb ?? '?')} MB${latest.getmany_n ? `; getMany over ${fmt(latest.getmany_n)} ids: ${esc(latest.getmany_rss_mb)} MB` : ''}</text>`,
);

// Grid lines and axis labels every fifth of the axis.
for (let i = 0; i <= 5; i++) {
  const v = (axisMax * i) / 5;
  out.push(
    `<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e7eb"/>`,
    `<text x="${margin.left - 8}" y="${y(v) + 4}" text-anchor="end" fill="#555">${fmt(v)}</text>`,
  );
}

const groupW = plotW / groups.length;
const barW = Math.min(64, (groupW * 0.7) / series.length);
groups.forEach((g, gi) => {
  const x0 = margin.left + gi * groupW + (groupW - barW * series.length) / 2;
  series.forEach((s, si) => {
    const v = s[g.key];
    const x = x0 + si * barW;
    if (v === null) {
      out.push(`<text x="${x + barW / 2}" y="${y(0) - 6}" text-anchor="middle" fill="#999">n/a</text>`);
      return;
    }
    out.push(
      `<rect x="${x + 2}" y="${y(v)}" width="${barW - 4}" height="${y(0) - y(v)}" fill="${s.color}"><title>${esc(s.name)}: ${fmt(v)}/s</title></rect>`,
      `<text x="${x + barW / 2}" y="${y(v) - 5}" text-anchor="middle">${fmt(v)}</text>`,
    );
  });
  out.push(
    `<text x="${margin.left + gi * groupW + groupW / 2}" y="${y(0) + 20}" text-anchor="middle" font-weight="600">${esc(g.label)}</text>`,
  );
});
out.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);

// Legend under the plot.
let lx = margin.left;
const ly = height - 36;
for (const s of series) {
  out.push(
    `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`,
    `<text x="${lx + 18}" y="${ly}">${esc(s.name)}</text>`,
  );
  lx += 30 + s.name.length * 6.5;
}
out.push(
  `<text x="${margin.left}" y="${height - 12}" fill="#777" font-size="11">${esc(latest.date ?? '')} ${esc(latest.node ?? '')} ${esc(latest.broker ?? '')}</text>`,
  '</svg>',
);

writeFileSync(svgPath, `${out.join('\n')}\n`);
process.stdout.write(`bench-chart: wrote ${svgPath}\n`);
