/**
 * bin/agent-node, the launcher the agent container and the proxy benchmark use: node must accept
 * every runtime setting it passes (a V8 flag a node upgrade dropped would stop every agent from
 * starting), and the settings must take effect.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const LAUNCHER = join(process.cwd(), 'bin/agent-node');

test('bin/agent-node starts node with its settings, and node applies them', () => {
  const probe = `const v8 = require('node:v8');
process.stdout.write(JSON.stringify({ execArgv: process.execArgv, heapLimitMb: v8.getHeapStatistics().heap_size_limit / 1048576 }));`;
  const r = spawnSync(LAUNCHER, ['-e', probe], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { execArgv: string[]; heapLimitMb: number };
  // Every flag the launcher names reaches node.
  const flags = [...readFileSync(LAUNCHER, 'utf8').matchAll(/^exec node ([^"]+)"\$@"/gms)].flatMap((m) => m[1]!.replace(/\\\n/g, ' ').trim().split(/\s+/));
  assert.ok(flags.length >= 5, `flags parsed from the launcher: ${flags.join(' ')}`);
  for (const flag of flags) assert.ok(out.execArgv.includes(flag), `${flag} in ${out.execArgv.join(' ')}`);
  // The old-space cap (128 MB) plus the 1 MB semi-spaces bound the heap far below node's default.
  assert.ok(out.heapLimitMb > 128 && out.heapLimitMb < 200, `heap limit ${out.heapLimitMb} MB`);
});

test('bin/agent-node gives node its glibc malloc settings, and a value already in the environment wins', () => {
  const probe = `process.stdout.write(JSON.stringify({ arenas: process.env.MALLOC_ARENA_MAX, mmap: process.env.MALLOC_MMAP_THRESHOLD_ }))`;
  const env = { ...process.env };
  delete env['MALLOC_ARENA_MAX'];
  delete env['MALLOC_MMAP_THRESHOLD_'];
  const defaults = spawnSync(LAUNCHER, ['-e', probe], { encoding: 'utf8', env });
  assert.equal(defaults.status, 0, defaults.stderr);
  assert.deepEqual(JSON.parse(defaults.stdout), { arenas: '1', mmap: '131072' });
  const overridden = spawnSync(LAUNCHER, ['-e', probe], { encoding: 'utf8', env: { ...env, MALLOC_ARENA_MAX: '4', MALLOC_MMAP_THRESHOLD_: '65536' } });
  assert.equal(overridden.status, 0, overridden.stderr);
  assert.deepEqual(JSON.parse(overridden.stdout), { arenas: '4', mmap: '65536' });
});

test('a flag node does not know makes the launcher fail loudly, so the test above can catch one', () => {
  const r = spawnSync(LAUNCHER, ['--no-such-v8-flag-for-rampart', '-e', '0'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
});
