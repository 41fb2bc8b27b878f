/**
 * The README code-block extractor of the package test (test/readme-blocks.ts): languages,
 * markers, module format, and refusals of markers that would silently exclude a block.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codeBlocks, markdownBlocks } from '../readme-blocks.js';

const md = (...lines: string[]): string => lines.join('\n');

describe('codeBlocks', () => {
  it('takes ts and js fences with their markers, and leaves other languages out', () => {
    const blocks = codeBlocks(
      md(
        '# Title',
        '```sh',
        'npm install celery-amqp-backend',
        '```',
        '<!-- readme-test: run -->',
        '',
        '```ts',
        "import { Celery } from 'celery-amqp-backend';",
        '```',
        '```js',
        "const { Celery } = require('celery-amqp-backend');",
        '```',
        '<!-- readme-test: compile -->',
        '```typescript',
        'let x: number = 1;',
        '```',
        '```python',
        "app.send_task('add')",
        '```',
        '<!-- readme-test: skip -->',
        '~~~javascript',
        'console.log(1);',
        '~~~',
      ),
    );
    expect(blocks.map((b) => [b.line, b.lang, b.format, b.mode])).toEqual([
      [7, 'ts', 'esm', 'run'],
      [10, 'js', 'cjs', undefined],
      [14, 'ts', 'esm', 'compile'],
      [21, 'js', 'esm', 'skip'],
    ]);
    expect(blocks[0]!.code).toBe("import { Celery } from 'celery-amqp-backend';\n");
  });

  it('reads a timeout in seconds', () => {
    const [block] = codeBlocks(md('<!-- readme-test: run timeout=45 -->', '```ts', 'x;', '```'));
    expect(block).toMatchObject({ mode: 'run', timeoutMs: 45_000 });
  });

  it('refuses unknown modes and attributes, and markers not followed by a ts/js block', () => {
    expect(() => codeBlocks(md('<!-- readme-test: runn -->', '```ts', 'x;', '```'))).toThrow(
      "unknown readme-test mode 'runn'",
    );
    expect(() => codeBlocks(md('<!-- readme-test: run retries=2 -->', '```ts', 'x;', '```'))).toThrow(
      "unknown readme-test attribute 'retries=2'",
    );
    expect(() => codeBlocks(md('<!-- readme-test: run -->', 'Some prose.', '```ts', 'x;', '```'))).toThrow(
      'must come right before',
    );
    expect(() => codeBlocks(md('<!-- readme-test: run -->', '```sh', 'ls', '```'))).toThrow(
      'must come right before',
    );
    expect(() => codeBlocks(md('text', '<!-- readme-test: skip -->'))).toThrow('no code block after it');
  });

  it('takes file blocks of any language, and the Python peers run and serve blocks name', () => {
    const { blocks, files } = markdownBlocks(
      md(
        '<!-- readme-test: file name=tasks.py -->',
        '```python',
        'app = Celery()',
        '```',
        '<!-- readme-test: file name=celery4/tasks.py -->',
        '```python',
        "app = Celery(backend='amqp://')",
        '```',
        '<!-- readme-test: run worker=tasks.py expect=5 -->',
        '```ts',
        'a;',
        '```',
        '<!-- readme-test: run worker=celery4/tasks.py celery=4 timeout=30 -->',
        '```ts',
        'b;',
        '```',
        '<!-- readme-test: serve client=tasks.py -->',
        '```ts',
        'c;',
        '```',
      ),
    );
    expect(files).toEqual([
      { line: 2, name: 'tasks.py', code: 'app = Celery()\n' },
      { line: 6, name: 'celery4/tasks.py', code: "app = Celery(backend='amqp://')\n" },
    ]);
    expect(blocks.map((b) => [b.mode, b.worker, b.celery, b.client, b.expect, b.timeoutMs])).toEqual([
      ['run', 'tasks.py', 5, undefined, '5', undefined],
      ['run', 'celery4/tasks.py', 4, undefined, undefined, 30_000],
      ['serve', undefined, 5, 'tasks.py', undefined, undefined],
    ]);
  });

  it('refuses a peer that names no file block, a serve block without a client, and attributes of another mode', () => {
    const ts = ['```ts', 'x;', '```'];
    expect(() => codeBlocks(md('<!-- readme-test: run worker=tasks.py -->', ...ts))).toThrow(
      'worker=tasks.py names no readme-test file block',
    );
    expect(() => codeBlocks(md('<!-- readme-test: serve -->', ...ts))).toThrow(
      'a serve block needs client=PATH',
    );
    expect(() => codeBlocks(md('<!-- readme-test: compile worker=t.py -->', ...ts))).toThrow(
      "unknown readme-test attribute 'worker=t.py' for compile",
    );
    expect(() => codeBlocks(md('<!-- readme-test: run celery=4 -->', ...ts))).toThrow(
      'celery=4 without a worker',
    );
    expect(() => codeBlocks(md('<!-- readme-test: file -->', '```python', 'x', '```'))).toThrow(
      'needs name=PATH',
    );
    expect(() => codeBlocks(md('<!-- readme-test: file name=../x.py -->', '```python', 'x', '```'))).toThrow(
      'relative path inside the app',
    );
  });

  it("parses this repository's README: every ts/js block runs or serves, with its Python peers", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const { blocks, files } = markdownBlocks(readme);
    expect(blocks.filter((b) => b.lang === 'ts').length).toBeGreaterThan(0);
    expect(blocks.filter((b) => b.mode === 'compile' || b.mode === 'skip').map((b) => b.line)).toEqual([]);
    expect(files.map((f) => f.name).sort()).toEqual(['celery4/tasks.py', 'client.py', 'tasks.py']);
  });
});
