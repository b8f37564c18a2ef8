/**
 * A client-chain guard nobody offends against costs next to nothing: every agent inbound and every
 * CA listener has one, and almost none ever sees an offence. (Its offender table was an LRUCache,
 * which allocates its arrays for all 10,000 entries when made; it is now a Map that grows with
 * the offenders.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createClientChainGuard } from '../../src/tls/client-chain-guard.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfter(make: () => unknown[]): { bytes: number; kept: unknown[] } {
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = make();
  gc();
  return { bytes: process.memoryUsage().heapUsed - before, kept };
}

test('twenty guards nobody offends against hold no offender tables: well under 1 MB between them, not 20 x 370 KB', () => {
  const { bytes, kept } = heapAfter(() => Array.from({ length: 20 }, () => createClientChainGuard()));
  assert.equal(kept.length, 20);
  assert.ok(bytes < 1_000_000, `20 guards took ${bytes} bytes of heap`);
  // And they answer as empty guards do.
  for (const guard of kept as ReturnType<typeof createClientChainGuard>[]) {
    assert.equal(guard.banned(), 0);
    assert.equal(guard.certificateNotAskedUntil('10.0.0.1'), null);
  }
});
