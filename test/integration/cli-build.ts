/**
 * The CLI (or a test script) as a real child process: src/ transpiled (TypeScript's
 * transpileModule, no type check, about a second) into a folder under node_modules/.cache,
 * where the package's dependencies resolve, with a launcher `run.js`.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { uid } from '../fixture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function* sources(path: string): AsyncGenerator<string> {
  if (path.endsWith('.ts')) {
    yield path;
    return;
  }
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) yield* sources(child);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield child;
  }
}

/** A transpiled copy of src/ (and the test folders asked for): `launcher` runs the CLI; `remove()` deletes it. */
export interface CliBuild {
  readonly dir: string;
  readonly launcher: string;
  remove(): Promise<void>;
}

/**
 * Transpiles src/, test/fixture.ts (test scripts use it) and the `extra` folders or files
 * (relative to the package root, e.g. `test/hostile`) into a fresh folder, keeping their
 * layout, and writes the launcher.
 */
export async function buildCli(extra: readonly string[] = []): Promise<CliBuild> {
  const dir = join(ROOT, 'node_modules', '.cache', 'celery-amqp-cli-test', uid('build'));
  for (const folder of ['src', 'test/fixture.ts', ...extra]) {
    for await (const file of sources(join(ROOT, folder))) {
      const out = join(dir, relative(ROOT, file)).replace(/\.ts$/, '.js');
      const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2022,
          verbatimModuleSyntax: true,
        },
        fileName: file,
      });
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, outputText);
    }
  }
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
  const launcher = join(dir, 'run.js');
  await writeFile(
    launcher,
    "import { main } from './src/cli/main.js';\nmain(process.argv.slice(2)).then((code) => { process.exitCode = code; });\n",
  );
  return { dir, launcher, remove: () => rm(dir, { recursive: true, force: true }) };
}
