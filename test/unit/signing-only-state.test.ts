/** What the primary sends its signing workers: no root key, no key of an intermediate that does not sign. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { issueCertificate, signingContextFor } from '../../src/core/ca/authority.js';
import { DEFAULT_TTL_POLICY } from '../../src/core/ca/policy.js';
import { bootstrapState, prepareRoot, type CaLifetimes } from '../../src/core/ca/rotation.js';
import { signingOnlyState } from '../../src/core/ca/signing-only-state.js';
import { bundleFromState } from '../../src/core/ca/trust-bundle.js';
import { systemClock } from '../../src/core/clock.js';
import { createKeyAndCsr } from '../../src/agent/csr.js';

const DAY = 86_400_000;
const LIFE: CaLifetimes = { rootTtlMs: 12 * DAY, intermediateTtlMs: 3 * DAY };

test('a worker gets the active intermediate key only; it still signs, and the bundle and sequence are the primary\'s', () => {
  const now = Date.now();
  const full = prepareRoot(bootstrapState('cluster.local', now, LIFE), now + 1000, LIFE);
  assert.ok(full.roots.every((r) => r.keyPem !== null && r.intermediate.keyPem !== ''), 'the primary holds every key');
  const sent = signingOnlyState(full);

  assert.deepEqual(sent.roots.map((r) => r.keyPem), [null, null]);
  const [active, prepared] = sent.roots;
  assert.equal(active?.phase, 'active');
  assert.equal(active?.intermediate.keyPem, full.roots[0]?.intermediate.keyPem);
  assert.equal(prepared?.phase, 'prepared');
  assert.equal(prepared?.intermediate.keyPem, '');
  const text = JSON.stringify(sent);
  for (const root of full.roots) assert.ok(!text.includes(root.keyPem as string), 'no root key anywhere in what is sent');
  assert.ok(!text.includes(full.roots[1]!.intermediate.keyPem), 'nor the prepared root\'s intermediate key');
  assert.equal(sent.sequence, full.sequence);
  assert.deepEqual(bundleFromState(sent), bundleFromState(full));

  const context = signingContextFor(sent);
  const { csrPem } = createKeyAndCsr();
  const issued = issueCertificate(context, DEFAULT_TTL_POLICY, systemClock, { csrPem, caller: { identity: { trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b' }, authenticator: 'dev' } });
  assert.equal(issued.spiffeId, 'spiffe://cluster.local/ns/a/sa/b');
  const leaf = new X509Certificate(issued.certChain[0] ?? '');
  assert.ok(leaf.checkIssued(new X509Certificate(active!.intermediate.certPem)));
});
