#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled library (npm install runs the build).
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
