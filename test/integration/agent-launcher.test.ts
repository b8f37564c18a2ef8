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

test('a flag node does not know makes the launcher fail loudly, so the test above can catch one', () => {
  const r = spawnSync(LAUNCHER, ['--no-such-v8-flag-for-rampart', '-e', '0'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
});
