/** The TTL a response reports equals the lifetime the certificate carries, whatever the clock's milliseconds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { issueCertificate, signingContextFor } from '../../src/core/ca/authority.js';
import { DEFAULT_TTL_POLICY, LEAF_BACKDATE_MS } from '../../src/core/ca/policy.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import { ManualClock } from '../../src/core/clock.js';

const start = Date.UTC(2026, 10, 26, 12, 0, 0);
const context = signingContextFor(bootstrapState('cluster.local', start, DEFAULT_LIFETIMES));
const caller = { identity: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' }, authenticator: 'test' };

test('granted ttlSeconds matches NotAfter - NotBefore - backdate exactly, at any millisecond', () => {
  const { csrPem } = createKeyAndCsr();
  for (const ms of [0, 1, 499, 500, 700, 999]) {
    for (const [asked, granted] of [[300, 300], [undefined, 3600], [86_401, 86_400], [10, 300]] as const) {
      const clock = new ManualClock(start + 60_000 + ms);
      const issued = issueCertificate(context, DEFAULT_TTL_POLICY, clock, { csrPem, caller, ...(asked !== undefined ? { ttlSeconds: asked } : {}) });
      const leaf = new X509Certificate(issued.certChain[0]!);
      const lifetime = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom) - LEAF_BACKDATE_MS) / 1000;
      assert.equal(lifetime, granted, `certificate lifetime, asked ${String(asked)} at +${ms} ms`);
      assert.equal(issued.grantedTtlSeconds, granted, `reported ttl, asked ${String(asked)} at +${ms} ms`);
    }
  }
});
