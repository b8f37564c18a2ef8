#!/usr/bin/env node
// Entry point of the `rampart` command; the compiled CLI lives in dist/ (built by `npm ci`'s prepare step).
import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('rampart: dist/ is missing; run `npm run build` (npm ci does it for you)\n');
  process.exit(2);
}
const { runCli } = await import(main);
process.exitCode = await runCli(process.argv.slice(2));
