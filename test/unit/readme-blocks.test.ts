/**
 * The README code-block extractor of the package test (test/readme-blocks.ts): languages,
 * markers, module format, and refusals of markers that would silently exclude a block.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codeBlocks } from '../readme-blocks.js';

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

  it("parses this repository's README", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(codeBlocks(readme).filter((b) => b.lang === 'ts').length).toBeGreaterThan(0);
  });
});
