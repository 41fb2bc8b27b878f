#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled library (dist/: npm run build, or prepack
// before npm pack/publish; npm start builds first).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`celery-amqp: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
