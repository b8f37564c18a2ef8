#!/usr/bin/env node
// profile-top.mjs FILE.cpuprofile [N] [--skip S] [--until U] [--callers NAME]: the N functions with the most
// self time (only samples between S and U seconds in, e.g. past start-up and before a second phase),
// or the call stacks leading to NAME.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const skipUs = Number(opt('--skip') ?? 0) * 1e6;
const untilUs = Number(opt('--until') ?? Infinity) * 1e6;
const callersOf = opt('--callers');
const [file, n = '25'] = args;
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((x) => [x.id, x]));
const parent = new Map();
for (const x of prof.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
const label = (node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anon)'} ${url.replace(/^.*node_modules\//, 'nm/').replace(/^file:\/\/.*?\/(src|bench|test)\//, '$1/')}:${lineNumber + 1}`;
};
const self = new Map();
let t = 0;
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i] ?? 0;
  if (t < skipUs || t > untilUs) continue;
  const node = byId.get(prof.samples[i]);
  let key = label(node);
  if (callersOf !== undefined) {
    if (!key.startsWith(callersOf)) continue;
    const chain = [];
    for (let p = parent.get(node.id), d = 0; p !== undefined && d < 8; p = parent.get(p), d++) chain.push(label(byId.get(p)));
    key = `${key}\n      <- ${chain.join('\n      <- ')}`;
  }
  self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(n));
console.log(`total sampled ${(total / 1e6).toFixed(2)} s (after ${skipUs / 1e6} s)`);
for (const [k, v] of top) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1e3).toFixed(0).padStart(7)} ms  ${k}`);
