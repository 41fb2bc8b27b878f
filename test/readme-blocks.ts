/**
 * The code blocks of a Markdown file, as test/integration/package.test.ts runs them against
 * the packed package.
 *
 * Marker convention. An HTML comment on the line right before a code fence (blank lines
 * between are allowed) says what the test does with that block; it is invisible on GitHub
 * and npm:
 *
 * ```md
 * <!-- readme-test: run -->          compile (ts) and run it; it must exit 0 in time (60 s)
 * <!-- readme-test: run timeout=90 -->  the same with its own limit in seconds
 * <!-- readme-test: run worker=tasks.py expect=5 -->
 *                                    the same while a Celery worker serves the README's
 *                                    file tasks.py (see `file`); it must print a line "5"
 * <!-- readme-test: run worker=celery4/tasks.py celery=4 -->
 *                                    the worker runs with Celery 4's amqp:// result backend
 * <!-- readme-test: serve client=client.py expect=5 -->
 *                                    a long-running block (a Worker): start it, run the
 *                                    README's file client.py with Python (it must exit 0 and
 *                                    print "5"), then SIGTERM the block: it must exit 0
 * <!-- readme-test: compile -->      compile only (it needs something the test cannot give)
 * <!-- readme-test: skip -->         neither (say why in the prose around it)
 * <!-- readme-test: file name=tasks.py -->
 *                                    a block of any language (Python) the test writes to
 *                                    that path in the app, for `worker` and `client`
 * ```
 *
 * A ts/js block without a marker gets the package test's default mode (`UNMARKED` there).
 * Only `ts`, `typescript`, `js` and `javascript` fences are code; other fences are prose
 * unless marked `file`. A block that calls `require(` runs as CommonJS, any other as an ES
 * module.
 *
 * @module
 */

/** What the package test does with a ts/js block. */
export type BlockMode = 'run' | 'serve' | 'compile' | 'skip';

/** One ts/js code block. */
export interface CodeBlock {
  /** 1-based line of the opening fence (for messages). */
  line: number;
  lang: 'ts' | 'js';
  /** CommonJS when it calls require(), else an ES module. */
  format: 'esm' | 'cjs';
  code: string;
  /** From the marker; undefined when the block has none. */
  mode: BlockMode | undefined;
  /** `timeout=N`, in ms. @default undefined */
  timeoutMs: number | undefined;
  /** `worker=PATH`: a Celery worker on that `file` block runs meanwhile. @default undefined */
  worker: string | undefined;
  /** `celery=4`: that worker stores results with Celery 4's amqp:// backend. @default 5 */
  celery: 4 | 5;
  /** `client=PATH` of a `serve` block: the Python `file` block that calls it. @default undefined */
  client: string | undefined;
  /** `expect=TEXT`: a whole line the block (run) or its client (serve) prints. @default undefined */
  expect: string | undefined;
}

/** A block marked `file`: written into the app as `name` for the blocks that use it. */
export interface FileBlock {
  line: number;
  /** A relative path (`tasks.py`, `celery4/tasks.py`). */
  name: string;
  code: string;
}

/** Everything the package test takes from a Markdown file. */
export interface MarkdownBlocks {
  blocks: CodeBlock[];
  files: FileBlock[];
}

interface Marker {
  mode: BlockMode | 'file';
  line: number;
  attributes: Map<string, string>;
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/;
const MARKER = /^\s*<!--\s*readme-test:\s*(\w+)((?:\s+[\w-]+=[\w./-]+)*)\s*-->\s*$/;
const LANGS: Record<string, 'ts' | 'js'> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' };
const MODES: ReadonlySet<string> = new Set(['run', 'serve', 'compile', 'skip', 'file']);
/** The attributes each mode takes. */
const ATTRIBUTES: Record<Marker['mode'], readonly string[]> = {
  run: ['timeout', 'worker', 'celery', 'expect'],
  serve: ['timeout', 'client', 'expect'],
  compile: [],
  skip: [],
  file: ['name'],
};

/**
 * The ts/js code blocks of `markdown`, each with its marker. Throws on a marker with an
 * unknown mode or attribute, or one not followed by a block it applies to, so that a typo
 * cannot silently exclude a block from the test.
 *
 * @example
 * ```ts
 * codeBlocks('<!-- readme-test: run -->\n```ts\nconsole.log(1);\n```\n')[0]?.mode; // 'run'
 * ```
 */
export function codeBlocks(markdown: string): CodeBlock[] {
  return markdownBlocks(markdown).blocks;
}

/**
 * The ts/js code blocks and the `file` blocks of `markdown`. Besides {@link codeBlocks}'
 * checks, every `worker` and `client` must name a `file` block, and a `serve` block must have
 * a client.
 *
 * @example
 * ```ts
 * markdownBlocks(readme).files.map((f) => f.name); // ['tasks.py', 'client.py']
 * ```
 */
export function markdownBlocks(markdown: string): MarkdownBlocks {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  const files: FileBlock[] = [];
  let pending: Marker | undefined;
  const misplaced = (m: Marker, what = 'a ts/js code block'): Error =>
    new Error(`line ${m.line}: a readme-test ${m.mode} marker must come right before ${what}`);
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] ?? '';
    const marker = MARKER.exec(text);
    if (marker !== null) {
      pending = parseMarker(marker[1] ?? '', marker[2] ?? '', i + 1);
      continue;
    }
    const fence = FENCE.exec(text);
    if (fence === null) {
      if (text.trim() !== '' && pending !== undefined) throw misplaced(pending, 'its code block');
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
    const code = `${body.join('\n')}\n`;
    const lang = LANGS[(fence[3] ?? '').toLowerCase()];
    if (pending?.mode === 'file') {
      files.push({ line: i + 1, name: fileName(pending), code });
    } else if (lang !== undefined) {
      blocks.push(codeBlock(i + 1, lang, code, pending));
    } else if (pending !== undefined) {
      throw misplaced(pending);
    }
    pending = undefined;
    i = j;
  }
  if (pending !== undefined)
    throw new Error(`line ${pending.line}: a readme-test marker with no code block after it`);
  checkReferences(blocks, files);
  return { blocks, files };
}

function codeBlock(line: number, lang: 'ts' | 'js', code: string, marker: Marker | undefined): CodeBlock {
  const a = marker?.attributes ?? new Map<string, string>();
  const timeout = a.get('timeout');
  const celery = a.get('celery');
  if (celery !== undefined && celery !== '4' && celery !== '5') {
    throw new Error(`line ${marker?.line}: celery=${celery}: 4 or 5`);
  }
  if (celery !== undefined && !a.has('worker')) {
    throw new Error(`line ${marker?.line}: celery=${celery} without a worker`);
  }
  const mode = marker?.mode === 'file' ? undefined : marker?.mode;
  return {
    line,
    lang,
    format: /\brequire\(/.test(code) ? 'cjs' : 'esm',
    code,
    mode,
    timeoutMs: timeout === undefined ? undefined : Number(timeout) * 1000,
    worker: a.get('worker'),
    celery: celery === '4' ? 4 : 5,
    client: a.get('client'),
    expect: a.get('expect'),
  };
}

function fileName(marker: Marker): string {
  const name = marker.attributes.get('name');
  if (name === undefined) throw new Error(`line ${marker.line}: a file marker needs name=PATH`);
  if (name.startsWith('/') || name.split('/').includes('..')) {
    throw new Error(`line ${marker.line}: name=${name} must be a relative path inside the app`);
  }
  return name;
}

function checkReferences(blocks: readonly CodeBlock[], files: readonly FileBlock[]): void {
  const names = new Set(files.map((f) => f.name));
  for (const b of blocks) {
    for (const [key, ref] of [
      ['worker', b.worker],
      ['client', b.client],
    ] as const) {
      if (ref !== undefined && !names.has(ref)) {
        throw new Error(`block at line ${b.line}: ${key}=${ref} names no readme-test file block`);
      }
    }
    if (b.mode === 'serve' && b.client === undefined) {
      throw new Error(`block at line ${b.line}: a serve block needs client=PATH (what calls it)`);
    }
  }
}

function parseMarker(mode: string, attributes: string, line: number): Marker {
  if (!isMode(mode)) {
    throw new Error(`line ${line}: unknown readme-test mode '${mode}' (run, serve, compile, skip or file)`);
  }
  const m = mode;
  const parsed = new Map<string, string>();
  for (const attribute of attributes.trim().split(/\s+/).filter(Boolean)) {
    const [key = '', value = ''] = attribute.split('=');
    if (!ATTRIBUTES[m].includes(key)) {
      const known = ATTRIBUTES[m].map((k) => `${k}=`).join(', ') || 'none';
      throw new Error(`line ${line}: unknown readme-test attribute '${attribute}' for ${m} (${known})`);
    }
    if (key === 'timeout' && !(Number(value) > 0)) {
      throw new Error(`line ${line}: unknown readme-test attribute '${attribute}' (timeout=<seconds>)`);
    }
    parsed.set(key, value);
  }
  return { mode: m, line, attributes: parsed };
}

function isMode(mode: string): mode is Marker['mode'] {
  return MODES.has(mode);
}
