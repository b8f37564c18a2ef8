#!/usr/bin/env node
// Bundles the agent (src/cli/agent-entry.ts and all it imports, dependencies included) into one
// CommonJS file, dist/rampart-agent.cjs, for the agent container (bin/rampart-agent.cjs).
// Any esbuild warning fails the build: an import.meta or a dynamic require that a bundle cannot
// carry would otherwise surface only when a pod starts.
import { build } from 'esbuild';

const result = await build({
  entryPoints: ['src/cli/agent-entry.ts'],
  outfile: 'dist/rampart-agent.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'silent',
  legalComments: 'eof',
});
for (const w of result.warnings) console.error(`bundle-agent: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}`);
if (result.errors.length > 0 || result.warnings.length > 0) process.exit(1);
