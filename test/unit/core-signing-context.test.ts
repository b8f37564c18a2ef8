/** signingContextFor refuses a state whose active intermediate key does not belong to its certificate. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import type { CaState } from '../../src/core/ports.js';

test('an intermediate key swapped from another CA is reported as corrupt state, not as failed signings', () => {
  const now = Date.now();
  const ours = bootstrapState('cluster.local', now, DEFAULT_LIFETIMES);
  const theirs = bootstrapState('cluster.local', now, DEFAULT_LIFETIMES);
  assert.doesNotThrow(() => signingContextFor(ours));
  const [root] = ours.roots;
  const swapped: CaState = { ...ours, roots: [{ ...root!, intermediate: { ...root!.intermediate, keyPem: theirs.roots[0]!.intermediate.keyPem } }] };
  assert.throws(() => signingContextFor(swapped), (err: unknown) => {
    const e = err as { code?: string; message: string };
    assert.equal(e.code, 'RAMPART_ERR_STATE_CORRUPT');
    assert.match(e.message, /intermediate key does not belong to its certificate/);
    assert.doesNotMatch(e.message, /PRIVATE KEY/);
    return true;
  });
});
