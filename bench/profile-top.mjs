#!/usr/bin/env node
// profile-top.mjs FILE.cpuprofile [N]: the N functions with the most self time, and by file.
import { readFileSync } from 'node:fs';

const [file, n = '25'] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((x) => [x.id, x]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const node = byId.get(prof.samples[i]);
  const { functionName, url, lineNumber } = node.callFrame;
  const key = `${functionName || '(anon)'} ${url.replace(/^.*node_modules\//, 'nm/').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')}:${lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(n));
console.log(`total sampled ${(total / 1e6).toFixed(2)} s`);
for (const [k, v] of top) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1e3).toFixed(0).padStart(7)} ms  ${k}`);
