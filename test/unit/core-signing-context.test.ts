/** signingContextFor refuses, as corrupt state, a stored state whose certificates and keys the CA cannot use. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES, prepareRoot } from '../../src/core/ca/rotation.js';
import { bundleToJwks } from '../../src/core/ca/trust-bundle.js';
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

/** The PEM with its second base64 line lost: still PEM-shaped (the codec takes it), no longer DER. */
function lineLost(pem: string): string {
  const lines = pem.split('\n');
  return [...lines.slice(0, 2), ...lines.slice(3)].join('\n');
}

function assertCorrupt(state: CaState, message: RegExp): void {
  assert.throws(() => signingContextFor(state), (err: unknown) => {
    const e = err as { code?: string; message: string };
    assert.equal(e.code, 'RAMPART_ERR_STATE_CORRUPT', `got ${String(err)}`);
    assert.match(e.message, message);
    assert.doesNotMatch(e.message, /PRIVATE KEY|-----/);
    return true;
  });
}

test('damaged certificate or key text in the stored state is corrupt state, not an uncoded OpenSSL error (fuzz finding)', () => {
  // Seeded state campaign (seed 0x57a7e): a changed base64 character or a lost line in state.json
  // passed the codec's PEM-shape check; start-up then died with OpenSSL's "asn1 encoding
  // routines::too long" as an unexpected error, and a damaged prepared root made every
  // GET /v1/trust-bundle?format=jwks answer 500.
  const now = Date.now();
  const state = prepareRoot(bootstrapState('cluster.local', now, DEFAULT_LIFETIMES), now, DEFAULT_LIFETIMES);
  const [active, prepared] = state.roots as [CaState['roots'][number], CaState['roots'][number]];
  assert.doesNotThrow(() => bundleToJwks(signingContextFor(state).bundle, 60));
  const withRoots = (a: typeof active, p: typeof prepared = prepared): CaState => ({ ...state, roots: [a, p] });
  assertCorrupt(withRoots({ ...active, intermediate: { ...active.intermediate, certPem: lineLost(active.intermediate.certPem) } }), /active root [0-9a-f]{16}'s intermediate certificate cannot be read/);
  assertCorrupt(withRoots({ ...active, intermediate: { ...active.intermediate, keyPem: lineLost(active.intermediate.keyPem) } }), /intermediate key cannot be read/);
  assertCorrupt(withRoots({ ...active, intermediate: { ...active.intermediate, chainPems: [lineLost(prepared.certPem)] } }), /intermediate chain certificate 1 cannot be read/);
  assertCorrupt(withRoots(active, { ...prepared, certPem: lineLost(prepared.certPem) }), new RegExp(`root ${prepared.fingerprint.slice(0, 16)} certificate cannot be read`));
  assertCorrupt(withRoots({ ...active, keyPem: lineLost(active.keyPem as string) }), new RegExp(`root ${active.fingerprint.slice(0, 16)} key cannot be read`));
  // A whole certificate swapped for another root's: it loads, but is not the one its fingerprint names.
  assertCorrupt(withRoots(active, { ...prepared, certPem: active.certPem }), /is not the certificate its fingerprint names/);
});
