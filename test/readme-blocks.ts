/**
 * The code blocks of a Markdown file, as test/integration/package.test.ts runs them against
 * the packed package.
 *
 * Marker convention. An HTML comment on the line right before a ```ts / ```js fence (blank
 * lines between are allowed) says what the test does with that block; it is invisible on
 * GitHub and npm:
 *
 * ```md
 * <!-- readme-test: run -->          compile (ts) and run it; it must exit 0 in time (60 s)
 * <!-- readme-test: run timeout=90 -->  the same with its own limit in seconds
 * <!-- readme-test: compile -->      compile only (it needs something the test cannot give)
 * <!-- readme-test: skip -->         neither (say why in the prose around it)
 * ```
 *
 * A block without a marker gets the package test's default mode (`UNMARKED` there). Only
 * `ts`, `typescript`, `js` and `javascript` fences are considered; shell, Python and plain
 * fences are prose. A block that calls `require(` runs as CommonJS, any other as an ES module.
 *
 * @module
 */

/** What the package test does with a block. */
export type BlockMode = 'run' | 'compile' | 'skip';

/** One code block. */
export interface CodeBlock {
  /** 1-based line of the opening fence (for messages). */
  line: number;
  lang: 'ts' | 'js';
  /** CommonJS when it calls require(), else an ES module. */
  format: 'esm' | 'cjs';
  code: string;
  /** From the marker; undefined when the block has none. */
  mode: BlockMode | undefined;
  /** `run timeout=N`, in ms. @default undefined */
  timeoutMs: number | undefined;
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/;
const MARKER = /^\s*<!--\s*readme-test:\s*(\w+)((?:\s+[\w-]+=[\w.-]+)*)\s*-->\s*$/;
const LANGS: Record<string, 'ts' | 'js'> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' };

/**
 * The ts/js code blocks of `markdown`, each with its marker. Throws on a marker with an
 * unknown mode, or one not followed by a ts/js block, so that a typo cannot silently
 * exclude a block from the test.
 *
 * @example
 * ```ts
 * codeBlocks('<!-- readme-test: run -->\n```ts\nconsole.log(1);\n```\n')[0]?.mode; // 'run'
 * ```
 */
export function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  let pending: { mode: BlockMode; timeoutMs: number | undefined; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] ?? '';
    const marker = MARKER.exec(text);
    if (marker !== null) {
      pending = parseMarker(marker[1] ?? '', marker[2] ?? '', i + 1);
      continue;
    }
    const fence = FENCE.exec(text);
    if (fence === null) {
      if (text.trim() !== '' && pending !== undefined) {
        throw new Error(
          `line ${pending.line}: a readme-test marker must come right before a ts/js code block`,
        );
      }
      continue;
    }
    // Collect the block up to its closing fence (same character, at least as long).
    const open = fence[2] ?? '```';
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = lines[j]?.trim() ?? '';
      if (close.startsWith(open[0]!.repeat(open.length)) && close.replace(/[`~]/g, '') === '') break;
      body.push(lines[j] ?? '');
    }
    const lang = LANGS[(fence[3] ?? '').toLowerCase()];
    if (lang === undefined) {
      if (pending !== undefined) {
        throw new Error(
          `line ${pending.line}: a readme-test marker must come right before a ts/js code block`,
        );
      }
    } else {
      const code = `${body.join('\n')}\n`;
      blocks.push({
        line: i + 1,
        lang,
        format: /\brequire\(/.test(code) ? 'cjs' : 'esm',
        code,
        mode: pending?.mode,
        timeoutMs: pending?.timeoutMs,
      });
    }
    pending = undefined;
    i = j;
  }
  if (pending !== undefined)
    throw new Error(`line ${pending.line}: a readme-test marker with no code block after it`);
  return blocks;
}

function parseMarker(
  mode: string,
  attributes: string,
  line: number,
): { mode: BlockMode; timeoutMs: number | undefined; line: number } {
  if (mode !== 'run' && mode !== 'compile' && mode !== 'skip') {
    throw new Error(`line ${line}: unknown readme-test mode '${mode}' (run, compile or skip)`);
  }
  let timeoutMs: number | undefined;
  for (const attribute of attributes.trim().split(/\s+/).filter(Boolean)) {
    const [key, value] = attribute.split('=');
    const seconds = Number(value);
    if (key !== 'timeout' || !Number.isFinite(seconds) || seconds <= 0) {
      throw new Error(`line ${line}: unknown readme-test attribute '${attribute}' (timeout=<seconds>)`);
    }
    timeoutMs = seconds * 1000;
  }
  return { mode, timeoutMs, line };
}
