/**
 * The leaf template encodes each identity's subjectAltName once and reuses it. Many identities,
 * interleaved and past the bound of that memo, must each get a certificate naming exactly their
 * own SPIFFE ID, read back by node's X509Certificate (OpenSSL), not by Rampart's own parser.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createIntermediate, createRoot } from '../../src/core/pki/ca-certs.js';
import { spkiDer } from '../../src/core/pki/keys.js';
import { LeafSigner } from '../../src/core/pki/signer.js';

test('interleaved identities, more than the SAN memo holds, each get a leaf with their own SPIFFE ID and key', () => {
  const now = Date.now();
  const root = createRoot({ trustDomain: 'cluster.local', generation: 1, now, ttlMs: 86_400_000 });
  const inter = createIntermediate({ trustDomain: 'cluster.local', generation: 1, issuerCertPem: root.certPem, issuerKeyPem: root.keyPem, now, ttlMs: 3_600_000 });
  const issuer = new X509Certificate(inter.certPem);
  const signer = new LeafSigner(issuer.raw, createPrivateKey(inter.keyPem));
  const keys = Array.from({ length: 4 }, () => spkiDer(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
  const total = 4096 + 200;
  for (let i = 0; i < total; i++) {
    // Every other request is the same identity, so entries are reused as well as made and dropped.
    const spiffeId = i % 2 === 0 ? 'spiffe://cluster.local/ns/hot/sa/same' : `spiffe://cluster.local/ns/n${i}/sa/s${i % 7}`;
    const spki = keys[i % keys.length] as Buffer;
    const subjectPublicKey = spki.subarray(spki.length - 65);
    const leaf = signer.sign({ spki, subjectPublicKey, isRsa: false, spiffeId, notBefore: now, notAfter: now + 600_000 });
    // Read a sample back with OpenSSL; every leaf already passed the post-signing check.
    if (i % 97 === 0 || i >= total - 4) {
      const cert = new X509Certificate(leaf.der);
      assert.equal(cert.subjectAltName, `URI:${spiffeId}`, `leaf ${i}`);
      assert.ok(cert.verify(issuer.publicKey), `leaf ${i} verifies under its issuer`);
      assert.ok(cert.publicKey.export({ format: 'der', type: 'spki' }).equals(spki), `leaf ${i} carries its own key`);
    }
  }
});
