/** The load tests count certificates that check out, not 200s (outside audit of the bench). */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { issueCertificate, signingContextFor } from '../../src/core/ca/authority.js';
import { DEFAULT_TTL_POLICY } from '../../src/core/ca/policy.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import { systemClock } from '../../src/core/clock.js';
import { makeDerCsr } from '../../bench/csr-pool.js';
import { issuedProblem, rootsFromPem } from '../../bench/issued-check.js';

const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
const context = signingContextFor(state);
const roots = rootsFromPem(state.roots[0]!.certPem);
const ID = 'spiffe://cluster.local/ns/bench/sa/fleet-0-7';

function answer(csrPem: string): string {
  const caller = { identity: { trustDomain: 'cluster.local', namespace: 'bench', serviceAccount: 'fleet-0-7' }, authenticator: 'bench' };
  return JSON.stringify({ certChain: issueCertificate(context, DEFAULT_TTL_POLICY, systemClock, { csrPem, caller }).certChain });
}

test('a certificate for the agent, its key and its SPIFFE ID under the root checks out', () => {
  const csr = makeDerCsr();
  assert.equal(issuedProblem(answer(csr.csrPem), roots, csr.privateKey, ID), null);
});

test('another key, another SPIFFE ID, another root, an expired chain or no chain do not', () => {
  const csr = makeDerCsr();
  const body = answer(csr.csrPem);
  assert.equal(issuedProblem(body, roots, makeDerCsr().privateKey, ID), 'key');
  assert.equal(issuedProblem(body, roots, csr.privateKey, 'spiffe://cluster.local/ns/bench/sa/fleet-0-8'), 'spiffe id');
  const otherRoots = rootsFromPem(bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES).roots[0]!.certPem);
  assert.equal(issuedProblem(body, otherRoots, csr.privateKey, ID), 'chain');
  assert.equal(issuedProblem(body, roots, csr.privateKey, ID, Date.now() + 400 * 86_400_000), 'validity');
  // The leaf alone, without the intermediate that signed it.
  const leafOnly = JSON.stringify({ certChain: (JSON.parse(body) as { certChain: string[] }).certChain.slice(0, 1) });
  assert.equal(issuedProblem(leafOnly, roots, csr.privateKey, ID), 'chain');
  assert.equal(issuedProblem('{"certChain":[]}', roots, csr.privateKey, ID), 'no certChain');
  assert.equal(issuedProblem('{"certChain"', roots, csr.privateKey, ID), 'not JSON');
});
