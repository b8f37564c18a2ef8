import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { test } from 'node:test';
import { compileAllowList } from '../../src/agent/proxy/authz.js';
import { peerSpiffeId } from '../../src/agent/proxy/peer-identity.js';

const cert = (subjectaltname: string | undefined): PeerCertificate => ({ subjectaltname }) as unknown as PeerCertificate;

test('peerSpiffeId reads the single URI SAN of an SVID', () => {
  assert.deepEqual(peerSpiffeId(cert('URI:spiffe://cluster.local/ns/a/sa/client')), { ok: true, id: 'spiffe://cluster.local/ns/a/sa/client' });
  // DNS SANs next to the URI do not hide it (the CA's own serving SVID has them).
  assert.deepEqual(peerSpiffeId(cert('DNS:localhost, URI:spiffe://td/ns/x/sa/y, IP Address:127.0.0.1')), { ok: true, id: 'spiffe://td/ns/x/sa/y' });
});

test('peerSpiffeId refuses certificates that are not X.509-SVIDs', () => {
  assert.equal(peerSpiffeId(cert(undefined)).ok, false);
  assert.equal(peerSpiffeId({}).ok, false);
  assert.equal(peerSpiffeId(cert('DNS:example.com')).ok, false);
  assert.equal(peerSpiffeId(cert('URI:spiffe://td/a, URI:spiffe://td/b')).ok, false);
  assert.equal(peerSpiffeId(cert('URI:https://example.com/x')).ok, false);
  assert.equal(peerSpiffeId(cert('URI:spiffe://TD/ns/a')).ok, false);
});

test('a quoted SAN value containing the separator cannot smuggle a second identity', () => {
  // Node JSON-quotes SAN values with special characters; ", URI:" inside quotes is data.
  const r = peerSpiffeId(cert('URI:"spiffe://td/a, URI:spiffe://td/admin"'));
  assert.equal(r.ok, false);
  assert.equal(peerSpiffeId(cert('URI:"spiffe://td/ok"')).ok, true);
  assert.equal(peerSpiffeId(cert('URI:"unterminated')).ok, false);
});

test('compileAllowList matches exact IDs and /* prefixes only', () => {
  const allowed = compileAllowList(['spiffe://td/ns/shop/*', 'spiffe://td/ns/a/sa/b']);
  assert.equal(allowed('spiffe://td/ns/shop/sa/cart'), true);
  assert.equal(allowed('spiffe://td/ns/a/sa/b'), true);
  assert.equal(allowed('spiffe://td/ns/a/sa/bb'), false);
  assert.equal(allowed('spiffe://td/ns/shopping/sa/x'), false);
  assert.equal(allowed('spiffe://td/ns/shop'), false);
  assert.equal(allowed('spiffe://other/ns/shop/sa/cart'), false);
  assert.throws(() => compileAllowList([]), { code: 'RAMPART_ERR_CONFIG_INVALID' });
  assert.throws(() => compileAllowList(['spiffe://td/ns/*/sa/x']), { code: 'RAMPART_ERR_CONFIG_INVALID' });
});
