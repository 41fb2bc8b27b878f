#!/usr/bin/env node
/**
 * Counts the type assertions in src/ (the `as` budget of CONTRIBUTING: at most 3 per 1,000
 * lines): every `x as T` and `<T>x` node the TypeScript parser finds, `as const` excepted;
 * `x as unknown as T` counts twice (two assertions). Import and export renames are not
 * assertions and are not counted.
 *
 * Usage: `npm run casts` (or `node scripts/casts.mjs [dir] [--all] [--where]`): prints the
 * files that have any, most first (`--all`: every file; `--where`: each assertion's line),
 * then the total per 1,000 lines. Exits 1 when the budget is exceeded.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const BUDGET_PER_1000 = 3;
const args = process.argv.slice(2);
const root = args.find((a) => !a.startsWith('--')) ?? 'src';
const showAll = args.includes('--all');

function* files(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (name.endsWith('.ts')) yield path;
  }
}

function isAsConst(node) {
  return ts.isConstTypeReference(node.type);
}

/** The assertions of one file, each with its line and text. */
function assertions(path) {
  const text = readFileSync(path, 'utf8');
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const visit = (node) => {
    if ((ts.isAsExpression(node) && !isAsConst(node)) || ts.isTypeAssertionExpression(node)) {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
      found.push({ line: line + 1, text: node.getText(source).replace(/\s+/g, ' ').slice(-80) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { lines: text.split('\n').length, found };
}

let totalLines = 0;
let totalCasts = 0;
const rows = [];
for (const path of files(root)) {
  const { lines, found } = assertions(path);
  totalLines += lines;
  totalCasts += found.length;
  if (found.length > 0 || showAll) rows.push({ path: relative(process.cwd(), path), lines, found });
}
rows.sort((a, b) => b.found.length - a.found.length || a.path.localeCompare(b.path));
for (const { path, lines, found } of rows) {
  console.log(`${String(found.length).padStart(3)}  ${path} (${lines} lines)`);
  if (args.includes('--where')) for (const f of found) console.log(`       ${f.line}: ${f.text}`);
}
const per1000 = (totalCasts * 1000) / totalLines;
console.log(
  `\n${totalCasts} type assertions in ${totalLines} lines of ${root}/: ${per1000.toFixed(2)} per 1,000 lines (budget ${BUDGET_PER_1000})`,
);
process.exitCode = per1000 <= BUDGET_PER_1000 ? 0 : 1;
